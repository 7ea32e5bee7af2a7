#include "sinks/standard_sinks.hpp"

#include <vector>

#include "common/clock.hpp"
#include "common/json.hpp"
#include "common/version.hpp"

namespace portghost {

namespace {

// {...} of the members fill(o) writes
template <class Fill>
std::string object(Fill&& fill) {
  std::string s;
  JsonObject o(s);
  fill(o);
  o.end();
  return s;
}

std::string strings(const std::vector<std::string>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); i++) {
    if (i) s += ',';
    json_append_string(s, v[i]);
  }
  return s + "]";
}

std::string rfc3339(uint64_t ns) {
  InstantText t;
  format_instant(ns, t);
  return std::string(t.rfc3339, t.rfc3339_len);
}

template <class T>
void opt(JsonObject& o, std::string_view k, const std::optional<T>& v) {
  if (v) o.num(k, *v);
}
void opt_text(JsonObject& o, std::string_view k, const std::optional<std::string_view>& v) {
  if (v) o.str(k, *v);
}

std::string_view basename_of(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

// What only portghost knows, under "portghost" (ECS) or "unmapped" (OCSF).
std::string portghost_fields(const PortRecord& r, std::optional<std::string_view> community_id, uint64_t run,
                             uint64_t seq) {
  return object([&](JsonObject& p) {
    p.ascii("type", type_name(r.type)).num("ts_ns", r.ts_ns).num("sock", r.sock);
    opt(p, "netns", r.netns);
    opt(p, "cgroup_id", r.cgroup_id);
    if (r.how) p.ascii("how", to_string(*r.how));
    if (r.ephemeral) p.boolean("ephemeral", *r.ephemeral);
    if (r.type != PortRecord::Type::Release) p.boolean("kernel", r.kernel);
    if (r.late) p.boolean("late", true);
    if (r.mptcp) p.boolean("mptcp", true);
    opt_text(p, "state", r.state);
    opt(p, "duration_ns", r.duration_ns);
    if (r.type == PortRecord::Type::Release) p.boolean("timewait", r.timewait);
    if (r.reconciled)
      p.ascii("reason", "reconciled");
    else if (r.disconnect)
      p.ascii("reason", "disconnect");
    opt(p, "held", r.held);
    opt_text(p, "community_id", community_id);
    if (r.closer_pid)
      p.raw("closer", object([&](JsonObject& c) {
              c.num("pid", *r.closer_pid);
              opt(c, "tid", r.closer_tid);
              opt_text(c, "comm", r.closer_comm);
            }));
    opt_text(p, "container", r.container);
    p.num("run", run).num("seq", seq);
  });
}

// A lost or stop record's own keys, under "portghost" (ECS) or "unmapped" (OCSF).
// A NAT record's own keys, under "portghost" (ECS) or "unmapped" (OCSF;
// with the translated ends there too: OCSF 1.2.0 has no field for them).
std::string nat_fields(const NatRecord& r, uint64_t run, uint64_t seq, bool with_ends) {
  return object([&](JsonObject& p) {
    p.ascii("type", type_name(r.type)).num("ts_ns", r.ts_ns).num("sock", r.sock).num("ct_id", r.ct_id);
    opt(p, "netns", r.netns);
    opt(p, "duration_ns", r.duration_ns);
    if (with_ends)
      p.raw("nat", object([&](JsonObject& n) {
              n.ascii("laddr", r.nat_laddr).num("lport", r.nat_lport);
              n.ascii("raddr", r.nat_raddr).num("rport", r.nat_rport);
            }));
    p.num("run", run).num("seq", seq);
  });
}

std::string lost_fields(const LostRecord& r, uint64_t run, uint64_t seq) {
  return object([&](JsonObject& p) {
    p.ascii("type", "lost").num("ts_ns", r.ts_ns).num("count", r.count).num("total", r.total);
    p.raw("reasons", object([&](JsonObject& x) {
            for (const auto& [k, v] : r.by_reason) x.num(k, v);
          }));
    p.num("run", run).num("seq", seq);
  });
}

// What the ECS and OCSF start documents carry alike, after the hooks.
void start_fields(JsonObject& p, const StartRecord& r) {
  p.raw("port_range", "[" + std::to_string(r.port_lo) + "," + std::to_string(r.port_hi) + "]");
  p.num("ring_buffer_bytes", r.ring_buffer_bytes).num("kernel_maps_bytes", r.kernel_maps_bytes);
  p.num("socket_slots", r.socket_slots);
  if (r.nat_mode) p.str("nat_mode", *r.nat_mode);
}

std::string stop_fields(const StopRecord& r, uint64_t run, uint64_t seq) {
  return object([&](JsonObject& p) {
    p.ascii("type", "stop").num("ts_ns", r.ts_ns).str("reason", r.reason);
    p.raw("records", object([&](JsonObject& x) {
            for (const auto& [k, v] : r.records) x.num(k, v);
          }));
    p.num("lost", r.lost).num("table_evicted", r.table_evicted);
    if (r.held) p.num("held", *r.held);
    if (r.skipped_runs) p.num("skipped_runs", *r.skipped_runs);
    if (r.process_evicted) p.num("process_evicted", *r.process_evicted);
    if (r.cgroup_evicted) p.num("cgroup_evicted", *r.cgroup_evicted);
    for (const auto& [key, value] : {std::pair{"nat_unjoined", r.nat_unjoined},
                                     {"nat_ambiguous", r.nat_ambiguous},
                                     {"nat_crowded", r.nat_crowded},
                                     {"nat_looks", r.nat_looks},
                                     {"nat_probes", r.nat_probes},
                                     {"nat_subscriptions", r.nat_subscriptions},
                                     {"socket_slots_full", r.socket_slots_full},
                                     {"socket_slots_freed", r.socket_slots_freed}})
      if (value) p.num(key, *value);
    p.num("run", run).num("seq", seq);
  });
}

}  // namespace

