// Root integration tests of releases: the last close of a socket (a dup, a
// forked child, a killed holder), tcp's close with and without TIME_WAIT,
// and the closer named when another process closes the last reference.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <thread>

#include "harness.hpp"

using namespace pgtest;

TEST_F(Trace, ReleaseOnlyWhenTheLastDupIsClosed) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  auto b = v4(0);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&b), sizeof b), 0);
  uint64_t c = sock_cookie(fd);
  int fd2 = dup(fd);
  close(fd);
  assign_of(c);
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(t().all(is("release", c)).empty()) << "released while a dup is open";
  close(fd2);
  release_of(c);
}

TEST_F(Trace, ReleaseWhenForkedChildClosesLastKeepsTheAssigner) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  auto dst = v4(9);
  ASSERT_EQ(sendto(fd, "x", 1, 0, reinterpret_cast<sockaddr*>(&dst), sizeof dst), 1);
  uint64_t c = sock_cookie(fd);
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  pid_t child = fork();
  if (child == 0) {
    char x;
    close(go[1]);
    if (read(go[0], &x, 1) < 0) _exit(1);  // parent says: exit now
    _exit(0);
  }
  close(go[0]);
  close(fd);
  assign_of(c);
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(t().all(is("release", c)).empty()) << "released while the child holds it";
  close(go[1]);
  waitpid(child, nullptr, 0);
  Json r = release_of(c);
  EXPECT_EQ(r["pid"], getpid()) << "the release names the assigner, not the last holder";
}

TEST_F(Trace, ReleasedWhenTheHolderIsKilled) {
  auto r = run_child(
      [] {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        listen(fd, 1);
        return fd;
      },
      true);
  ASSERT_NE(r.cookie, 0u);
  Json a = assign_of(r.cookie);
  EXPECT_EQ(a["how"], "listen");
  kill(r.pid, SIGKILL);
  waitpid(r.pid, nullptr, 0);
  Json rel = release_of(r.cookie);
  EXPECT_EQ(rel["lport"], r.port);
  EXPECT_EQ(rel["pid"], r.pid);
}

TEST_F(Trace, ResetCloseReleasesWithoutTimewait) {
  Listener l;
  Window w;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(do_connect(fd, v4(l.port)), 0);
  uint64_t c = sock_cookie(fd);
  linger lg{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(fd);
  Json r = release_of(c);
  w.end();
  EXPECT_EQ(r["timewait"], false);
  expect_lifetime(r, w);
  accept_and_close(l);
}

TEST_F(Trace, PassiveCloseReleasesWithoutTimewait) {
  Listener l;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(do_connect(fd, v4(l.port)), 0);
  uint64_t c = sock_cookie(fd);
  accept_and_close(l);  // the server closes first: we end in LAST_ACK, not TIME_WAIT
  std::this_thread::sleep_for(50ms);
  close(fd);
  Json r = release_of(c);
  EXPECT_EQ(r["timewait"], false);
}

// Item 13: the release names who closed it, when that is not the holder.
TEST_F(Holes, ReleaseNamesTheCloserWhenAnotherProcessClosesTheLastReference) {
  Listener l;
  for (int type : {SOCK_DGRAM, SOCK_STREAM}) {
    int fd = socket(AF_INET, type, 0);
    auto dst = type == SOCK_DGRAM ? loop4(9) : loop4(l.port);
    if (type == SOCK_DGRAM)
      ASSERT_EQ(sendto(fd, "x", 1, 0, sa(dst), sizeof dst), 1);
    else
      ASSERT_EQ(connect(fd, sa(dst), sizeof dst), 0);
    uint64_t cookie = sock_cookie(fd);
    pid_t child = fork();
    if (child == 0) {
      usleep(100'000);  // the parent's close comes first
      if (type == SOCK_STREAM) {
        linger lg{1, 0};  // reset: the port goes at once
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
      }
      close(fd);
      _exit(0);
    }
    close(fd);
    waitpid(child, nullptr, 0);
    Json a = wait("assign", cookie);
    EXPECT_EQ(a["pid"], getpid());
    Json r = wait("release", cookie);
    EXPECT_EQ(r["pid"], getpid()) << "the holder stays the holder";
    // a socket that connected is released by sockops, which reads its
    // state, in every world (Linux < 5.12 too)
    EXPECT_EQ(r["closer_pid"], child) << r.dump();
    EXPECT_EQ(r["closer_tid"], child);
    EXPECT_TRUE(r["closer_comm"].is_string());
  }
}

TEST_F(Holes, ReleaseNamesTheCloserOfASocketPassedOverScmRights) {
  int sp[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
  pid_t child = fork();
  if (child == 0) {
    close(sp[0]);
    char byte;
    char ctl[CMSG_SPACE(sizeof(int))] = {};
    iovec iov{&byte, 1};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl;
    m.msg_controllen = sizeof ctl;
    if (recvmsg(sp[1], &m, 0) != 1) _exit(2);
    int got;
    std::memcpy(&got, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof got);
    if (read(sp[1], &byte, 1) != 1) _exit(3);  // the parent has closed its own
    close(got);
    _exit(0);
  }
  close(sp[1]);
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  auto dst = loop4(9);
  ASSERT_EQ(sendto(fd, "x", 1, 0, sa(dst), sizeof dst), 1);
  uint64_t cookie = sock_cookie(fd);
  char byte = 0, ctl[CMSG_SPACE(sizeof(int))] = {};
  iovec iov{&byte, 1};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = ctl;
  m.msg_controllen = sizeof ctl;
  cmsghdr* cm = CMSG_FIRSTHDR(&m);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(cm), &fd, sizeof fd);
  ASSERT_EQ(sendmsg(sp[0], &m, 0), 1);
  close(fd);
  ASSERT_EQ(write(sp[0], "c", 1), 1);  // only now may the child close the last reference
  int status = 0;
  waitpid(child, &status, 0);
  close(sp[0]);
  ASSERT_EQ(WEXITSTATUS(status), 0);
  Json r = wait("release", cookie);
  EXPECT_EQ(r["pid"], getpid());
  EXPECT_EQ(r["closer_pid"], child) << r.dump();
}
