#include "sinks/attribution_cache.hpp"

#include <cstring>

namespace portghost {

namespace {

template <class A, class B>
bool same(const std::optional<A>& a, const std::optional<B>& b) {
  return a.has_value() == b.has_value() && (!a || *a == *b);
}

// The same for text, without a call for the short ones (a task's name):
// two overlapping words compared.
bool same(const std::optional<std::string>& a, const std::optional<std::string_view>& b) {
  if (a.has_value() != b.has_value()) return false;
  if (!a) return true;
  size_t n = a->size();
  if (n != b->size()) return false;
  const char *x = a->data(), *y = b->data();
  auto word = [](const char* p) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    return w;
  };
  auto half = [](const char* p) {
    uint32_t w;
    std::memcpy(&w, p, 4);
    return w;
  };
  if (n >= 8 && n <= 16) return word(x) == word(y) && word(x + n - 8) == word(y + n - 8);
  if (n >= 4 && n < 8) return half(x) == half(y) && half(x + n - 4) == half(y + n - 4);
  return std::memcmp(x, y, n) == 0;
}

template <class A, class B>
void keep(std::optional<A>& a, const std::optional<B>& b) {
  if (b)
    a.emplace(*b);
  else
    a.reset();
}

}  // namespace

void render_attribution(JsonObject& o, const PortRecord& r) {
  o.opt_num("pid", r.pid);
  o.opt_num("tid", r.tid);
  o.opt_num("ppid", r.ppid);
  o.opt_num("uid", r.uid);
  o.opt_str("comm", r.comm).opt_str("thread", r.thread).opt_str("exe", r.exe).opt_str("cmdline", r.cmdline);
  o.opt_num("netns", r.netns);
  o.opt_num("cgroup_id", r.cgroup_id);
  o.opt_str("container", r.container).boolean("kernel", r.kernel);
}

bool AttributionCache::Slot::matches(const PortRecord& r) const {
  return used && kernel == r.kernel && same(tid, r.tid) && same(pid, r.pid) && same(ppid, r.ppid) && same(uid, r.uid) &&
         same(netns, r.netns) && same(cgroup_id, r.cgroup_id) && same(comm, r.comm) && same(thread, r.thread) &&
         same(exe, r.exe) && same(cmdline, r.cmdline) && same(container, r.container);
}

void AttributionCache::Slot::fill(const PortRecord& r) {
  used = true;
  keep(pid, r.pid);
  keep(tid, r.tid);
  keep(ppid, r.ppid);
  keep(uid, r.uid);
  keep(netns, r.netns);
  keep(cgroup_id, r.cgroup_id);
  keep(comm, r.comm);
  keep(thread, r.thread);
  keep(exe, r.exe);
  keep(cmdline, r.cmdline);
  keep(container, r.container);
  kernel = r.kernel;
  text = json_members([&](JsonObject& o) { render_attribution(o, r); });
}

std::string_view AttributionCache::members(const PortRecord& r) {
  Slot& s = slots_[(r.tid.value_or(0) ^ r.pid.value_or(0)) % kSlots];
  if (s.matches(r)) {
    hits_++;
    return s.text;
  }
  s.fill(r);
  return s.text;
}

std::string_view AttributionCache::quoted_name(std::string_view name) {
  if (!same(name_, std::optional<std::string_view>(name))) {
    name_.emplace(name);
    name_quoted_ = json_quote(name);
  }
  return name_quoted_;
}

std::optional<std::string_view> CommunityIds::of(const PortRecord& r) {
  if (!r.raddr || !r.rport) return std::nullopt;
  Slot& s = slots_[r.sock % kSlots];
  if (!s.used || s.sock != r.sock || s.proto != r.proto || s.lport != r.lport || s.rport != *r.rport ||
      s.laddr != r.laddr || s.raddr != *r.raddr) {
    s.used = true;
    s.sock = r.sock;
    s.proto = r.proto;
    s.lport = r.lport;
    s.rport = *r.rport;
    s.laddr = r.laddr;
    s.raddr = *r.raddr;
    s.has_id = community_id_v1_into(s.id, static_cast<uint8_t>(r.proto), r.laddr, r.lport, *r.raddr, *r.rport, seed_);
  }
  if (!s.has_id) return std::nullopt;
  return s.id.view();
}

}  // namespace portghost