std::string container_id_of(std::string_view container) {
  size_t scheme = container.find("://");
  return std::string(scheme == std::string_view::npos ? container : container.substr(scheme + 3));
}

StandardSink::StandardSink(Output& out, std::string host, uint16_t community_seed)
    : out_(out), host_(std::move(host)), community_ids_(community_seed) {}

// ---- ECS ------------------------------------------------------------------------

namespace {

// "@timestamp", "ecs", "event" (kind event, module portghost): the head of
// every ECS document; its own members come in fill.
template <class Fill>
void ecs_head(JsonObject& o, uint64_t ts_ns, std::string_view category, std::string_view types, std::string_view action,
              uint64_t seq, Fill&& more_event) {
  o.ascii("@timestamp", rfc3339(ts_ns));
  o.raw("ecs", object([](JsonObject& e) { e.ascii("version", kEcsVersion); }));
  o.raw("event", object([&](JsonObject& e) {
          e.ascii("kind", "event").raw("category", "[\"" + std::string(category) + "\"]").raw("type", types);
          e.ascii("action", action).ascii("module", "portghost").ascii("dataset", "portghost.ports");
          e.num("sequence", seq);
          more_event(e);
        }));
}

}  // namespace

void EcsSink::port(const PortRecord& r) {
  uint64_t seq = next_seq();
  auto cid = community_ids_.of(r);
  std::string s;
  JsonObject o(s);
  bool exhausted = r.type == PortRecord::Type::Exhausted;
  std::string_view types = r.type == PortRecord::Type::Assign     ? "[\"connection\",\"start\"]"
                           : r.type == PortRecord::Type::Release  ? "[\"connection\",\"end\"]"
                           : r.type == PortRecord::Type::Existing ? "[\"connection\",\"info\"]"
                                                                  : "[\"connection\",\"error\"]";
  std::string_view action = r.type == PortRecord::Type::Assign     ? "port-assigned"
                            : r.type == PortRecord::Type::Release  ? "port-released"
                            : r.type == PortRecord::Type::Existing ? "port-held-at-start"
                                                                   : "no-free-port";
  ecs_head(o, r.ts_ns, "network", types, action, seq, [&](JsonObject& e) {
    if (exhausted) e.ascii("outcome", "failure");
    opt(e, "duration", r.duration_ns);
  });
  o.raw("network", object([&](JsonObject& n) {
          n.ascii("transport", to_string(r.proto)).ascii("type", to_string(r.family));
          n.ascii("iana_number", std::to_string(static_cast<unsigned>(r.proto)));
          opt_text(n, "community_id", cid);
        }));
  // the host's point of view: the local end is the source
  if (!exhausted) o.raw("source", object([&](JsonObject& e) { e.ascii("ip", r.laddr).num("port", r.lport); }));
  if (r.raddr && r.rport)
    o.raw("destination", object([&](JsonObject& e) { e.ascii("ip", *r.raddr).num("port", *r.rport); }));
  if (r.pid || r.comm)
    o.raw("process", object([&](JsonObject& p) {
            opt(p, "pid", r.pid);
            opt_text(p, "name", r.comm);
            opt_text(p, "executable", r.exe);
            opt_text(p, "command_line", r.cmdline);
            if (r.tid || r.thread)
              p.raw("thread", object([&](JsonObject& t) {
                      opt(t, "id", r.tid);
                      opt_text(t, "name", r.thread);
                    }));
            if (r.ppid) p.raw("parent", object([&](JsonObject& t) { t.num("pid", *r.ppid); }));
          }));
  if (r.uid) o.raw("user", object([&](JsonObject& u) { u.str("id", std::to_string(*r.uid)); }));
  if (r.container) o.raw("container", object([&](JsonObject& c) { c.str("id", container_id_of(*r.container)); }));
  o.raw("host", object([&](JsonObject& h) { h.str("name", host_); }));
  o.raw("portghost", portghost_fields(r, cid, run_, seq));
  o.close();
  out_.write(s);
}

