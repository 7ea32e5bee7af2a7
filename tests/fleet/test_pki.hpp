// Test support: certificates for the TLS tests, made with Debian's openssl
// in a directory of the test's: a CA, a server certificate it signs for
// 127.0.0.1 and localhost, and a second CA, unrelated, that signed nothing.
#pragma once

#include <string>

namespace pgfleet {

struct TestPki {
  std::string ca;           // PEM: the CA that signed the server's certificate
  std::string other_ca;     // PEM: a CA that did not
  std::string server_cert;  // PEM, subjectAltName IP:127.0.0.1, DNS:localhost
  std::string server_key;   // PEM, unencrypted
};

// Whether the openssl program is installed (scripts/deps.sh installs it).
bool openssl_available();
// Makes the files in dir (keys RSA 2048, valid for two days). Throws
// std::runtime_error, with openssl's output, if a step fails.
TestPki make_test_pki(const std::string& dir);

}  // namespace pgfleet
