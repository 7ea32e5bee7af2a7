// Sample records for the sink tests.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <time.h>
#include <sstream>
#include <string>
#include <vector>
#include "common/clock.hpp"
#include "common/text.hpp"
#include "sinks/json_sink.hpp"
#include "sinks/table_sink.hpp"
#include "test_util.hpp"
#include "trace/sink.hpp"

using namespace portghost;
using pgtest::JValue;
using pgtest::parse_json;

const uint64_t kTs = 1795307725658868961ULL;  // 2026-11-22T00:35:25.658868961Z

// A line as JsonSink::render gives it, with the session identity a sink adds.
inline std::string with_identity(const std::string& line, uint64_t run, uint64_t seq) {
  return line.substr(0, line.size() - 2) + ",\"run\":" + std::to_string(run) + ",\"seq\":" + std::to_string(seq) +
         "}\n";
}

inline PortRecord assign_record() {
  PortRecord r;
  r.type = PortRecord::Type::Assign;
  r.ts_ns = kTs;
  r.sock = 12345;
  r.proto = Proto::Tcp;
  r.family = Family::Ipv4;
  r.laddr = "10.0.0.5";
  r.lport = 49152;
  r.raddr = "93.184.216.34";
  r.rport = 443;
  r.how = How::Connect;
  r.ephemeral = true;
  r.pid = 4242;
  r.tid = 4243;
  r.ppid = 1;
  r.uid = 1000;
  r.comm = "curl";
  r.thread = "curl";
  r.exe = "/usr/bin/curl";
  r.cmdline = "curl -s https://example.com/";
  r.netns = 4026531840u;
  r.cgroup_id = 777;
  r.container = "docker://abc";
  r.kernel = false;
  return r;
}

inline PortRecord release_record() {
  PortRecord r;
  r.type = PortRecord::Type::Release;
  r.ts_ns = kTs + 1'500'000;
  r.sock = 12345;
  r.proto = Proto::Tcp;
  r.family = Family::Ipv4;
  r.laddr = "10.0.0.5";
  r.lport = 49152;
  r.raddr = "93.184.216.34";
  r.rport = 443;
  r.duration_ns = 1'500'000;
  r.pid = 4242;
  r.comm = "curl";
  r.timewait = true;
  return r;
}

inline JValue parse_line(const std::string& line) {
  EXPECT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n') << line;
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "one line: " << line;
  auto v = parse_json(line);
  if (!v) {
    ADD_FAILURE() << "invalid JSON: " << line;
    return {};
  }
  EXPECT_EQ(v->type, JValue::Type::Obj);
  return *v;
}

inline std::vector<std::string> words(const std::string& s) {
  std::istringstream ss(s);
  std::vector<std::string> w;
  std::string x;
  while (ss >> x) w.push_back(x);
  return w;
}

const std::vector<std::string> kAssignKeys = {
    "type",   "ts",           "ts_ns",   "sock",      "proto",     "family",    "laddr", "lport", "raddr",
    "rport",  "community_id", "how",     "ephemeral", "pid",       "tid",       "ppid",  "uid",   "comm",
    "thread", "exe",          "cmdline", "netns",     "cgroup_id", "container", "kernel"};
const std::vector<std::string> kReleaseKeys = {
    "type",  "ts",           "ts_ns",       "sock", "proto", "family",   "laddr",      "lport",      "raddr",
    "rport", "community_id", "duration_ns", "pid",  "comm",  "timewait", "closer_pid", "closer_tid", "closer_comm"};
