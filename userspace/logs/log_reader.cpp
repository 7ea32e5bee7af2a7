#include "logs/log_reader.hpp"

#include <simdjson.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "common/errors.hpp"
#include "common/version.hpp"
#include "logs/log_file.hpp"

namespace portghost {

namespace {

// The number after `key` in line (our own writer's exact spelling), if any.
std::optional<uint64_t> quick_number(std::string_view line, std::string_view key) {
  size_t at = line.find(key);
  if (at == std::string_view::npos) return std::nullopt;
  size_t i = at + key.size();
  if (i >= line.size() || line[i] < '0' || line[i] > '9') return std::nullopt;
  uint64_t v = 0;
  for (; i < line.size() && line[i] >= '0' && line[i] <= '9'; i++) v = v * 10 + static_cast<uint64_t>(line[i] - '0');
  return v;
}

// A port record of another port, told from the text alone: it need not be
// parsed. Anything unusual goes to the full parser.
bool other_port_record(std::string_view line, uint16_t port) {
  if (line.size() < 20 || line.compare(0, 9, "{\"type\":\"") != 0) return false;
  std::string_view t = line.substr(9, 9);
  if (t.compare(0, 7, "assign\"") != 0 && t.compare(0, 8, "release\"") != 0 && t.compare(0, 9, "existing\"") != 0 &&
      t.compare(0, 5, "life\"") != 0)
    return false;
  auto lport = quick_number(line, "\"lport\":");
  return lport && *lport != port;
}

std::optional<LogEvent::Type> type_of(std::string_view t) {
  if (t == "assign") return LogEvent::Type::Assign;
  if (t == "release") return LogEvent::Type::Release;
  if (t == "existing") return LogEvent::Type::Existing;
  if (t == "start") return LogEvent::Type::Start;
  if (t == "stop") return LogEvent::Type::Stop;
  if (t == "lost") return LogEvent::Type::Lost;
  if (t == "exhausted") return LogEvent::Type::Exhausted;
  if (t == "warning") return LogEvent::Type::Warning;
  if (t == "nat") return LogEvent::Type::Nat;
  if (t == "nat_end") return LogEvent::Type::NatEnd;
  return std::nullopt;
}

void str_field(simdjson::dom::element& doc, const char* key, std::string& out) {
  std::string_view v;
  if (doc[key].get_string().get(v) == simdjson::SUCCESS) out.assign(v);
}

void opt_str_field(simdjson::dom::element& doc, const char* key, std::optional<std::string>& out) {
  std::string_view v;
  if (doc[key].get_string().get(v) == simdjson::SUCCESS) out = std::string(v);
}

void opt_u64_field(simdjson::dom::element& doc, const char* key, std::optional<uint64_t>& out) {
  uint64_t v;
  if (doc[key].get_uint64().get(v) == simdjson::SUCCESS) out = v;
}

}  // namespace

bool no_records(const std::vector<std::string>& paths, uint64_t kept, const ReadStats& totals, std::ostream& err) {
  if (kept) return false;
  std::string names;
  for (size_t i = 0; i < paths.size() && i < 3; i++) names += (i ? ", " : "") + paths[i];
  if (paths.size() > 3) names += ", ...";
  if (!totals.foreign.empty()) {
    err << "portghost: " << names << " holds " << totals.foreign << " documents (trace --format "
        << (totals.foreign == "ECS" ? "ecs" : "ocsf")
        << "): who and stats read portghost's own log (trace --format json, the default for files)\n";
    return true;
  }
  err << "portghost: no portghost record in " << names << ": "
      << (totals.unknown_types ? "only record types this version does not know (a newer portghost's log?)"
          : totals.bad_lines   ? "not a portghost log (no line parses)"
                               : "the log is empty")
      << "\n";
  return true;
}

std::string padded_log_text(std::string_view text) {
  std::string data(text);
  data.resize(text.size() + simdjson::SIMDJSON_PADDING);
  return data;
}

namespace {
// What port and nat records share: the socket's flow and its holder.
void flow_fields(simdjson::dom::element& doc, LogEvent& e) {
  str_field(doc, "proto", e.proto);
  str_field(doc, "family", e.family);
  str_field(doc, "laddr", e.laddr);
  opt_str_field(doc, "raddr", e.raddr);
  str_field(doc, "comm", e.comm);
  opt_u64_field(doc, "pid", e.pid);
  opt_u64_field(doc, "netns", e.netns);
  opt_u64_field(doc, "duration_ns", e.duration_ns);
}
}  // namespace

namespace {

// The one reader of log text: pieces of it in, records out. A line within a
// piece is parsed where it lies; one cut by a piece's end is carried over
// (at most max_line bytes: past that its bytes are counted, not kept).
class RecordReader {
 public:
  RecordReader(const std::string& path, std::optional<uint16_t> want_port, const std::function<void(LogEvent&&)>& keep,
               std::ostream& warn, size_t max_line)
      : path_(path), want_port_(want_port), keep_(keep), warn_(warn), max_line_(max_line) {}

