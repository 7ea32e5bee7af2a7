#include "logs/log_reader.hpp"

#include <dirent.h>
#include <sys/stat.h>
#include <zlib.h>

#include <simdjson.h>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "common/errors.hpp"

namespace portghost {

namespace {

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

// Whole file, decompressed, followed by simdjson's padding; returns the size
// of the data proper.
size_t slurp(const std::string& path, std::string& data) {
  if (ends_with(path, ".gz")) {
    gzFile gz = gzopen(path.c_str(), "rb");
    if (!gz) throw FatalError(errno_text("cannot read log " + path, errno ? errno : EIO));
    char buf[1 << 16];
    int n;
    // a cut-off or damaged .gz still yields the lines before the damage
    while ((n = gzread(gz, buf, sizeof buf)) > 0) data.append(buf, static_cast<size_t>(n));
    gzclose(gz);
    size_t size = data.size();
    data.resize(size + simdjson::SIMDJSON_PADDING);
    return size;
  }
  std::ifstream f(path, std::ios::binary);
  if (!f) throw FatalError(errno_text("cannot read log " + path, errno ? errno : ENOENT));
  f.seekg(0, std::ios::end);
  auto end = f.tellg();
  size_t size = end > 0 ? static_cast<size_t>(end) : 0;
  f.seekg(0);
  data.resize(size + simdjson::SIMDJSON_PADDING);  // one allocation, no copy
  f.read(data.data(), static_cast<std::streamsize>(size));
  return static_cast<size_t>(f.gcount());
}

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
  if (t.compare(0, 7, "assign\"") != 0 && t.compare(0, 8, "release\"") != 0 && t.compare(0, 9, "existing\"") != 0)
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

std::vector<std::string> expand_log_paths(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  for (const auto& a : args) {
    struct stat st {};
    if (stat(a.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      std::vector<std::pair<int, std::string>> found;  // rotation index, path
      if (DIR* d = opendir(a.c_str())) {
        while (dirent* de = readdir(d)) {
          std::string name = de->d_name;
          if (name.rfind("events.jsonl", 0) != 0) continue;
          std::string rest = name.substr(12);
          if (ends_with(rest, ".gz")) rest.resize(rest.size() - 3);
          int idx = 0;
          if (!rest.empty()) {
            if (rest[0] != '.') continue;
            char* end = nullptr;
            idx = static_cast<int>(std::strtol(rest.c_str() + 1, &end, 10));
            if (!end || *end) continue;
          }
          found.emplace_back(idx, std::string(a).append("/").append(name));
        }
        closedir(d);
      }
      // FILE.N is older than FILE.N-1, FILE is the newest
      std::sort(found.begin(), found.end(), [](const auto& x, const auto& y) { return x.first > y.first; });
      for (auto& f : found) out.push_back(f.second);
    } else {
      out.push_back(a);
    }
  }
  return out;
}

ReadStats read_log(const std::string& path, std::optional<uint16_t> want_port,
                   const std::function<void(LogEvent&&)>& keep, std::ostream& warn) {
  std::string data;
  size_t size = slurp(path, data);
  return read_log_text(path, data, size, want_port, keep, warn);
}

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

ReadStats read_log_text(const std::string& path, const std::string& data, size_t size,
                        std::optional<uint16_t> want_port, const std::function<void(LogEvent&&)>& keep,
                        std::ostream& warn) {
  if (data.size() < size + simdjson::SIMDJSON_PADDING) throw FatalError(path + ": log text without padding");
  ReadStats st;
  st.bytes = size;
  simdjson::dom::parser parser;
  bool warned = false;
  auto bad = [&](uint64_t line, const char* why) {
    st.bad_lines++;
    if (!warned) {
      warn << "portghost: " << path << ":" << line << ": " << why
           << ", skipped (further bad lines of this file are counted, not shown)\n";
      warned = true;
    }
  };
  uint64_t tick = 0;  // latest time of records skipped since the last one kept
  std::string host;   // of the latest record read: a log is one host's, and so are its ticks
  auto flush_tick = [&] {
    if (!tick) return;
    LogEvent t;
    t.type = LogEvent::Type::Tick;
    t.ts_ns = tick;
    t.host = host;
    tick = 0;
    keep(std::move(t));
  };
  size_t pos = 0;
  while (pos < size) {
    size_t nl = data.find('\n', pos);
    bool complete = nl != std::string::npos && nl < size;
    size_t end = complete ? nl : size;
    st.lines++;
    std::string_view line(data.data() + pos, end - pos);
    pos = end + 1;
    if (line.empty()) continue;
    if (!complete) {
      bad(st.lines, "truncated last line (the writer was stopped mid-write)");
      break;
    }
    if (want_port && other_port_record(line, *want_port)) {
      if (auto ts = quick_number(line, "\"ts_ns\":")) {
        tick = std::max(tick, *ts);
        continue;
      }
    }
    simdjson::dom::element doc;
    if (parser.parse(line.data(), line.size(), false).get(doc) != simdjson::SUCCESS || !doc.is_object()) {
      bad(st.lines, "not a JSON object");
      continue;
    }
    std::string_view t;
    uint64_t ts = 0;
    if (doc["type"].get_string().get(t) != simdjson::SUCCESS ||
        doc["ts_ns"].get_uint64().get(ts) != simdjson::SUCCESS) {
      if (doc["@timestamp"].error() == simdjson::SUCCESS && doc["ecs"].error() == simdjson::SUCCESS)
        st.foreign = "ECS";
      else if (doc["class_uid"].error() == simdjson::SUCCESS && doc["metadata"].error() == simdjson::SUCCESS)
        st.foreign = "OCSF";
      bad(st.lines, "no type or ts_ns");
      continue;
    }
    auto type = type_of(t);
    if (!type) {  // a newer portghost's record: not ours to judge
      st.unknown_types++;
      continue;
    }
    LogEvent e;
    e.type = *type;
    e.ts_ns = ts;
    str_field(doc, "host", e.host);
    if (!e.host.empty()) host = e.host;
    if (e.type == LogEvent::Type::Exhausted) {
      str_field(doc, "comm", e.comm);
      str_field(doc, "exe", e.exe);
      opt_u64_field(doc, "pid", e.pid);
    }
    if (e.type == LogEvent::Type::Lost) {
      uint64_t c = 0;
      if (doc["count"].get_uint64().get(c) == simdjson::SUCCESS) e.lost_count = c;
    }
    if (e.type == LogEvent::Type::Assign || e.type == LogEvent::Type::Existing || e.type == LogEvent::Type::Release) {
      uint64_t lport = 0;
      if (doc["lport"].get_uint64().get(lport) != simdjson::SUCCESS || lport > 65535 ||
          doc["sock"].get_uint64().get(e.sock) != simdjson::SUCCESS) {
        bad(st.lines, "port record without sock or lport");
        continue;
      }
      if (want_port && lport != *want_port) {
        tick = std::max(tick, ts);
        continue;
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
        bad(st.lines, "nat record without sock or ports");
        continue;
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
    keep(std::move(e));
  }
  flush_tick();
  return st;
}

}  // namespace portghost