// A translation: the socket's end is the source, as everywhere; what the
// world saw, its NAT (and the destination's, when that was rewritten).
void EcsSink::nat(const NatRecord& r) {
  uint64_t seq = next_seq();
  std::string s;
  JsonObject o(s);
  bool end = r.type == NatRecord::Type::NatEnd;
  ecs_head(o, r.ts_ns, "network", end ? "[\"connection\",\"end\"]" : "[\"connection\",\"start\"]",
           end ? "nat-translation-ended" : "nat-translation", seq,
           [&](JsonObject& e) { opt(e, "duration", r.duration_ns); });
  o.raw("network", object([&](JsonObject& n) {
          n.ascii("transport", to_string(r.proto)).ascii("type", to_string(r.family));
          n.ascii("iana_number", std::to_string(static_cast<unsigned>(r.proto)));
        }));
  o.raw("source", object([&](JsonObject& e) {
          e.ascii("ip", r.laddr).num("port", r.lport);
          e.raw("nat", object([&](JsonObject& n) { n.ascii("ip", r.nat_laddr).num("port", r.nat_lport); }));
        }));
  o.raw("destination", object([&](JsonObject& e) {
          e.ascii("ip", r.raddr).num("port", r.rport);
          if (!(r.nat_raddr == r.raddr) || r.nat_rport != r.rport)
            e.raw("nat", object([&](JsonObject& n) { n.ascii("ip", r.nat_raddr).num("port", r.nat_rport); }));
        }));
  if (r.pid || r.comm)
    o.raw("process", object([&](JsonObject& p) {
            opt(p, "pid", r.pid);
            if (r.comm) p.str("name", r.comm->view());
          }));
  o.raw("host", object([&](JsonObject& h) { h.str("name", host_); }));
  o.raw("portghost", nat_fields(r, run_, seq, false));
  o.close();
  out_.write(s);
}

