// pg_churn: the benchmark workload. Threads churning local ports on
// loopback, one kind of operation per run, for a bounded time.
//
//   pg_churn LOOP [--threads N] [--seconds S] [--rate OPS] [--ports FILE] [--count N]
//                 [--to ADDR:PORT] [--port N]
//
// LOOP is one of
//   tcp      connect to a listener of the thread's own, accept, close the
//            accepted side and then the connecting side (its port is free at
//            once: the TIME_WAIT stays with the listener's side)
//   tcp-rst  the same, but the connecting side is closed first with
//            SO_LINGER 0, so it resets
//   udp      socket, sendto a receiver of the thread's own (autobind), close
//   bind     socket (TCP), bind port 0, close
//   rw       read 1 byte from /dev/zero, write it to /dev/null: a process
//            that makes syscalls and takes no port (what every tracer on
//            the syscall layer slows down)
//   exec     fork, exec /bin/true, wait (CPU counts the children's too)
//   hold     bind --count TCP sockets to port 0 (spread over 127.0.0.1-16),
//            hold them all until the time is up, then close them
//   serve    accept TCP connections on --port (every address) and close each
//            at once, until the time is up: the far end of --to
//
// --to ADDR:PORT: tcp, tcp-rst and udp go to that server (IPv4), not to one
// of their own (tcp then waits for the server to close first, so that its
// port leaves no TIME_WAIT behind): traffic through a NAT.
// --rate paces the total to OPS operations per second (default: as fast as
// it goes). --ports writes one line per operation, "PROTO PORT LIFETIME_NS",
// the local port the kernel gave and how long the socket held it.
//
// On exit, one line of key=value pairs: the operations done, the wall time,
// ops/s, the process's CPU seconds (user + system, every thread: BPF programs
// run in the workload's own context and are counted here) and CPU per op.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum loop { LOOP_TCP, LOOP_TCP_RST, LOOP_UDP, LOOP_BIND, LOOP_RW, LOOP_EXEC, LOOP_HOLD, LOOP_SERVE };

struct port_use {
  uint16_t port;
  uint32_t lifetime_ns;
};

struct worker {
  pthread_t thread;
  enum loop loop;
  double rate;  // ops/s for this thread, 0: unpaced
  uint64_t ops;
  uint64_t failed;
  int zero_fd, null_fd;   // rw
  struct port_use* uses;  // when recording ports
  size_t uses_len, uses_cap;
  char error[128];
};

static atomic_int g_stop;
static int g_record;
static int g_remote;  // --to: the server is elsewhere
static struct sockaddr_in g_to;

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void die(const char* msg) {
  fprintf(stderr, "pg_churn: %s\n", msg);
  exit(2);
}

static uint16_t local_port(int fd) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  if (getsockname(fd, (struct sockaddr*)&a, &len) != 0) return 0;
  return ntohs(a.sin_port);
}

static void record(struct worker* w, uint16_t port, uint64_t t0) {
  if (!g_record) return;
  if (w->uses_len == w->uses_cap) {
    w->uses_cap = w->uses_cap ? w->uses_cap * 2 : 65536;
    w->uses = realloc(w->uses, w->uses_cap * sizeof *w->uses);
    if (!w->uses) die("out of memory");
  }
  uint64_t d = now_ns() - t0;
  w->uses[w->uses_len++] = (struct port_use){port, d > UINT32_MAX ? UINT32_MAX : (uint32_t)d};
}

// A listening or receiving socket on 127.0.0.1, port chosen by the kernel.
static int server_socket(int type, struct sockaddr_in* addr) {
  int fd = socket(AF_INET, type, 0);
  if (fd < 0) return -1;
  addr->sin_family = AF_INET;
  addr->sin_port = 0;
  addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof *addr;
  if (bind(fd, (struct sockaddr*)addr, sizeof *addr) != 0) return -1;
  if (type == SOCK_STREAM && listen(fd, 4096) != 0) return -1;
  if (getsockname(fd, (struct sockaddr*)addr, &len) != 0) return -1;
  if (type == SOCK_DGRAM) {
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  }
  return fd;
}

