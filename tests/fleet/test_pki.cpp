// Test support: a CA, a server certificate and an unrelated CA, from openssl.
#include "test_pki.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace pgfleet {

namespace {

constexpr char kOpenssl[] = "/usr/bin/openssl";

std::string text_of(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// openssl ARGS... in dir, its output in dir/openssl.log; throws unless it
// exits 0.
void openssl(const std::string& dir, std::vector<std::string> args) {
  const std::string log = dir + "/openssl.log";
  args.insert(args.begin(), kOpenssl);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0 || ::dup2(out, STDOUT_FILENO) < 0 || ::dup2(out, STDERR_FILENO) < 0 || ::chdir(dir.c_str()) != 0)
      ::_exit(126);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string cmd;
    for (const auto& a : args) cmd += a + " ";
    throw std::runtime_error("test PKI: " + cmd + "failed:\n" + text_of(log));
  }
}

// A self-signed CA: NAME.pem and NAME.key.
void make_ca(const std::string& dir, const std::string& name, const std::string& subject) {
  openssl(dir, {"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", subject, "-keyout",
                name + ".key", "-out", name + ".pem", "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
                "keyUsage=critical,keyCertSign,cRLSign"});
}

}  // namespace

bool openssl_available() { return ::access(kOpenssl, X_OK) == 0; }

TestPki make_test_pki(const std::string& dir) {
  if (!openssl_available()) throw std::runtime_error(std::string("test PKI: ") + kOpenssl + " is not executable");
  make_ca(dir, "ca", "/CN=portghost test CA");
  make_ca(dir, "other-ca", "/CN=portghost unrelated test CA");
  // the server's: for the names the tests reach it by, and no others
  openssl(dir, {"req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key", "-out",
                "server.csr"});
  std::ofstream(dir + "/server.ext") << "subjectAltName = IP:127.0.0.1, DNS:localhost\n"
                                     << "basicConstraints = CA:FALSE\n"
                                     << "keyUsage = critical, digitalSignature, keyEncipherment\n"
                                     << "extendedKeyUsage = serverAuth\n";
  openssl(dir, {"x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", "1", "-days",
                "2", "-extfile", "server.ext", "-out", "server.pem"});
  openssl(dir, {"verify", "-CAfile", "ca.pem", "server.pem"});  // the chain the tests rely on
  return {dir + "/ca.pem", dir + "/other-ca.pem", dir + "/server.pem", dir + "/server.key"};
}

}  // namespace pgfleet