void EcsSink::start(const StartRecord& r) {
  session_started(r.ts_ns);
  uint64_t seq = next_seq();
  std::string s;
  JsonObject o(s);
  ecs_head(o, r.ts_ns, "host", "[\"start\"]", "trace-started", seq, [](JsonObject&) {});
  o.str("message", "portghost started tracing local ports");
  o.raw("host", object([&](JsonObject& h) {
          h.str("name", r.hostname);
          if (!r.machine_id.empty()) h.str("id", r.machine_id);
          if (!r.boot_id.empty()) h.raw("boot", object([&](JsonObject& b) { b.str("id", r.boot_id); }));
        }));
  o.raw("portghost", object([&](JsonObject& p) {
          p.ascii("type", "start").num("ts_ns", r.ts_ns).str("version", r.version).str("kernel", r.kernel);
          p.str("world", r.world).raw("hooks", strings(r.hooks)).raw("uncaught", strings(r.uncaught));
          start_fields(p, r);
          p.num("run", run_).num("seq", seq);
        }));
  o.close();
  out_.write(s);
}

void EcsSink::lost(const LostRecord& r) {
  uint64_t seq = next_seq();
  std::string s;
  JsonObject o(s);
  ecs_head(o, r.ts_ns, "host", "[\"info\"]", "records-lost", seq, [](JsonObject&) {});
  o.str("message", std::to_string(r.count) + " records lost");
  o.raw("host", object([&](JsonObject& h) { h.str("name", host_); }));
  o.raw("portghost", lost_fields(r, run_, seq));
  o.close();
  out_.write(s);
}

void EcsSink::stop(const StopRecord& r) {
  uint64_t seq = next_seq();
  std::string s;
  JsonObject o(s);
  ecs_head(o, r.ts_ns, "host", "[\"end\"]", "trace-stopped", seq, [](JsonObject&) {});
  o.str("message", "portghost stopped (" + r.reason + ")");
  o.raw("host", object([&](JsonObject& h) { h.str("name", host_); }));
  o.raw("portghost", stop_fields(r, run_, seq));
  o.close();
  out_.write(s);
}

void EcsSink::warning(const WarningRecord& r) {
  uint64_t seq = next_seq();
  std::string s;
  JsonObject o(s);
  ecs_head(o, r.ts_ns, "network", "[\"info\"]", "ephemeral-range-filling", seq, [](JsonObject&) {});
  o.str("message", std::to_string(r.held) + " ports of the ephemeral range held");
  o.raw("network", object([&](JsonObject& n) { n.ascii("transport", to_string(r.proto)); }));
  o.raw("host", object([&](JsonObject& h) { h.str("name", host_); }));
  o.raw("portghost", object([&](JsonObject& p) {
          p.ascii("type", "warning").num("ts_ns", r.ts_ns).num("netns", r.netns).num("held", r.held);
          p.raw("range", "[" + std::to_string(r.range_lo) + "," + std::to_string(r.range_hi) + "]");
          p.num("threshold", r.threshold).num("run", run_).num("seq", seq);
        }));
  o.close();
  out_.write(s);
}

// ---- OCSF -------------------------------------------------------------------------

namespace {

// class, activity, type, severity, time and metadata: the head of every
// OCSF event. Network Activity (4001) for ports, Base Event (0) for the rest.
void ocsf_head(JsonObject& o, bool network, int activity, std::string_view activity_name, int severity,
               std::string_view severity_name, uint64_t ts_ns, const std::string& host, uint64_t run, uint64_t seq) {
  int cls = network ? 4001 : 0;
  o.num("activity_id", static_cast<uint64_t>(activity)).ascii("activity_name", activity_name);
  o.num("category_uid", network ? 4 : 0).ascii("category_name", network ? "Network Activity" : "Uncategorized");
  o.num("class_uid", static_cast<uint64_t>(cls)).ascii("class_name", network ? "Network Activity" : "Base Event");
  o.num("type_uid", static_cast<uint64_t>(cls) * 100 + static_cast<uint64_t>(activity));
  o.str("type_name", std::string(network ? "Network Activity: " : "Base Event: ") + std::string(activity_name));
  o.num("severity_id", static_cast<uint64_t>(severity)).ascii("severity", severity_name);
  o.num("time", ts_ns / 1'000'000);
  o.raw("metadata", object([&](JsonObject& m) {
          m.ascii("version", kOcsfVersion);
          m.raw("product", object([](JsonObject& p) {
                  p.ascii("name", "portghost").ascii("vendor_name", "portghost").ascii("version", kVersion);
                }));
          m.raw("profiles", "[\"host\"]");  // device and actor come with the host profile
          m.str("uid", host + ":" + std::to_string(run) + ":" + std::to_string(seq));
          m.num("sequence", seq).ascii("log_name", "portghost");
        }));
  o.raw("device", object([&](JsonObject& d) { d.str("hostname", host).num("type_id", 0); }));
}

}  // namespace

