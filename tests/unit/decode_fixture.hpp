// Raw kernel records for the decoding tests.
#pragma once

#include <gtest/gtest.h>
#include <memory>
#include <vector>
#include "kernel/events.hpp"
#include "test_util.hpp"

using namespace portghost;
using pgtest::raw_sock;
using pgtest::set_cstr;
using pgtest::set_ipv4;
using namespace std::string_view_literals;

inline const SockEvent& as_sock(const std::optional<Event>& ev) { return std::get<SockEvent>(*ev); }
inline const TaskEvent& as_task(const std::optional<Event>& ev) { return std::get<TaskEvent>(*ev); }

inline std::unique_ptr<pg_exec_event> raw_exec() {
  auto r = std::make_unique<pg_exec_event>();  // value-initialized: all zero
  r->task.kind = PG_KIND_EXEC;
  return r;
}

inline void set_bytes(char* dst, std::string_view bytes) { std::memcpy(dst, bytes.data(), bytes.size()); }

// (data, size) of a literal with embedded NULs
struct S {
  explicit S(std::string_view v) : v(v) {}
  std::string_view v;
};
inline std::string exe_from_components(S s) { return portghost::exe_from_components(s.v.data(), s.v.size()); }
inline std::string cmdline_from_args(S s) { return portghost::cmdline_from_args(s.v.data(), s.v.size()); }
