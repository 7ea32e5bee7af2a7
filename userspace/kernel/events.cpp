#include "kernel/events.hpp"

#include <arpa/inet.h>

#include <cstring>
#include <vector>

namespace portghost {

void format_addr_to(AddrText& out, Family family, const uint8_t addr[16]) {
  if (family == Family::Ipv4) {  // by hand: inet_ntop formats IPv4 with sprintf
    char buf[16];
    size_t n = 0;
    for (int i = 0; i < 4; i++) {
      unsigned v = addr[i];
      if (i) buf[n++] = '.';
      if (v >= 100) buf[n++] = static_cast<char>('0' + v / 100);
      if (v >= 10) buf[n++] = static_cast<char>('0' + v / 10 % 10);
      buf[n++] = static_cast<char>('0' + v % 10);
    }
    out.assign(buf, n);
    return;
  }
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(AF_INET6, addr, buf, sizeof buf);
  out.assign_cstr(buf, sizeof buf);
}

std::string format_addr(Family family, const uint8_t addr[16]) {
  AddrText s;
  format_addr_to(s, family, addr);
  return s.str();
}

bool addr_is_unspecified(Family family, const uint8_t addr[16]) {
  size_t n = family == Family::Ipv4 ? 4 : 16;
  for (size_t i = 0; i < n; i++)
    if (addr[i]) return false;
  return true;
}

std::string from_cstr(const char* s, size_t max) { return std::string(s, strnlen(s, max)); }

std::string exe_from_components(const char* buf, size_t len) {
  std::vector<std::string_view> parts;
  size_t i = 0;
  while (i < len) {
    size_t n = strnlen(buf + i, len - i);
    if (n > 0) parts.emplace_back(buf + i, n);
    i += n + 1;
  }
  std::string out;
  for (size_t k = parts.size(); k-- > 0;) {  // leaf first in the buffer
    out += '/';
    out += parts[k];
  }
  return out;
}

std::string cmdline_from_args(const char* buf, size_t len) {
  while (len > 0 && buf[len - 1] == '\0') len--;
  std::string out(buf, len);
  for (char& c : out)
    if (c == '\0') c = ' ';
  return out;
}

namespace {

// out = the text of addr, from the memo when it holds the same address.
void format_addr_memo(AddrText& out, SockEvent::AddrMemo& m, Family family, const uint8_t addr[16]) {
  size_t n = family == Family::Ipv4 ? 4 : 16;
  if (!m.used || m.family != family || std::memcmp(m.raw, addr, n) != 0) {
    format_addr_to(m.text, family, addr);
    m.used = true;
    m.family = family;
    std::memcpy(m.raw, addr, n);
  }
  out = m.text;
}

// Every field of e is set: it may hold the previous record.
bool decode_sock(const pg_sock_event& r, SockEvent& e) {
  switch (r.kind) {
    case PG_KIND_ASSIGN: e.kind = SockEvent::Kind::Assign; break;
    case PG_KIND_RELEASE: e.kind = SockEvent::Kind::Release; break;
    case PG_KIND_EXHAUSTED: e.kind = SockEvent::Kind::Exhausted; break;
    default: e.kind = SockEvent::Kind::Existing; break;
  }
  if (r.proto != PG_IPPROTO_TCP && r.proto != PG_IPPROTO_UDP && r.proto != PG_IPPROTO_UDPLITE &&
      r.proto != PG_IPPROTO_SCTP)
    return false;
  if (r.family != PG_AF_INET && r.family != PG_AF_INET6) return false;
  if (r.how > PG_HOW_FASTOPEN) return false;
  e.how = static_cast<How>(r.how);
  e.proto = static_cast<Proto>(r.proto);
  e.family = static_cast<Family>(r.family);
  e.flags = r.flags;
  e.state = r.state;
  e.ts_boot_ns = r.ts_ns;
  e.cookie = r.cookie;
  e.cgroup_id = r.cgroup_id;
  e.pid = r.pid;
  e.tid = r.tid;
  e.ppid = r.ppid;
  e.uid = r.uid;
  e.netns = r.netns;
  e.lport = r.lport;
  e.rport = r.rport;
  bool ranged = r.range_lo <= r.range_hi && r.range_hi != 0;
  e.range_lo = ranged ? r.range_lo : 0;
  e.range_hi = ranged ? r.range_hi : 0;
  bool release = e.kind == SockEvent::Kind::Release;
  e.assigned_boot_ns = release ? r.ino : 0;
  e.holder = release ? r.holder : 0;
  e.ino = release ? 0 : r.ino;
  format_addr_memo(e.laddr, e.laddr_memo, e.family, r.laddr);
  if (r.rport != 0 || !addr_is_unspecified(e.family, r.raddr))
    format_addr_memo(e.raddr, e.raddr_memo, e.family, r.raddr);
  else
    e.raddr.clear();
  e.comm.assign_cstr(r.comm, sizeof r.comm);
  e.thread.assign_cstr(r.thread, sizeof r.thread);
  e.reconciled = false;
  return true;
}

TaskEvent decode_task(const pg_task_event& r) {
  TaskEvent t{};
  t.kind = r.kind == PG_KIND_EXEC   ? TaskEvent::Kind::Exec
           : r.kind == PG_KIND_FORK ? TaskEvent::Kind::Fork
                                    : TaskEvent::Kind::Exit;
  t.ts_boot_ns = r.ts_ns;
  t.pid = r.pid;
  t.ppid = r.ppid;
  t.uid = r.uid;
  t.comm = from_cstr(r.comm, sizeof r.comm);
  return t;
}

}  // namespace

bool is_sock_record(const void* data, size_t size) {
  if (data == nullptr || size < 1) return false;
  switch (*static_cast<const uint8_t*>(data)) {
    case PG_KIND_ASSIGN:
    case PG_KIND_RELEASE:
    case PG_KIND_EXISTING:
    case PG_KIND_EXHAUSTED: return true;
    default: return false;
  }
}

bool decode_sock_into(const void* data, size_t size, SockEvent& e) {
  if (!is_sock_record(data, size) || size < sizeof(pg_sock_event)) return false;
  pg_sock_event r;
  std::memcpy(&r, data, sizeof r);
  return decode_sock(r, e);
}

std::optional<Event> decode(const void* data, size_t size) {
  if (data == nullptr || size < 1) return std::nullopt;
  uint8_t kind = *static_cast<const uint8_t*>(data);
  switch (kind) {
    case PG_KIND_ASSIGN:
    case PG_KIND_RELEASE:
    case PG_KIND_EXISTING:
    case PG_KIND_EXHAUSTED: {
      SockEvent e{};
      if (!decode_sock_into(data, size, e)) return std::nullopt;
      return e;
    }
    case PG_KIND_FORK:
    case PG_KIND_EXIT: {
      if (size < sizeof(pg_task_event)) return std::nullopt;
      pg_task_event r;
      std::memcpy(&r, data, sizeof r);
      return decode_task(r);
    }
    case PG_KIND_EXEC: {
      // sent up to the end of its args, no further
      if (size < kExecHeadSize) return std::nullopt;
      const auto* r = static_cast<const pg_exec_event*>(data);
      if (size < kExecHeadSize + r->args_len || r->args_len > sizeof r->args) return std::nullopt;
      TaskEvent t = decode_task(r->task);
      size_t exe_len = r->exe_len < sizeof r->exe ? r->exe_len : sizeof r->exe;
      size_t args_len = r->args_len;
      t.exe = exe_from_components(r->exe, exe_len);
      if ((r->flags & PG_X_EXE_TRUNCATED) && !t.exe.empty()) t.exe = "/..." + t.exe;
      t.cmdline = cmdline_from_args(r->args, args_len);
      t.exe_truncated = r->flags & PG_X_EXE_TRUNCATED;
      t.args_truncated = r->flags & PG_X_ARGS_TRUNCATED;
      t.args_unreadable = r->flags & PG_X_ARGS_UNREADABLE;
      return t;
    }
    default: return std::nullopt;
  }
}

}  // namespace portghost