static int one_op(struct worker* w, int server, const struct sockaddr_in* addr) {
  uint64_t t0 = g_record ? now_ns() : 0;
  switch (w->loop) {
    case LOOP_TCP:
    case LOOP_TCP_RST: {
      int s = socket(AF_INET, SOCK_STREAM, 0);
      if (s < 0) return -1;
      if (connect(s, (const struct sockaddr*)addr, sizeof *addr) != 0) {
        close(s);
        return -1;
      }
      uint16_t port = g_record ? local_port(s) : 0;
      if (g_remote) {
        if (w->loop == LOOP_TCP_RST) {
          struct linger lg = {1, 0};
          setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        } else {
          char c;
          while (read(s, &c, 1) > 0) {
          }
        }
        close(s);
        record(w, port, t0);
        return 0;
      }
      int c = accept(server, NULL, NULL);
      if (w->loop == LOOP_TCP_RST) {
        struct linger lg = {1, 0};
        setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(s);
        if (c >= 0) close(c);
      } else {
        if (c >= 0) close(c);
        close(s);
      }
      record(w, port, t0);
      return c >= 0 ? 0 : -1;
    }
    case LOOP_UDP: {
      int s = socket(AF_INET, SOCK_DGRAM, 0);
      if (s < 0) return -1;
      int r = sendto(s, "x", 1, 0, (const struct sockaddr*)addr, sizeof *addr) == 1 ? 0 : -1;
      uint16_t port = g_record ? local_port(s) : 0;
      close(s);
      record(w, port, t0);
      return r;
    }
    case LOOP_BIND: {
      int s = socket(AF_INET, SOCK_STREAM, 0);
      if (s < 0) return -1;
      struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
      int r = bind(s, (struct sockaddr*)&a, sizeof a);
      uint16_t port = g_record ? local_port(s) : 0;
      close(s);
      if (r == 0) record(w, port, t0);
      return r;
    }
    case LOOP_RW: {
      char c;
      if (read(w->zero_fd, &c, 1) != 1) return -1;
      return write(w->null_fd, &c, 1) == 1 ? 0 : -1;
    }
    case LOOP_EXEC: {
      pid_t pid = fork();
      if (pid < 0) return -1;
      if (pid == 0) {
        execl("/bin/true", "true", (char*)NULL);
        _exit(127);
      }
      int status = 0;
      if (waitpid(pid, &status, 0) != pid) return -1;
      return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
    }
    case LOOP_HOLD:
    case LOOP_SERVE: break;  // not per-operation loops
  }
  return -1;
}

static void* run(void* arg) {
  struct worker* w = arg;
  struct sockaddr_in addr;
  int server = -1;
  if (w->loop == LOOP_RW) {
    w->zero_fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
    w->null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (w->zero_fd < 0 || w->null_fd < 0) {
      snprintf(w->error, sizeof w->error, "/dev/zero, /dev/null: %s", strerror(errno));
      return NULL;
    }
  } else if (g_remote) {
    addr = g_to;
  } else if (w->loop != LOOP_BIND && w->loop != LOOP_EXEC) {
    server = server_socket(w->loop == LOOP_UDP ? SOCK_DGRAM : SOCK_STREAM, &addr);
    if (server < 0) {
      snprintf(w->error, sizeof w->error, "server socket: %s", strerror(errno));
      return NULL;
    }
  }
  uint64_t start = now_ns();
  // paced: batches of about 1 ms of work, so that the load is smooth
  int batch = 64;
  if (w->rate > 0 && w->rate < 64000) batch = w->rate >= 1000 ? (int)(w->rate / 1000) : 1;
  while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
    for (int i = 0; i < batch; i++) {
      if (one_op(w, server, &addr) == 0)
        w->ops++;
      else
        w->failed++;
    }
    if (w->rate > 0) {  // ahead of schedule: sleep until the schedule catches up
      uint64_t due = start + (uint64_t)((double)w->ops * 1e9 / w->rate);
      uint64_t now = now_ns();
      if (due > now) {
        struct timespec ts = {(time_t)((due - now) / 1000000000ull), (long)((due - now) % 1000000000ull)};
        nanosleep(&ts, NULL);
      }
    }
  }
  if (server >= 0) close(server);
  if (w->loop == LOOP_RW) {
    close(w->zero_fd);
    close(w->null_fd);
  }
  return NULL;
}

