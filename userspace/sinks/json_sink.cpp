#include "sinks/json_sink.hpp"

#include <cstdio>

#include "common/clock.hpp"

namespace portghost {

namespace {

void head(JsonObject& o, std::string_view type, uint64_t ts) {
  char when[kRfc3339Max];
  o.ascii("type", type).ascii("ts", std::string_view(when, format_rfc3339(ts, when))).num("ts_ns", ts);
}

template <class T>
JsonObject& opt_u(JsonObject& o, std::string_view k, const std::optional<T>& v) {
  return v ? o.num(k, *v) : o.null(k);
}

// Addresses are our own text (from format_addr).
void opt_addr(JsonObject& o, std::string_view k, const std::optional<std::string_view>& v) {
  if (v)
    o.ascii(k, *v);
  else
    o.null(k);
}

// Who did it: pid .. kernel, in the contract's order (assign, existing, exhausted).
void attribution(JsonObject& o, const PortRecord& r) {
  opt_u(o, "pid", r.pid);
  opt_u(o, "tid", r.tid);
  opt_u(o, "ppid", r.ppid);
  opt_u(o, "uid", r.uid);
  o.opt_str("comm", r.comm).opt_str("thread", r.thread).opt_str("exe", r.exe).opt_str("cmdline", r.cmdline);
  opt_u(o, "netns", r.netns);
  opt_u(o, "cgroup_id", r.cgroup_id);
  o.opt_str("container", r.container).boolean("kernel", r.kernel);
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

std::string JsonSink::render(const PortRecord& r, const std::string& host) {
  std::string s;
  render_to(s, r, host);
  return s;
}

void JsonSink::render_to(std::string& s, const PortRecord& r, const std::string& host) {
  JsonObject o(s);
  head(o, type_name(r.type), r.ts_ns);
  if (r.type == PortRecord::Type::Exhausted) {
    o.num("sock", r.sock).ascii("proto", to_string(r.proto)).ascii("family", to_string(r.family));
    opt_addr(o, "raddr", r.raddr);
    opt_u(o, "rport", r.rport);
    o.ascii("how", r.how ? to_string(*r.how) : "unknown");
    attribution(o, r);
    opt_u(o, "held", r.held);
    if (!host.empty()) o.str("host", host);
    o.close();
    return;
  }
  o.num("sock", r.sock)
      .ascii("proto", to_string(r.proto))
      .ascii("family", to_string(r.family))
      .ascii("laddr", r.laddr)
      .num("lport", r.lport);
  opt_addr(o, "raddr", r.raddr);
  opt_u(o, "rport", r.rport);
  if (r.type == PortRecord::Type::Release) {
    opt_u(o, "duration_ns", r.duration_ns);
    opt_u(o, "pid", r.pid);
    o.opt_str("comm", r.comm).boolean("timewait", r.timewait);
    opt_u(o, "closer_pid", r.closer_pid);
    opt_u(o, "closer_tid", r.closer_tid);
    o.opt_str("closer_comm", r.closer_comm);
    if (r.reconciled) o.ascii("reason", "reconciled");
    if (r.mptcp) o.boolean("mptcp", true);
    if (!host.empty()) o.str("host", host);
    o.close();
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
  attribution(o, r);
  if (r.state) o.ascii("state", *r.state);
  if (r.late) o.boolean("late", true);
  if (r.mptcp) o.boolean("mptcp", true);
  if (!host.empty()) o.str("host", host);
  o.close();
}

void JsonSink::port(const PortRecord& r) {
  line_.clear();
  render_to(line_, r, host_);
  out_.write(line_);
}

void JsonSink::start(const StartRecord& r) {
  std::string s;
  JsonObject o(s);
  head(o, "start", r.ts_ns);
  std::string range = "[" + std::to_string(r.port_lo) + "," + std::to_string(r.port_hi) + "]";
  o.str("version", r.version)
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
  o.raw("paths", paths).raw("port_range", range).num("ring_buffer_bytes", r.ring_buffer_bytes);
  std::string filters;
  {
    JsonObject f(filters);
    for (const auto& [k, v] : r.filters) f.str(k, v);
    f.end();
  }
  o.raw("filters", filters);
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
  if (!host_.empty()) o.str("host", host_);
  o.close();
  out_.write(s);
}

void JsonSink::stop(const StopRecord& r) {
  std::string s;
  JsonObject o(s);
  head(o, "stop", r.ts_ns);
  o.str("reason", r.reason).raw("records", counts_object(r.records)).num("lost", r.lost);
  o.num("table_evicted", r.table_evicted);
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
