// Process records and /proc directories for the process cache's tests.
#pragma once

#include <unistd.h>

#include <string>

#include <gtest/gtest.h>

#include "kernel/events.hpp"
#include "test_util.hpp"

namespace pgtest {

using portghost::TaskEvent;

inline TaskEvent task(TaskEvent::Kind kind, uint32_t pid, uint32_t ppid, std::string comm) {
  TaskEvent t{};
  t.kind = kind;
  t.pid = pid;
  t.ppid = ppid;
  t.comm = std::move(comm);
  return t;
}

inline TaskEvent exec_ev(uint32_t pid, uint32_t ppid, std::string comm, std::string exe, std::string cmdline) {
  TaskEvent t = task(TaskEvent::Kind::Exec, pid, ppid, std::move(comm));
  t.exe = std::move(exe);
  t.cmdline = std::move(cmdline);
  return t;
}

// A /proc/PID directory as the kernel shows it.
inline void fake_proc(const TempDir& root, uint32_t pid, const std::string& cmdline, const std::string& comm,
                      const std::string& stat, const std::string& exe_target = "") {
  std::string dir = root / std::to_string(pid);
  write_file(dir + "/cmdline", cmdline);
  write_file(dir + "/comm", comm);
  write_file(dir + "/stat", stat);
  if (!exe_target.empty()) {
    ASSERT_EQ(symlink(exe_target.c_str(), (dir + "/exe").c_str()), 0);
  }
}

}  // namespace pgtest