void OcsfSink::port(const PortRecord& r) {
  uint64_t seq = next_seq();
  auto cid = community_ids_.of(r);
  bool exhausted = r.type == PortRecord::Type::Exhausted;
  int activity = r.type == PortRecord::Type::Release ? 2 : exhausted ? 4 : 1;
  std::string_view name = activity == 2 ? "Close" : activity == 4 ? "Fail" : "Open";
  std::string s;
  JsonObject o(s);
  ocsf_head(o, true, activity, name, exhausted ? 3 : 1, exhausted ? "Medium" : "Informational", r.ts_ns, host_, run_,
            seq);
  o.num("status_id", exhausted ? 2 : 1).ascii("status", exhausted ? "Failure" : "Success");
  if (exhausted) o.str("status_detail", "no free local port");
  o.raw("src_endpoint", object([&](JsonObject& e) {
          if (!exhausted) e.ascii("ip", r.laddr).num("port", r.lport);
        }));
  o.raw("dst_endpoint", object([&](JsonObject& e) {
          if (r.raddr && r.rport) e.ascii("ip", *r.raddr).num("port", *r.rport);
        }));
  bool outbound = r.raddr && r.how && (*r.how == How::Connect || *r.how == How::Fastopen || *r.how == How::Sendmsg);
  o.raw("connection_info", object([&](JsonObject& c) {
          c.num("protocol_num", static_cast<unsigned>(r.proto)).ascii("protocol_name", to_string(r.proto));
          c.num("protocol_ver_id", r.family == Family::Ipv4 ? 4 : 6);
          c.num("direction_id", outbound ? 2 : 0).ascii("direction", outbound ? "Outbound" : "Unknown");
          c.str("uid", std::to_string(r.sock));
        }));
  if (r.pid || r.comm)
    o.raw("actor", object([&](JsonObject& a) {
            a.raw("process", object([&](JsonObject& p) {
                    opt(p, "pid", r.pid);
                    opt(p, "tid", r.tid);
                    opt_text(p, "name", r.comm);
                    opt_text(p, "cmd_line", r.cmdline);
                    if (r.exe)
                      p.raw("file", object([&](JsonObject& f) {
                              f.str("path", *r.exe).str("name", basename_of(*r.exe)).num("type_id", 1);
                            }));
                    if (r.ppid) p.raw("parent_process", object([&](JsonObject& pp) { pp.num("pid", *r.ppid); }));
                    if (r.uid) p.raw("user", object([&](JsonObject& u) { u.str("uid", std::to_string(*r.uid)); }));
                  }));
            if (r.uid) a.raw("user", object([&](JsonObject& u) { u.str("uid", std::to_string(*r.uid)); }));
          }));
  if (r.duration_ns) {
    o.num("duration", *r.duration_ns / 1'000'000);
    if (*r.duration_ns <= r.ts_ns) o.num("start_time", (r.ts_ns - *r.duration_ns) / 1'000'000);
    o.num("end_time", r.ts_ns / 1'000'000);
  }
  o.raw("unmapped", portghost_fields(r, cid, run_, seq));
  o.close();
  out_.write(s);
}

