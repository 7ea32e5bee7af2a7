// A short-lived program for the integration tests: makes one socket do one
// thing, prints "PORT COOKIE" and exits at once.
//   pg_fire udp-send PORT      udp sendto 127.0.0.1:PORT (autobind)
//   pg_fire tcp-connect PORT   tcp connect to 127.0.0.1:PORT
//   pg_fire leader-exit PORT   the main thread exits first; another thread
//                              then does the udp sendto, 300 ms later
// Further arguments are ignored: tests put hostile text in the command line.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {
int fire(bool udp, const char* port);

void* late_thread(void* port) {
  usleep(300'000);  // the leader's exit is long read by then
  int rc = fire(true, static_cast<const char*>(port));
  std::fflush(stdout);
  syscall(SYS_exit_group, rc);
  return nullptr;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: pg_fire udp-send|tcp-connect|leader-exit PORT\n");
    return 2;
  }
  if (std::strcmp(argv[1], "leader-exit") == 0) {
    pthread_t t;
    if (pthread_create(&t, nullptr, late_thread, argv[2]) != 0) return 1;
    syscall(SYS_exit, 0);  // this thread only: the process goes on
  }
  return fire(std::strcmp(argv[1], "udp-send") == 0, argv[2]);
}

namespace {
int fire(bool udp, const char* port_arg) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(std::atoi(port_arg)));
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
}  // namespace
