// The kernel's records, and their decoded C++ form.
#pragma once

#include <linux/types.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "common/fixed_text.hpp"
#include "common/net.hpp"

extern "C" {
#include "portghost.h"
}

namespace portghost {

static_assert(sizeof(pg_sock_event) == 136, "pg_sock_event layout changed");
static_assert(sizeof(pg_sk_state) == 128 && offsetof(pg_sk_state, flags) == 4);
static_assert(offsetof(pg_sock_event, range_lo) == 128);
static_assert(offsetof(pg_sock_event, ts_ns) == 8);
static_assert(offsetof(pg_sock_event, cookie) == 16);
static_assert(offsetof(pg_sock_event, cgroup_id) == 24);
static_assert(offsetof(pg_sock_event, pid) == 32);
static_assert(offsetof(pg_sock_event, netns) == 48);
static_assert(offsetof(pg_sock_event, lport) == 52);
static_assert(offsetof(pg_sock_event, ino) == 56);
static_assert(offsetof(pg_sock_event, laddr) == 64);
static_assert(offsetof(pg_sock_event, raddr) == 80);
static_assert(offsetof(pg_sock_event, comm) == 96);
static_assert(offsetof(pg_sock_event, thread) == 112);
static_assert(sizeof(pg_task_event) == 40, "pg_task_event layout changed");
static_assert(offsetof(pg_task_event, ts_ns) == 8);
static_assert(offsetof(pg_task_event, comm) == 24);
static_assert(offsetof(pg_exec_event, exe_len) == 40);
static_assert(offsetof(pg_exec_event, exe) == 48);
static_assert(sizeof(pg_exec_event) == 48 + PG_EXE_BUF + PG_ARGS_LIMIT);
// An exec record is sent up to its args' end: this much at least.
constexpr size_t kExecHeadSize = offsetof(pg_exec_event, args);
static_assert(kExecHeadSize == 48 + PG_EXE_BUF);

// assign, release or existing, as the kernel saw it.
struct SockEvent {
  enum class Kind { Assign, Release, Existing, Exhausted } kind;
  How how = How::None;
  Proto proto = Proto::Tcp;
  Family family = Family::Ipv4;
  uint16_t flags = 0;  // pg_sock_flags
  uint8_t state = 0;
  uint64_t ts_boot_ns = 0;
  uint64_t cookie = 0;
  uint64_t cgroup_id = 0;
  uint32_t pid = 0, tid = 0, ppid = 0, uid = 0, netns = 0;
  uint16_t lport = 0, rport = 0;
  uint16_t range_lo = 0, range_hi = 0;  // the namespace's ephemeral range; 0: not read
  uint64_t ino = 0;
  // release: what the kernel's socket state says of its assign (0: unknown),
  // for a socket the consumer's table no longer holds
  uint64_t assigned_boot_ns = 0;
  uint32_t holder = 0;
  AddrText laddr, raddr;  // textual; raddr empty when unset
  CommText comm, thread;
  bool reconciled = false;  // release: made by the consumer, the socket was found gone

  bool has(uint16_t flag) const { return (flags & flag) != 0; }

  // The last address each of laddr and raddr was decoded from, and its
  // text: decode_sock_into() reuses it when the next record names the same
  // one (most do), instead of formatting it again.
  struct AddrMemo {
    bool used = false;
    Family family = Family::Ipv4;
    uint8_t raw[16] = {};
    AddrText text;
  };
  AddrMemo laddr_memo, raddr_memo;
};

// exec, fork or exit of a process (thread-group leader).
struct TaskEvent {
  enum class Kind { Exec, Fork, Exit } kind;
  uint64_t ts_boot_ns = 0;
  uint32_t pid = 0, ppid = 0, uid = 0;
  std::string comm;
  std::string exe;      // exec only: absolute path
  std::string cmdline;  // exec only: arguments joined by spaces
  bool exe_truncated = false, args_truncated = false, args_unreadable = false;
};

using Event = std::variant<SockEvent, TaskEvent>;

// Decodes one record. nullopt for a record too short for its kind, or of an
// unknown kind: the stream is never trusted blindly.
std::optional<Event> decode(const void* data, size_t size);
// The hot path's form: is it an assign, release, existing or exhausted
// record? And then its decoding into e, whose text storage is reused (false:
// malformed, e unspecified).
bool is_sock_record(const void* data, size_t size);
bool decode_sock_into(const void* data, size_t size, SockEvent& e);

// Text of an address: "127.0.0.1", "::1", "::ffff:10.0.0.1".
std::string format_addr(Family family, const uint8_t addr[16]);
void format_addr_to(AddrText& out, Family family, const uint8_t addr[16]);
bool addr_is_unspecified(Family family, const uint8_t addr[16]);
inline bool addr_text_unspecified(std::string_view a) { return a == "0.0.0.0" || a == "::"; }
// "a\0b\0c\0" (leaf first) -> "/c/b/a"
std::string exe_from_components(const char* buf, size_t len);
// argv block "a\0b\0" -> "a b"
std::string cmdline_from_args(const char* buf, size_t len);
// A fixed kernel char array up to its first NUL.
std::string from_cstr(const char* s, size_t max);

}  // namespace portghost
