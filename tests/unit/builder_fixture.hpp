// A RecordBuilder writing JSON into a string, for the record builder tests.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>
#include "sinks/json_sink.hpp"
#include "test_util.hpp"
#include "trace/record_builder.hpp"

using namespace portghost;
using namespace std::string_literals;
using pgtest::JValue;
using pgtest::TempDir;
using Kind = SockEvent::Kind;

constexpr int64_t kOffset = 1'700'000'000'000'000'000LL;  // boot 0 = 2023-11-14T22:13:20Z

inline TaskEvent exec_ev(uint32_t pid, uint32_t ppid, std::string comm, std::string exe, std::string cmdline) {
  TaskEvent t{};
  t.kind = TaskEvent::Kind::Exec;
  t.pid = pid;
  t.ppid = ppid;
  t.comm = std::move(comm);
  t.exe = std::move(exe);
  t.cmdline = std::move(cmdline);
  return t;
}

inline TaskEvent fork_ev(uint32_t pid, uint32_t ppid, std::string comm) {
  TaskEvent t{};
  t.kind = TaskEvent::Kind::Fork;
  t.pid = pid;
  t.ppid = ppid;
  t.comm = std::move(comm);
  return t;
}

inline SockEvent assign_ev(uint64_t cookie, uint16_t lport, uint64_t ts, uint32_t pid, std::string comm) {
  SockEvent e = pgtest::sock_event(Kind::Assign, cookie, lport, ts, pid);
  e.how = How::Bind;
  e.ppid = 1;
  e.uid = 1000;
  e.netns = 4026531840u;
  e.comm = comm;
  e.thread = comm;
  e.laddr = "127.0.0.1";
  return e;
}

inline SockEvent release_ev(uint64_t cookie, uint16_t lport, uint64_t ts, uint32_t pid = 0) {
  return pgtest::sock_event(Kind::Release, cookie, lport, ts, pid);
}

inline SockEvent existing_ev(uint64_t cookie, uint16_t lport, uint64_t ino, uint64_t ts = 10) {
  SockEvent e = pgtest::sock_event(Kind::Existing, cookie, lport, ts);
  e.ino = ino;
  e.state = 10;  // LISTEN
  e.netns = 4026531840u;
  e.laddr = "0.0.0.0";
  return e;
}

// A RecordBuilder writing JSON Lines into a string, with a fake /proc.
class Builder : public ::testing::Test {
 protected:
  void make(const Filters& f = {}, std::optional<CgroupResolver> cgroups = std::nullopt) {
    builder_ = std::make_unique<RecordBuilder>(sink_, f, BootClock(kOffset), procs_, std::move(cgroups));
  }
  RecordBuilder& b() {
    if (!builder_) make();
    return *builder_;
  }
  void feed(const Event& ev) { b().on_event(ev); }

  std::vector<JValue> records() const {
    std::vector<JValue> v;
    for (const auto& line : pgtest::split_lines(out_.text())) {
      auto j = pgtest::parse_json(line);
      if (!j) {
        ADD_FAILURE() << "invalid JSON: " << line;
        continue;
      }
      v.push_back(*j);
    }
    return v;
  }

  TempDir proc_;
  ProcessCache procs_{proc_.path()};
  StringOutput out_;
  JsonSink sink_{out_};
  std::unique_ptr<RecordBuilder> builder_;
};
