// Self-test of the fleet test fixtures: the throwaway ClickHouse server
// (queries, durability across kill -9 and restart) and the fault proxy.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "clickhouse_server.hpp"
#include "fault_proxy.hpp"

namespace {

using pgfleet::ClickHouseServer;
using pgfleet::FaultProxy;
using pgfleet::http_post;

#define SKIP_WITHOUT_CLICKHOUSE() \
  if (!ClickHouseServer::available()) GTEST_SKIP() << "clickhouse-server is not installed"

// A raw connection to 127.0.0.1:port, for exchanges http_post does not make.
int connect_to(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

void send_text(int fd, const std::string& text) {
  ASSERT_EQ(::send(fd, text.data(), text.size(), MSG_NOSIGNAL), static_cast<ssize_t>(text.size()));
}

// Reads until `text` has arrived (true), or the end of stream or a timeout (false).
bool recv_until(int fd, std::string& got, const std::string& text) {
  char buf[4096];
  while (got.find(text) == std::string::npos) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return false;
    got.append(buf, static_cast<size_t>(n));
  }
  return true;
}

// Reads until the end of stream (or a timeout).
std::string recv_all(int fd) {
  std::string got;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) got.append(buf, static_cast<size_t>(n));
  return got;
}

TEST(ClickHouseServerTest, QueriesSurviveKill9AndRestart) {
  SKIP_WITHOUT_CLICKHOUSE();
  std::string dir;
  {
    ClickHouseServer ch;
    dir = ch.dir();
    EXPECT_TRUE(std::filesystem::is_directory(dir));
    EXPECT_EQ(ch.url(), "clickhouse://127.0.0.1:" + std::to_string(ch.http_port()) + "/");
    EXPECT_EQ(ch.query("SELECT 1"), "1\n");

    ch.query("CREATE TABLE t (id UInt32, name String) ENGINE = MergeTree ORDER BY id");
    ch.query(
        "INSERT INTO t FORMAT JSONEachRow\n"
        "{\"id\":1,\"name\":\"a\"}\n"
        "{\"id\":2,\"name\":\"b\"}\n"
        "{\"id\":3,\"name\":\"c\"}\n");
    EXPECT_EQ(ch.query("SELECT count() FROM t"), "3\n");

    ch.kill9();
    EXPECT_FALSE(ch.running());
    EXPECT_THROW(ch.query("SELECT 1"), std::runtime_error);
    ch.restart();
    EXPECT_TRUE(ch.running());
    EXPECT_EQ(ch.query("SELECT count() FROM t"), "3\n");
    EXPECT_EQ(ch.query("SELECT name FROM t ORDER BY id"), "a\nb\nc\n");
  }
  EXPECT_FALSE(std::filesystem::exists(dir));
}

TEST(ClickHouseServerTest, ErrorsAndAuthentication) {
  SKIP_WITHOUT_CLICKHOUSE();
  ClickHouseServer ch("alice", "pa55");
  try {
    ch.query("SELECT * FROM no_such_table");
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("clickhouse: HTTP ", 0), 0u) << e.what();
    EXPECT_NE(std::string(e.what()).find("no_such_table"), std::string::npos) << e.what();
  }
  auto [ok_code, ok_body] = http_post(ch.http_port(), "alice", "pa55", "/?query=SELECT%202", "");
  EXPECT_EQ(ok_code, 200);
  EXPECT_EQ(ok_body, "2\n");
  auto [bad_code, bad_body] = http_post(ch.http_port(), "alice", "wrong", "/", "SELECT 1");
  EXPECT_NE(bad_code, 200) << bad_body;
}

TEST(ClickHouseServerTest, StopAndRestart) {
  SKIP_WITHOUT_CLICKHOUSE();
  ClickHouseServer ch;
  ch.stop();
  EXPECT_FALSE(ch.running());
  ch.restart();
  EXPECT_EQ(ch.query("SELECT 1"), "1\n");
}

