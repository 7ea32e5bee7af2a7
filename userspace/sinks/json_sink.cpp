#include "sinks/json_sink.hpp"

#include <cstdio>
#include <cstring>

#include "common/clock.hpp"
#include "common/community_id.hpp"
#include "common/version.hpp"

namespace portghost {

namespace {

void head(JsonObject& o, std::string_view type, uint64_t ts) {
  InstantText when;
  format_instant(ts, when);
  o.ascii("type", type)
      .ascii("ts", std::string_view(when.rfc3339, when.rfc3339_len))
      .raw("ts_ns", std::string_view(when.decimal, when.decimal_len));
}

// Addresses are our own text (from format_addr).
[[gnu::always_inline]] inline void opt_addr(JsonObject& o, std::string_view k,
                                            const std::optional<std::string_view>& v) {
  if (v)
    o.ascii(k, *v);
  else
    o.null(k);
}

std::string string_array(const std::vector<std::string>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); i++) {
    if (i) s += ',';
    json_append_string(s, v[i]);
  }
  return s + "]";
}

template <class M>
std::string counts_object(const M& m) {
  std::string s;
  JsonObject o(s);
  for (const auto& [k, v] : m) o.num(k, v);
  o.end();
  return s;
}

}  // namespace

namespace {
void attribute(JsonObject& o, const PortRecord& r, AttributionCache* cache) {
  if (cache)
    o.members(cache->members(r));
  else
    render_attribution(o, r);
}

JsonObject& task_name(JsonObject& o, std::string_view key, const std::optional<std::string_view>& name,
                      AttributionCache* cache) {
  if (cache && name) return o.raw(key, cache->quoted_name(*name));
  return o.opt_str(key, name);
}
}  // namespace

JsonSink::JsonSink(Output& out, std::string host, uint16_t community_seed, LifeLines life)
    : out_(out),
      host_(std::move(host)),
      host_member_(host_member_of(host_)),
      community_ids_(community_seed),
      life_(life),
      held_(HeldAssigns::Limits{life.hold_ns, life.max_bytes}) {
  if (!life_.clock) life_.clock = &BootClock::now_boot_ns;
}

std::string JsonSink::host_member_of(const std::string& host) {
  if (host.empty()) return "";
  return json_members([&](JsonObject& o) { o.str("host", host); });
}

std::string JsonSink::render(const PortRecord& r, const std::string& host, uint16_t community_seed) {
  std::string s;
  JsonObject o(s);
  CommunityIds ids(community_seed);
  render_into(o, r, host_member_of(host), nullptr, ids);
  o.close();
  return s;
}

// The members after host: the session (its start's time) and the line's
// number in it. Records before a start (none in a real run) have run 0.
void JsonSink::identity(JsonObject& o) {
  if (run_member_.empty()) run_member_ = json_members([](JsonObject& m) { m.num("run", 0); });
  o.members(run_member_).raw("seq", seq_.text());
  seq_.next();
}

void JsonSink::render_into(JsonObject& o, const PortRecord& r, std::string_view host_member, AttributionCache* cache,
                           CommunityIds& ids) {
  head(o, type_name(r.type), r.ts_ns);
  if (r.type == PortRecord::Type::Exhausted) {
    o.num("sock", r.sock).ascii("proto", to_string(r.proto)).ascii("family", to_string(r.family));
    opt_addr(o, "raddr", r.raddr);
    o.opt_num("rport", r.rport);
    o.ascii("how", r.how ? to_string(*r.how) : "unknown");
    attribute(o, r, cache);
    o.opt_num("held", r.held);
    if (!host_member.empty()) o.members(host_member);
    return;
  }
  o.num("sock", r.sock)
      .ascii("proto", to_string(r.proto))
      .ascii("family", to_string(r.family))
      .ascii("laddr", r.laddr)
      .num("lport", r.lport);
  opt_addr(o, "raddr", r.raddr);
  o.opt_num("rport", r.rport);
  opt_addr(o, "community_id", ids.of(r));  // base64 and "1:": plain ASCII
  if (r.type == PortRecord::Type::Release) {
    o.opt_num("duration_ns", r.duration_ns);
    o.opt_num("pid", r.pid);
    task_name(o, "comm", r.comm, cache).boolean("timewait", r.timewait);
    o.opt_num("closer_pid", r.closer_pid);
    o.opt_num("closer_tid", r.closer_tid);
    task_name(o, "closer_comm", r.closer_comm, cache);
    if (r.reconciled)
      o.ascii("reason", "reconciled");
    else if (r.disconnect)
      o.ascii("reason", "disconnect");
    if (r.late) o.boolean("late", true);
    if (r.mptcp) o.boolean("mptcp", true);
    if (!host_member.empty()) o.members(host_member);
    return;
  }
  if (r.how)
    o.ascii("how", to_string(*r.how));
  else
    o.null("how");
  if (r.ephemeral)
    o.boolean("ephemeral", *r.ephemeral);
  else
    o.null("ephemeral");
  attribute(o, r, cache);
  if (r.state) o.ascii("state", *r.state);
  if (r.late) o.boolean("late", true);
  if (r.mptcp) o.boolean("mptcp", true);
  if (!host_member.empty()) o.members(host_member);
}