  // size bytes at data, with the parser's padding readable after them.
  void feed(const char* data, size_t size) {
    st_.bytes += size;
    const char* end = data + size;
    for (const char* p = data; p < end;) {
      const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
      size_t n = static_cast<size_t>((nl ? nl : end) - p);
      if (long_) {  // the rest of a line already too long: not kept
      } else if (carried_ + n > max_line_) {
        long_ = true;
        drop_carry();
      } else if (carried_ || !nl) {
        carry_.resize(carried_ + n + simdjson::SIMDJSON_PADDING);
        std::memcpy(carry_.data() + carried_, p, n);
        carried_ += n;
      }
      if (!nl) break;
      st_.lines++;
      if (long_) {
        long_ = false;
        bad("longer than " + std::to_string(max_line_) + " bytes");
      } else if (carried_) {
        parse(std::string_view(carry_.data(), carried_));
        drop_carry();
      } else if (n) {
        parse(std::string_view(p, n));  // the rest of the piece and its padding follow it
      }
      p = nl + 1;
    }
  }

  ReadStats finish() {
    if (long_ || carried_) {
      st_.lines++;
      bad(long_ ? "truncated last line, longer than " + std::to_string(max_line_) + " bytes"
                : "truncated last line (the writer was stopped mid-write)");
    }
    flush_tick();
    return st_;
  }

 private:
  void parse(std::string_view l) {
    line(l);
    if (l.size() > (1u << 20)) parser_ = simdjson::dom::parser();  // its room for a long line, given back
  }

  void drop_carry() {
    carried_ = 0;
    if (carry_.capacity() > (1u << 20)) std::string().swap(carry_);  // after a long line, not kept for good
  }

  void bad(const std::string& why) {
    st_.bad_lines++;
    if (warned_) return;
    warn_ << "portghost: " << path_ << ":" << st_.lines << ": " << why
          << ", skipped (further bad lines of this file are counted, not shown)\n";
    warned_ = true;
  }

  // The latest time of records skipped since the last one kept, as a tick.
  void flush_tick() {
    if (!tick_) return;
    LogEvent t;
    t.type = LogEvent::Type::Tick;
    t.ts_ns = tick_;
    t.host = host_;
    tick_ = 0;
    keep_(std::move(t));
  }

