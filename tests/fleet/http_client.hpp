// Test support: the minimal HTTP/1.0 client the fleet tests talk to
// ClickHouse with (plain HTTP, 127.0.0.1 only), and free loopback ports.
#pragma once

#include <netinet/in.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace pgfleet {

// One HTTP/1.0 request (`method` "GET" or "POST") of `body` to
// 127.0.0.1:port at `target` (for example "/" or "/?query=..."), with HTTP
// basic auth when `user` is not empty; connect, send and receive each time
// out after `timeout`. Reads the answer until the server closes the
// connection (a chunked body is decoded). Returns the status code and the
// body; throws std::runtime_error when the exchange itself fails (refused,
// timed out, malformed answer).
std::pair<int, std::string> http_request(const std::string& method, uint16_t port, const std::string& user,
                                         const std::string& password, const std::string& target,
                                         const std::string& body, std::chrono::milliseconds timeout);
// A POST as above, with a 60 s timeout.
std::pair<int, std::string> http_post(uint16_t port, const std::string& user, const std::string& password,
                                      const std::string& path_and_query, const std::string& body);

// 127.0.0.1:port
sockaddr_in loopback(uint16_t port);
// s in lower case (ASCII)
std::string lower(std::string s);

// A TCP port on 127.0.0.1 that was free a moment ago.
uint16_t free_port();
// n distinct ports on 127.0.0.1 that were free a moment ago.
std::vector<uint16_t> free_ports(size_t n);

}  // namespace pgfleet
