// A short-lived program for the integration tests: makes one socket do one
// thing, prints "PORT COOKIE" and exits at once.
//   pg_fire udp-send PORT      udp sendto 127.0.0.1:PORT (autobind)
//   pg_fire tcp-connect PORT   tcp connect to 127.0.0.1:PORT
// Further arguments are ignored: tests put hostile text in the command line.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: pg_fire udp-send|tcp-connect PORT\n");
    return 2;
  }
  bool udp = std::strcmp(argv[1], "udp-send") == 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(std::atoi(argv[2])));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, udp ? SOCK_DGRAM : SOCK_STREAM, 0);
  int rc = udp ? static_cast<int>(sendto(fd, "x", 1, 0, reinterpret_cast<sockaddr*>(&a), sizeof a))
               : connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  if (rc < 0) {
    std::perror("pg_fire");
    return 1;
  }
  sockaddr_in l{};
  socklen_t len = sizeof l;
  getsockname(fd, reinterpret_cast<sockaddr*>(&l), &len);
  unsigned long long cookie = 0;
  socklen_t clen = sizeof cookie;
  getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &clen);
  std::printf("%u %llu\n", ntohs(l.sin_port), cookie);
  return 0;
}