  // One whole line (no newline), with at least the parser's padding readable after it.
  void line(std::string_view line) {
    if (want_port_ && other_port_record(line, *want_port_)) {
      if (auto ts = quick_number(line, "\"ts_ns\":")) {
        // a life line is written at its release: known running up to then
        if (line.compare(9, 5, "life\"") == 0) {
          uint64_t d = quick_number(line, "\"duration_ns\":").value_or(0);
          *ts = d > UINT64_MAX - *ts ? UINT64_MAX : *ts + d;
        }
        tick_ = std::max(tick_, *ts);
        return;
      }
    }
    simdjson::dom::element doc;
    if (parser_.parse(line.data(), line.size(), false).get(doc) != simdjson::SUCCESS || !doc.is_object()) {
      bad("not a JSON object");
      return;
    }
    std::string_view t;
    uint64_t ts = 0;
    if (doc["type"].get_string().get(t) != simdjson::SUCCESS ||
        doc["ts_ns"].get_uint64().get(ts) != simdjson::SUCCESS) {
      if (doc["@timestamp"].error() == simdjson::SUCCESS && doc["ecs"].error() == simdjson::SUCCESS)
        st_.foreign = "ECS";
      else if (doc["class_uid"].error() == simdjson::SUCCESS && doc["metadata"].error() == simdjson::SUCCESS)
        st_.foreign = "OCSF";
      bad("no type or ts_ns");
      return;
    }
    // life: a port's assign and release in one line, read as the two
    const bool life = t == "life";
    auto type = life ? LogEvent::Type::Assign : type_of(t);
    if (!type) {  // a newer portghost's record: not ours to judge
      st_.unknown_types++;
      return;
    }
    LogEvent e;
    e.type = *type;
    e.ts_ns = ts;
    str_field(doc, "host", e.host);
    if (!valid_host_name(e.host)) {  // as the shipper: the store holds no such record
      bad("a host with a control character or over " + std::to_string(kMaxHostName) + " bytes");
      return;
    }
    if (!e.host.empty()) host_ = e.host;
    if (e.type == LogEvent::Type::Exhausted) {
      str_field(doc, "comm", e.comm);
      str_field(doc, "exe", e.exe);
      opt_u64_field(doc, "pid", e.pid);
    }
    if (e.type == LogEvent::Type::Start) {
      uint64_t schema = 0;
      if (doc["schema"].get_uint64().get(schema) == simdjson::SUCCESS && schema > kLogSchema && !newer_told_) {
        warn_ << "portghost: " << path_ << ":" << st_.lines << ": a log of schema " << schema
              << ", newer than this portghost reads (" << kLogSchema
              << "): its records of types this version does not know are skipped\n";
        newer_told_ = true;
      }
    }
    if (e.type == LogEvent::Type::Lost) {
      uint64_t c = 0;
      if (doc["count"].get_uint64().get(c) == simdjson::SUCCESS) e.lost_count = c;
    }
    if (e.type == LogEvent::Type::Assign || e.type == LogEvent::Type::Existing || e.type == LogEvent::Type::Release) {
      uint64_t lport = 0, end = 0;
      if (doc["lport"].get_uint64().get(lport) != simdjson::SUCCESS || lport > 65535 ||
          doc["sock"].get_uint64().get(e.sock) != simdjson::SUCCESS) {
        bad("port record without sock or lport");
        return;
      }
      if (life && (doc["duration_ns"].get_uint64().get(end) != simdjson::SUCCESS || end > UINT64_MAX - ts)) {
        bad("life record without a duration_ns within 2^64 of its ts_ns");
        return;
      }
      if (want_port_ && lport != *want_port_) {
        tick_ = std::max(tick_, ts + end);
        return;
      }
      e.lport = static_cast<uint16_t>(lport);
      flow_fields(doc, e);
      opt_str_field(doc, "community_id", e.community_id);
      uint64_t rp = 0;
      if (doc["rport"].get_uint64().get(rp) == simdjson::SUCCESS && rp <= 65535) e.rport = static_cast<uint16_t>(rp);
      str_field(doc, "how", e.how);
      str_field(doc, "thread", e.thread);
      str_field(doc, "exe", e.exe);
      str_field(doc, "cmdline", e.cmdline);
      str_field(doc, "container", e.container);
      opt_u64_field(doc, "tid", e.tid);
      opt_u64_field(doc, "uid", e.uid);
      bool tw = false;
      if (doc["timewait"].get_bool().get(tw) == simdjson::SUCCESS) e.timewait = tw;
      bool late = false;
      if (doc["late"].get_bool().get(late) == simdjson::SUCCESS) e.late = late;
    }
    if (e.type == LogEvent::Type::Nat || e.type == LogEvent::Type::NatEnd) {
      uint64_t lport = 0, rport = 0, nat_lport = 0, nat_rport = 0;
      if (doc["sock"].get_uint64().get(e.sock) != simdjson::SUCCESS ||
          doc["lport"].get_uint64().get(lport) != simdjson::SUCCESS ||
          doc["rport"].get_uint64().get(rport) != simdjson::SUCCESS ||
          doc["nat_lport"].get_uint64().get(nat_lport) != simdjson::SUCCESS ||
          doc["nat_rport"].get_uint64().get(nat_rport) != simdjson::SUCCESS ||
          (lport | rport | nat_lport | nat_rport) > 65535) {
        bad("nat record without sock or ports");
        return;
      }
      e.lport = static_cast<uint16_t>(lport);
      e.rport = static_cast<uint16_t>(rport);
      e.nat_lport = static_cast<uint16_t>(nat_lport);
      e.nat_rport = static_cast<uint16_t>(nat_rport);
      flow_fields(doc, e);
      str_field(doc, "nat_laddr", e.nat_laddr);
      str_field(doc, "nat_raddr", e.nat_raddr);
    }
    flush_tick();
    if (life) {
      LogEvent release = e;
      release.type = LogEvent::Type::Release;
      release.ts_ns = e.ts_ns + *e.duration_ns;
      // what a release line has: the flow, the holder's pid and name
      release.how.clear();
      release.thread.clear();
      release.exe.clear();
      release.cmdline.clear();
      release.container.clear();
      release.tid.reset();
      release.uid.reset();
      release.netns.reset();
      release.late = false;
      e.duration_ns.reset();
      e.timewait = false;
      keep_(std::move(e));
      keep_(std::move(release));
      return;
    }
    keep_(std::move(e));
  }