namespace {
constexpr std::string_view kAssignHead = "{\"type\":\"assign\"";
}

void JsonSink::write_assign(std::string_view members) {
  JsonObject o(line_, JsonObject::Overwrite{});
  o.ascii("type", "assign").members(members).members(host_member_);
  identity(o);
  o.close();
  out_.write(std::string_view(line_.data(), o.length()));
}

// The assign's members, then what its release adds: how long the port was
// held, whether it lives on in TIME_WAIT, and who closed the socket (the
// holder is the assign's).
void JsonSink::write_life(std::string_view members, const PortRecord& r) {
  JsonObject o(line_, JsonObject::Overwrite{});
  o.ascii("type", "life").members(members).num("duration_ns", *r.duration_ns).boolean("timewait", r.timewait);
  o.opt_num("closer_pid", r.closer_pid);
  o.opt_num("closer_tid", r.closer_tid);
  task_name(o, "closer_comm", r.closer_comm, &attribution_).members(host_member_);
  identity(o);
  o.close();
  out_.write(std::string_view(line_.data(), o.length()));
}

void JsonSink::flush() {
  if (life_.hold_ns) held_.expire(life_.clock(), assign_writer());
  out_.flush();
}

void JsonSink::port(const PortRecord& r) {
  if (life_.hold_ns) {
    auto write = assign_writer();
    if (r.type == PortRecord::Type::Assign) {
      JsonObject o(held_line_, JsonObject::Overwrite{});
      render_into(o, r, "", &attribution_, community_ids_);
      o.end();
      // {"type":"assign" ... }: what follows the type, without the brace
      std::string_view text(held_line_.data(), o.length());
      held_.hold(r, text.substr(kAssignHead.size(), text.size() - kAssignHead.size() - 1), write);
      return;
    }
    if (r.type == PortRecord::Type::Release) {
      if (auto m = held_.pair(r, write)) {
        write_life(*m, r);
        return;
      }
    }
  }
  JsonObject o(line_, JsonObject::Overwrite{});
  render_into(o, r, host_member_, &attribution_, community_ids_);
  identity(o);
  o.close();
  out_.write(std::string_view(line_.data(), o.length()));
}

void JsonSink::start(const StartRecord& r) {
  std::string s;
  JsonObject o(s);
  head(o, "start", r.ts_ns);
  std::string range = "[" + std::to_string(r.port_lo) + "," + std::to_string(r.port_hi) + "]";
  o.str("version", r.version)
      .num("schema", kLogSchema)
      .str("kernel", r.kernel)
      .str("host", r.hostname)
      .str("machine_id", r.machine_id)
      .str("boot_id", r.boot_id)
      .str("world", r.world)
      .raw("hooks", string_array(r.hooks))
      .raw("uncaught", string_array(r.uncaught));
  std::string paths;
  {
    JsonObject p(paths);
    for (const auto& [path, hook] : r.paths) {
      if (hook.empty())
        p.null(path);
      else
        p.str(path, hook);
    }
    p.end();
  }
  o.raw("paths", paths)
      .raw("port_range", range)
      .num("ring_buffer_bytes", r.ring_buffer_bytes)
      .num("kernel_maps_bytes", r.kernel_maps_bytes)
      .num("socket_slots", r.socket_slots);
  if (r.nat_mode) o.str("nat_mode", *r.nat_mode);
  std::string filters;
  {
    JsonObject f(filters);
    for (const auto& [k, v] : r.filters) f.str(k, v);
    f.end();
  }
  o.raw("filters", filters);
  // a new session: its lines are numbered from this one, and named by its time
  run_member_ = json_members([&](JsonObject& m) { m.num("run", r.ts_ns); });
  seq_.reset();
  identity(o);
  o.close();
  out_.write(s);
}