// A translation as Network Activity "Traffic" (6): the socket's end and its
// peer; the ends the world saw under unmapped (OCSF 1.2.0 has no NAT field).
void OcsfSink::nat(const NatRecord& r) {
  uint64_t seq = next_seq();
  std::string s;
  JsonObject o(s);
  ocsf_head(o, true, 6, "Traffic", 1, "Informational", r.ts_ns, host_, run_, seq);
  o.num("status_id", 1).ascii("status", "Success");
  o.raw("src_endpoint", object([&](JsonObject& e) { e.ascii("ip", r.laddr).num("port", r.lport); }));
  o.raw("dst_endpoint", object([&](JsonObject& e) { e.ascii("ip", r.raddr).num("port", r.rport); }));
  o.raw("connection_info", object([&](JsonObject& c) {
          c.num("protocol_num", static_cast<unsigned>(r.proto)).ascii("protocol_name", to_string(r.proto));
          c.num("protocol_ver_id", r.family == Family::Ipv4 ? 4 : 6);
          c.num("direction_id", 2).ascii("direction", "Outbound");
          c.str("uid", std::to_string(r.sock));
        }));
  if (r.pid || r.comm)
    o.raw("actor", object([&](JsonObject& a) {
            a.raw("process", object([&](JsonObject& p) {
                    opt(p, "pid", r.pid);
                    if (r.comm) p.str("name", r.comm->view());
                  }));
          }));
  if (r.duration_ns) o.num("duration", *r.duration_ns / 1'000'000);
  o.raw("unmapped", nat_fields(r, run_, seq, true));
  o.close();
  out_.write(s);
}

void OcsfSink::start(const StartRecord& r) {
  session_started(r.ts_ns);
  uint64_t seq = next_seq();
  std::string s;
  JsonObject o(s);
  ocsf_head(o, false, 99, "Other", 1, "Informational", r.ts_ns, host_.empty() ? r.hostname : host_, run_, seq);
  o.str("message", "portghost started tracing local ports");
  o.raw("unmapped", object([&](JsonObject& p) {
          p.ascii("type", "start").num("ts_ns", r.ts_ns).str("version", r.version).str("kernel", r.kernel);
          p.str("machine_id", r.machine_id).str("boot_id", r.boot_id).str("world", r.world);
          p.raw("hooks", strings(r.hooks)).raw("uncaught", strings(r.uncaught));
          start_fields(p, r);
          p.num("run", run_).num("seq", seq);
        }));
  o.close();
  out_.write(s);
}

void OcsfSink::lost(const LostRecord& r) {
  uint64_t seq = next_seq();
  std::string s;
  JsonObject o(s);
  ocsf_head(o, false, 99, "Other", 3, "Medium", r.ts_ns, host_, run_, seq);
  o.str("message", std::to_string(r.count) + " records lost");
  o.raw("unmapped", lost_fields(r, run_, seq));
  o.close();
  out_.write(s);
}

void OcsfSink::stop(const StopRecord& r) {
  uint64_t seq = next_seq();
  std::string s;
  JsonObject o(s);
  ocsf_head(o, false, 99, "Other", 1, "Informational", r.ts_ns, host_, run_, seq);
  o.str("message", "portghost stopped (" + r.reason + ")");
  o.raw("unmapped", stop_fields(r, run_, seq));
  o.close();
  out_.write(s);
}

void OcsfSink::warning(const WarningRecord& r) {
  uint64_t seq = next_seq();
  std::string s;
  JsonObject o(s);
  ocsf_head(o, false, 99, "Other", 3, "Medium", r.ts_ns, host_, run_, seq);
  o.str("message", std::to_string(r.held) + " ports of the ephemeral range held");
  o.raw("unmapped", object([&](JsonObject& p) {
          p.ascii("type", "warning").num("ts_ns", r.ts_ns).num("netns", r.netns).ascii("proto", to_string(r.proto));
          p.num("held", r.held).raw("range", "[" + std::to_string(r.range_lo) + "," + std::to_string(r.range_hi) + "]");
          p.num("threshold", r.threshold).num("run", run_).num("seq", seq);
        }));
  o.close();
  out_.write(s);
}

}  // namespace portghost