TEST(ClickHouseServerTest, RestartWaitsForItsPortToBeFree) {
  SKIP_WITHOUT_CLICKHOUSE();
  ClickHouseServer ch;
  ch.kill9();
  // Something else holds the HTTP port for a while: the restarted server
  // fails to listen, and restart() tries again until the port is free.
  int holder = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(holder, 0);
  int one = 1;
  ::setsockopt(holder, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(ch.http_port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(holder, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(holder, 1), 0);
  std::thread release([holder] {
    std::this_thread::sleep_for(std::chrono::seconds(2));
    ::close(holder);
  });
  ch.restart();
  release.join();
  EXPECT_EQ(ch.query("SELECT 1"), "1\n");
}

TEST(FaultProxyTest, FailsFirstRequestsThenRelays) {
  SKIP_WITHOUT_CLICKHOUSE();
  ClickHouseServer ch;
  FaultProxy proxy(ch.http_port(), 2);
  EXPECT_EQ(proxy.url(), "clickhouse://127.0.0.1:" + std::to_string(proxy.port()) + "/");
  EXPECT_NE(proxy.port(), ch.http_port());

  std::vector<int> codes;
  std::vector<std::string> bodies;
  for (int i = 0; i < 3; ++i) {
    auto [code, body] = http_post(proxy.port(), ch.user(), ch.password(), "/", "SELECT 1");
    codes.push_back(code);
    bodies.push_back(body);
  }
  EXPECT_EQ(codes, (std::vector<int>{500, 500, 200}));
  EXPECT_NE(bodies[0].find("Code: 241"), std::string::npos) << bodies[0];
  EXPECT_NE(bodies[1].find("Memory limit (simulated)"), std::string::npos) << bodies[1];
  EXPECT_EQ(bodies[2], "1\n");
  EXPECT_EQ(proxy.failed(), 2);

  // Relayed both ways: an insert through the proxy lands in the server.
  ch.query("CREATE TABLE p (x UInt8) ENGINE = Memory");
  auto [code, body] =
      http_post(proxy.port(), ch.user(), ch.password(), "/", "INSERT INTO p FORMAT JSONEachRow\n{\"x\":7}\n");
  EXPECT_EQ(code, 200) << body;
  EXPECT_EQ(ch.query("SELECT x FROM p"), "7\n");
  EXPECT_EQ(proxy.failed(), 2);
}

TEST(FaultProxyTest, ConsumesLargeBodiesBeforeFailing) {
  SKIP_WITHOUT_CLICKHOUSE();
  ClickHouseServer ch;
  FaultProxy proxy(ch.http_port(), 1);
  ch.query("CREATE TABLE big (id UInt32, pad String) ENGINE = MergeTree ORDER BY id");
  constexpr int kRows = 40000;
  std::string insert = "INSERT INTO big FORMAT JSONEachRow\n";
  for (int i = 0; i < kRows; ++i)
    insert += "{\"id\":" + std::to_string(i) + ",\"pad\":\"" + std::string(100, 'x') + "\"}\n";
  ASSERT_GT(insert.size(), 4u << 20);

  auto [code, body] = http_post(proxy.port(), ch.user(), ch.password(), "/", insert);
  EXPECT_EQ(code, 500) << body;
  EXPECT_EQ(proxy.failed(), 1);
  EXPECT_EQ(ch.query("SELECT count() FROM big"), "0\n");

  auto [code2, body2] = http_post(proxy.port(), ch.user(), ch.password(), "/", insert);
  EXPECT_EQ(code2, 200) << body2;
  EXPECT_EQ(ch.query("SELECT count() FROM big"), std::to_string(kRows) + "\n");
}

TEST(FaultProxyTest, AnswersExpectContinueAndChunkedBodies) {
  SKIP_WITHOUT_CLICKHOUSE();
  ClickHouseServer ch;
  FaultProxy proxy(ch.http_port(), 2);
  const std::string auth = "Authorization: Basic cGc6czNjcmV0\r\n";  // pg:s3cret

  // Expect: 100-continue: the proxy asks for the body, then fails the request.
  int fd = connect_to(proxy.port());
  ASSERT_GE(fd, 0);
  send_text(fd, "POST / HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Length: 8\r\nExpect: 100-continue\r\n\r\n");
  std::string got;
  ASSERT_TRUE(recv_until(fd, got, "\r\n\r\n"));
  EXPECT_EQ(got, "HTTP/1.1 100 Continue\r\n\r\n");
  send_text(fd, "SELECT 1");
  got = recv_all(fd);
  ::close(fd);
  EXPECT_EQ(got.rfind("HTTP/1.1 500 ", 0), 0u) << got;
  EXPECT_NE(got.find("Connection: close\r\n"), std::string::npos) << got;

  // A chunked body, read to its end before the answer.
  fd = connect_to(proxy.port());
  ASSERT_GE(fd, 0);
  send_text(fd, "POST / HTTP/1.1\r\nHost: x\r\n" + auth + "Transfer-Encoding: chunked\r\n\r\n4\r\nSELE");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  send_text(fd, "\r\n4\r\nCT 1\r\n0\r\n\r\n");
  got = recv_all(fd);
  ::close(fd);
  EXPECT_EQ(got.rfind("HTTP/1.1 500 ", 0), 0u) << got;
  EXPECT_EQ(proxy.failed(), 2);

  // Relayed: two requests on one keep-alive connection both reach the server.
  fd = connect_to(proxy.port());
  ASSERT_GE(fd, 0);
  got.clear();
  send_text(fd, "POST / HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Length: 8\r\n\r\nSELECT 5");
  ASSERT_TRUE(recv_until(fd, got, "\r\n0\r\n\r\n")) << got;  // ClickHouse answers HTTP/1.1 chunked
  EXPECT_EQ(got.rfind("HTTP/1.1 200 ", 0), 0u) << got;
  got.clear();
  send_text(fd, "POST / HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Length: 8\r\n\r\nSELECT 6");
  ASSERT_TRUE(recv_until(fd, got, "\r\n0\r\n\r\n")) << got;
  EXPECT_EQ(got.rfind("HTTP/1.1 200 ", 0), 0u) << got;
  EXPECT_NE(got.find("\r\n6\n\r\n"), std::string::npos) << got;
  ::close(fd);
  EXPECT_EQ(proxy.failed(), 2);
}

TEST(FaultProxyTest, ConcurrentConnections) {
  SKIP_WITHOUT_CLICKHOUSE();
  ClickHouseServer ch;
  FaultProxy proxy(ch.http_port(), 3);
  constexpr int kClients = 8;
  std::vector<int> codes(kClients, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      try {
        codes[i] = http_post(proxy.port(), ch.user(), ch.password(), "/", "SELECT sleep(0.2)").first;
      } catch (const std::exception&) {
        codes[i] = -1;
      }
    });
  }
  for (auto& t : threads) t.join();
  int failed = 0, ok = 0;
  for (int code : codes) {
    failed += code == 500;
    ok += code == 200;
  }
  EXPECT_EQ(failed, 3);
  EXPECT_EQ(ok, kClients - 3);
  EXPECT_EQ(proxy.failed(), 3);
}

TEST(FaultProxyTest, StopsWithIdleConnectionsOpen) {
  // No server needed: the connections never send a request.
  auto proxy = std::make_unique<FaultProxy>(pgfleet::free_port(), 1);
  std::vector<int> fds;
  for (int i = 0; i < 3; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(proxy->port());
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
    fds.push_back(fd);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  proxy.reset();  // must not hang
  for (int fd : fds) ::close(fd);
}

}  // namespace
