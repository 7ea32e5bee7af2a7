#include "sinks/table_sink.hpp"
#include "sinks/standard_sinks.hpp"

#include "common/clock.hpp"
#include "common/text.hpp"
#include "sinks/json_sink.hpp"

namespace portghost {

namespace {

std::string endpoint(Family f, std::string_view addr, uint16_t port) {
  std::string a = printable(addr);
  if (f == Family::Ipv6) a = "[" + a + "]";
  return a + ":" + std::to_string(port);
}

constexpr const char* kRowFmt = "%-12s %-8s %7s %-16s %-5s %-28s %-28s %-8s %s\n";

}  // namespace

std::string TableSink::header() {
  char buf[256];
  std::snprintf(buf, sizeof buf, kRowFmt, "TIME", "EVENT", "PID", "COMM", "PROTO", "LOCAL", "REMOTE", "HOW",
                "LIFETIME");
  return buf;
}

std::string TableSink::render(const PortRecord& r) {
  std::string remote = r.raddr ? endpoint(r.family, *r.raddr, r.rport.value_or(0)) : "-";
  std::string how = "-", lifetime = "-";
  if (r.type == PortRecord::Type::Exhausted) {
    how = r.how ? std::string(to_string(*r.how)) : "-";
    lifetime = r.held ? std::to_string(*r.held) + " held" : "-";
  } else if (r.type == PortRecord::Type::Release) {
    lifetime = r.duration_ns ? format_duration(*r.duration_ns) : "?";
    if (r.timewait) how = "timewait";
  } else if (r.how) {
    how = std::string(to_string(*r.how));
  }
  std::string pid = r.kernel ? "kernel" : r.pid ? std::to_string(*r.pid) : "-";
  std::string comm = printable(r.comm.value_or("-"));
  char buf[512];
  std::snprintf(buf, sizeof buf, kRowFmt, format_clock_local(r.ts_ns).c_str(), std::string(type_name(r.type)).c_str(),
                pid.c_str(), comm.c_str(), std::string(to_string(r.proto)).c_str(),
                endpoint(r.family, r.laddr, r.lport).c_str(), remote.c_str(), how.c_str(), lifetime.c_str());
  return buf;
}

// the flow as the socket sent it; the last column, as the world saw it
std::string TableSink::render(const NatRecord& r) {
  std::string pid = r.pid ? std::to_string(*r.pid) : "-";
  std::string comm = r.comm ? printable(r.comm->view()) : "-";
  std::string seen = "as " + endpoint(r.family, r.nat_laddr, r.nat_lport);
  if (!(r.nat_raddr == r.raddr) || r.nat_rport != r.rport)
    seen += " -> " + endpoint(r.family, r.nat_raddr, r.nat_rport);
  if (r.duration_ns) seen += ", " + format_duration(*r.duration_ns);
  char buf[512];
  std::snprintf(buf, sizeof buf, kRowFmt, format_clock_local(r.ts_ns).c_str(), std::string(type_name(r.type)).c_str(),
                pid.c_str(), comm.c_str(), std::string(to_string(r.proto)).c_str(),
                endpoint(r.family, r.laddr, r.lport).c_str(), endpoint(r.family, r.raddr, r.rport).c_str(), "nat",
                seen.c_str());
  return buf;
}

void TableSink::nat(const NatRecord& r) { out_.write(render(r)); }

void TableSink::start(const StartRecord& r) {
  std::string s = "# portghost " + r.version + " on " + printable(r.kernel) + ", ephemeral range " +
                  std::to_string(r.port_lo) + "-" + std::to_string(r.port_hi) + "\n";
  for (const auto& u : r.uncaught) s += "# not caught here: " + printable(u) + "\n";
  out_.write(s + header());
}

void TableSink::port(const PortRecord& r) { out_.write(render(r)); }

void TableSink::warning(const WarningRecord& r) {
  uint64_t size = static_cast<uint64_t>(r.range_hi - r.range_lo) + 1;
  out_.write("# WARNING: " + std::string(to_string(r.proto)) + " ephemeral ports of netns " + std::to_string(r.netns) +
             " are " + std::to_string(r.held * 100 / size) + "% held (" + std::to_string(r.held) + " of " +
             std::to_string(size) + ")\n");
}

void TableSink::lost(const LostRecord& r) {
  out_.write("# LOST " + std::to_string(r.count) + " records (total " + std::to_string(r.total) + ")\n");
}

void TableSink::stop(const StopRecord& r) {
  std::string s = "# stopped (" + r.reason + "):";
  for (const auto& [k, v] : r.records) s += " " + k + "=" + std::to_string(v);
  s += " lost=" + std::to_string(r.lost) + "\n";
  out_.write(s);
}

std::unique_ptr<Sink> make_sink(Format format, Output& out, const std::string& host, uint16_t community_seed,
                                LifeLines life) {
  if (format == Format::Table) return std::make_unique<TableSink>(out);
  if (format == Format::Ecs) return std::make_unique<EcsSink>(out, host, community_seed);
  if (format == Format::Ocsf) return std::make_unique<OcsfSink>(out, host, community_seed);
  return std::make_unique<JsonSink>(out, host, community_seed, life);
}

}  // namespace portghost