  const std::string& path_;
  std::optional<uint16_t> want_port_;
  const std::function<void(LogEvent&&)>& keep_;
  std::ostream& warn_;
  size_t max_line_;
  ReadStats st_;
  simdjson::dom::parser parser_;
  bool warned_ = false, long_ = false;
  bool newer_told_ = false;  // a start of a newer schema was named once
  std::string carry_;        // a line cut by a piece's end, and room for the padding
  size_t carried_ = 0;
  uint64_t tick_ = 0;  // latest time of records skipped since the last one kept
  std::string host_;   // of the latest record read: a log is one host's, and so are its ticks
};

}  // namespace

ReadStats read_log_text(const std::string& path, const std::string& data, size_t size,
                        std::optional<uint16_t> want_port, const std::function<void(LogEvent&&)>& keep,
                        std::ostream& warn) {
  if (data.size() < size + simdjson::SIMDJSON_PADDING) throw FatalError(path + ": log text without padding");
  RecordReader r(path, want_port, keep, warn, kMaxLogLine);
  r.feed(data.data(), size);
  return r.finish();
}

ReadStats read_log(const std::string& path, std::optional<uint16_t> want_port,
                   const std::function<void(LogEvent&&)>& keep, std::ostream& warn, const ReadLimits& limits) {
  LogFile file(path, limits.gz_floor, limits.gz_ratio);
  RecordReader r(path, want_port, keep, warn, limits.max_line);
  std::string buf(std::max<size_t>(limits.chunk, 1) + simdjson::SIMDJSON_PADDING, '\0');
  while (size_t n = file.read(buf.data(), buf.size() - simdjson::SIMDJSON_PADDING)) r.feed(buf.data(), n);
  return r.finish();
}

bool valid_host_name(std::string_view host) {
  return host.size() <= kMaxHostName && std::none_of(host.begin(), host.end(), [](char c) {
           return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
         });
}

}  // namespace portghost