void JsonSink::lost(const LostRecord& r) {
  std::string s;
  JsonObject o(s);
  head(o, "lost", r.ts_ns);
  o.num("count", r.count).num("total", r.total).raw("reasons", counts_object(r.by_reason));
  finish(o, s);
}

void JsonSink::finish(JsonObject& o, const std::string& s) {
  if (!host_member_.empty()) o.members(host_member_);
  identity(o);
  o.close();
  out_.write(s);
}

void JsonSink::stop(const StopRecord& r) {
  held_.write_all(assign_writer());
  std::string s;
  JsonObject o(s);
  head(o, "stop", r.ts_ns);
  o.str("reason", r.reason).raw("records", counts_object(r.records)).num("lost", r.lost);
  o.num("table_evicted", r.table_evicted);
  if (r.held) o.num("held", *r.held);
  if (r.skipped_runs) o.num("skipped_runs", *r.skipped_runs);
  if (r.process_evicted) o.num("process_evicted", *r.process_evicted);
  if (r.cgroup_evicted) o.num("cgroup_evicted", *r.cgroup_evicted);
  if (r.nat_unjoined) o.num("nat_unjoined", *r.nat_unjoined);
  if (r.nat_ambiguous) o.num("nat_ambiguous", *r.nat_ambiguous);
  if (r.nat_crowded) o.num("nat_crowded", *r.nat_crowded);
  if (r.nat_looks) o.num("nat_looks", *r.nat_looks);
  if (r.nat_probes) o.num("nat_probes", *r.nat_probes);
  if (r.nat_subscriptions) o.num("nat_subscriptions", *r.nat_subscriptions);
  if (r.socket_slots_full) o.num("socket_slots_full", *r.socket_slots_full);
  if (r.socket_slots_freed) o.num("socket_slots_freed", *r.socket_slots_freed);
  if (life_.hold_ns) o.num("life_hold_full", held_.early());
  finish(o, s);
}

void JsonSink::nat(const NatRecord& r) {
  held_.write_sock(r.sock, assign_writer());  // its socket's assign first
  std::string s;
  JsonObject o(s);
  head(o, type_name(r.type), r.ts_ns);
  o.num("sock", r.sock).str("proto", to_string(r.proto)).str("family", to_string(r.family));
  o.ascii("laddr", r.laddr).num("lport", r.lport).ascii("raddr", r.raddr).num("rport", r.rport);
  o.ascii("nat_laddr", r.nat_laddr).num("nat_lport", r.nat_lport);
  o.ascii("nat_raddr", r.nat_raddr).num("nat_rport", r.nat_rport);
  o.num("ct_id", r.ct_id);
  if (r.duration_ns) o.num("duration_ns", *r.duration_ns);
  o.opt_num("pid", r.pid);
  if (r.comm)
    o.str("comm", r.comm->view());
  else
    o.null("comm");
  o.opt_num("netns", r.netns);
  finish(o, s);
}

void JsonSink::warning(const WarningRecord& r) {
  std::string s;
  JsonObject o(s);
  head(o, "warning", r.ts_ns);
  std::string range = "[" + std::to_string(r.range_lo) + "," + std::to_string(r.range_hi) + "]";
  uint64_t size = static_cast<uint64_t>(r.range_hi - r.range_lo) + 1;
  o.str("what", "ephemeral_occupancy").num("netns", r.netns).str("proto", to_string(r.proto));
  o.num("held", r.held).raw("range", range).num("percent", r.held * 100 / size).num("threshold", r.threshold);
  finish(o, s);
}

}  // namespace portghost