// Holds `count` ports at once: the table-size benchmark. Returns ports held.
static long hold_ports(long count, double seconds) {
  int* fds = calloc((size_t)count, sizeof *fds);
  if (!fds) die("out of memory");
  long held = 0;
  for (long i = 0; i < count; i++) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) {
      fprintf(stderr, "pg_churn: socket %ld: %s (raise ulimit -n)\n", i, strerror(errno));
      break;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK + (uint32_t)(i % 16))};
    if (bind(s, (struct sockaddr*)&a, sizeof a) != 0) {
      close(s);
      continue;
    }
    fds[held++] = s;
  }
  struct timespec d = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
  while (nanosleep(&d, &d) != 0 && errno == EINTR) {
  }
  for (long i = 0; i < held; i++) close(fds[i]);
  free(fds);
  return held;
}

static double rusage_seconds(int who) {
  struct rusage ru;
  getrusage(who, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

// this process and its waited-for children (exec's)
static double cpu_seconds(void) { return rusage_seconds(RUSAGE_SELF) + rusage_seconds(RUSAGE_CHILDREN); }

static double number(const char* flag, const char* v, double lo, double hi) {
  char* end;
  errno = 0;
  double d = strtod(v, &end);
  if (errno || end == v || *end || d < lo || d > hi) {
    fprintf(stderr, "pg_churn: %s: not a number in [%g, %g]: %s\n", flag, lo, hi, v);
    exit(2);
  }
  return d;
}

// Accepts on `port` and closes each connection at once until the time is up.
static long serve(uint16_t port, double seconds) {
  int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  if (l < 0 || bind(l, (struct sockaddr*)&a, sizeof a) != 0 || listen(l, 4096) != 0) die("serve: cannot listen");
  long n = 0;
  uint64_t end = now_ns() + (uint64_t)(seconds * 1e9);
  while (now_ns() < end) {
    int c = accept(l, NULL, NULL);
    if (c >= 0) {
      close(c);
      n++;
    } else {
      struct timespec ts = {0, 200000};
      nanosleep(&ts, NULL);
    }
  }
  close(l);
  return n;
}

int main(int argc, char** argv) {
  if (argc < 2)
    die("usage: pg_churn tcp|tcp-rst|udp|bind|rw|exec|hold [--threads N] [--seconds S] [--rate OPS] [--ports FILE] "
        "[--count N]");
  enum loop loop;
  if (!strcmp(argv[1], "tcp"))
    loop = LOOP_TCP;
  else if (!strcmp(argv[1], "tcp-rst"))
    loop = LOOP_TCP_RST;
  else if (!strcmp(argv[1], "udp"))
    loop = LOOP_UDP;
  else if (!strcmp(argv[1], "bind"))
    loop = LOOP_BIND;
  else if (!strcmp(argv[1], "rw"))
    loop = LOOP_RW;
  else if (!strcmp(argv[1], "exec"))
    loop = LOOP_EXEC;
  else if (!strcmp(argv[1], "hold"))
    loop = LOOP_HOLD;
  else if (!strcmp(argv[1], "serve"))
    loop = LOOP_SERVE;
  else
    die("unknown loop (tcp, tcp-rst, udp, bind, rw, exec, hold, serve)");
  long threads = sysconf(_SC_NPROCESSORS_ONLN);
  double seconds = 5, rate = 0, count = 100000, port = 0;
  const char* ports = NULL;
  for (int i = 2; i < argc; i++) {
    if (i + 1 >= argc) die("every option takes a value");
    const char* f = argv[i];
    const char* v = argv[++i];
    if (!strcmp(f, "--threads"))
      threads = (long)number(f, v, 1, 256);
    else if (!strcmp(f, "--seconds"))
      seconds = number(f, v, 0.01, 3600);
    else if (!strcmp(f, "--rate"))
      rate = number(f, v, 1, 1e9);
    else if (!strcmp(f, "--ports"))
      ports = v;
    else if (!strcmp(f, "--count"))
      count = number(f, v, 1, 1e7);
    else if (!strcmp(f, "--port"))
      port = number(f, v, 1, 65535);
    else if (!strcmp(f, "--to")) {
      char host[64];
      const char* colon = strrchr(v, ':');
      if (!colon || (size_t)(colon - v) >= sizeof host) die("--to: ADDR:PORT");
      memcpy(host, v, (size_t)(colon - v));
      host[colon - v] = 0;
      g_to.sin_family = AF_INET;
      g_to.sin_port = htons((uint16_t)number(f, colon + 1, 1, 65535));
      if (inet_pton(AF_INET, host, &g_to.sin_addr) != 1) die("--to: not an IPv4 address");
      g_remote = 1;
    } else
      die("unknown option");
  }
  if (g_remote && loop != LOOP_TCP && loop != LOOP_TCP_RST && loop != LOOP_UDP) die("--to: only tcp, tcp-rst, udp");
  if (loop == LOOP_SERVE) {
    if (!port) die("serve: --port N");
    long n = serve((uint16_t)port, seconds);
    printf("loop=serve pid=%d accepted=%ld\n", (int)getpid(), n);
    return 0;
  }
  g_record = ports != NULL;
  if (loop == LOOP_HOLD) {
    long held = hold_ports((long)count, seconds);
    printf("loop=hold pid=%d held=%ld\n", (int)getpid(), held);
    return held > 0 ? 0 : 1;
  }
  struct worker* ws = calloc((size_t)threads, sizeof *ws);
  if (!ws) die("out of memory");
  double cpu0 = cpu_seconds();
  uint64_t t0 = now_ns();
  for (long i = 0; i < threads; i++) {
    ws[i].loop = loop;
    ws[i].rate = rate / (double)threads;
    if (pthread_create(&ws[i].thread, NULL, run, &ws[i]) != 0) die("pthread_create failed");
  }
  struct timespec d = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
  while (nanosleep(&d, &d) != 0 && errno == EINTR) {
  }
  atomic_store(&g_stop, 1);
  uint64_t ops = 0, failed = 0;
  for (long i = 0; i < threads; i++) {
    pthread_join(ws[i].thread, NULL);
    if (ws[i].error[0]) {
      fprintf(stderr, "pg_churn: %s\n", ws[i].error);
      return 1;
    }
    ops += ws[i].ops;
    failed += ws[i].failed;
  }
  double wall = (double)(now_ns() - t0) / 1e9;
  double cpu = cpu_seconds() - cpu0;
  if (ports) {
    FILE* f = fopen(ports, "w");
    if (!f) die("cannot write the --ports file");
    const char* proto = loop == LOOP_UDP ? "udp" : "tcp";
    for (long i = 0; i < threads; i++)
      for (size_t k = 0; k < ws[i].uses_len; k++)
        fprintf(f, "%s %u %u\n", proto, ws[i].uses[k].port, ws[i].uses[k].lifetime_ns);
    if (fclose(f) != 0) die("cannot write the --ports file");
  }
  printf("loop=%s threads=%ld pid=%d ops=%llu failed=%llu seconds=%.3f ops_per_s=%.0f cpu_s=%.3f cpu_ns_per_op=%.0f\n",
         argv[1], threads, (int)getpid(), (unsigned long long)ops, (unsigned long long)failed, wall, (double)ops / wall,
         cpu, ops ? cpu * 1e9 / (double)ops : 0.0);
  return ops > 0 ? 0 : 1;
}
