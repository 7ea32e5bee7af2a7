// Reading portghost's own JSON Lines logs back (plain or gzip-compressed),
// tolerant of what a crash or a disk can leave behind.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace portghost {

// One record of a log, the fields `who` needs.
struct LogEvent {
  // Tick: records of no interest (other ports) were read up to ts_ns; they
  // still show that portghost was running then.
  enum class Type {
    Start,
    Stop,
    Lost,
    Assign,
    Existing,
    Release,
    Tick,
    Exhausted,
    Warning,
    Nat,
    NatEnd
  } type = Type::Start;
  uint64_t ts_ns = 0;
  uint64_t sock = 0;
  std::string proto, family, laddr, how, comm, thread, exe, cmdline, container, host;
  std::optional<std::string> raddr, community_id;
  uint16_t lport = 0;
  std::optional<uint16_t> rport;
  std::optional<uint64_t> pid, tid, uid, netns, duration_ns;
  uint64_t lost_count = 0;
  bool timewait = false;
  // assign: its first sight; release: a port given up earlier, seen late
  bool late = false;
  // nat, nat_end: the flow as the world saw it (laddr .. rport: as the
  // socket sent it); kept whatever the port asked, they are few
  std::string nat_laddr, nat_raddr;
  uint16_t nat_lport = 0, nat_rport = 0;
};

struct ReadStats {
  uint64_t lines = 0, bytes = 0, bad_lines = 0, unknown_types = 0;
  // documents of another schema portghost also writes ("ECS", "OCSF"):
  // --format ecs or ocsf, which who and stats do not read
  std::string foreign;
  void add(const ReadStats& o) {
    lines += o.lines;
    bytes += o.bytes;
    bad_lines += o.bad_lines;
    unknown_types += o.unknown_types;
    if (foreign.empty()) foreign = o.foreign;
  }
};

// Which files make up a log: FILE, FILE.1, FILE.2.gz ..., oldest first. A
// directory means its events.jsonl rotation set.
std::vector<std::string> expand_log_paths(const std::vector<std::string>& args);

// Reads one file (".gz" decompressed) and calls `keep` for every record it
// can parse; `want_port` (if set) skips port records of other ports early.
// A bad line (truncated, garbage) is skipped; the first one of the file is
// reported on `warn` with its line number. Throws FatalError if unreadable.
ReadStats read_log(const std::string& path, std::optional<uint16_t> want_port,
                   const std::function<void(LogEvent&&)>& keep, std::ostream& warn);
// The same over text in memory: the first `size` bytes of `data`, which
// must have the parser's padding after them (see padded_log_text). `path`
// only names it in warnings.
ReadStats read_log_text(const std::string& path, const std::string& data, size_t size,
                        std::optional<uint16_t> want_port, const std::function<void(LogEvent&&)>& keep,
                        std::ostream& warn);
std::string padded_log_text(std::string_view text);

// When the logs gave no record at all (empty, binary, another program's, or
// only record types of a newer portghost): writes one line saying so and
// returns true; the caller exits non-zero.
bool no_records(const std::vector<std::string>& paths, uint64_t kept, const ReadStats& totals, std::ostream& err);

}  // namespace portghost
