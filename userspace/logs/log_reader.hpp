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

// The longest line a reader of logs takes (the shipper's too). portghost's
// longest record is tens of KiB (a command line is cut at 4,095 bytes): a
// longer line is no record of ours, and is skipped without being kept.
constexpr size_t kMaxLogLine = 16u << 20;
// The longest host a record may name (a DNS name has at most 253 bytes).
constexpr size_t kMaxHostName = 255;
// A host a record may name: the store is keyed and asked by it, and its
// answers are tab-separated rows; so no control character (a tab or a
// newline would cut a row) and at most kMaxHostName bytes. The shipper
// sends no other, and the readers (files and store) skip a record with
// another as a bad one, so that both give the same answers.
bool valid_host_name(std::string_view host);

// Which files make up a log: FILE, FILE.1, FILE.2.gz ..., oldest first. A
// directory means its events.jsonl rotation set; an entry of it that is not
// a regular file (a link, a FIFO ...) is no log portghost wrote: it is
// skipped, named on *warn.
std::vector<std::string> expand_log_paths(const std::vector<std::string>& args, std::ostream* warn = nullptr);

// How read_log reads (docs/security.md): a piece at a time, a line at most
// max_line bytes, and a .gz decompressed to at most
// max(gz_floor, gz_ratio x its size). Tests make them small.
struct ReadLimits {
  size_t chunk = 1u << 20;
  size_t max_line = kMaxLogLine;
  uint64_t gz_floor = 64ULL << 20;
  // A portghost log compresses 13 to 14 times (gzip -6 or -9; 10 to 20 in
  // practice), deflate at most about 1,032 times (zeros): 200 is over 10
  // times a real log's ratio, and a bomb is refused having cost at most 200
  // times its size in reading.
  uint64_t gz_ratio = 200;
};

// Reads one file (".gz" decompressed) and calls `keep` for every record it
// can parse; `want_port` (if set) skips port records of other ports early.
// A bad line (truncated, garbage, too long) is skipped; the first one of the
// file is reported on `warn` with its line number. Memory: one piece and
// one line. Throws FatalError (one line) if unreadable, a symbolic link,
// not a regular file, or a .gz past its bound.
ReadStats read_log(const std::string& path, std::optional<uint16_t> want_port,
                   const std::function<void(LogEvent&&)>& keep, std::ostream& warn, const ReadLimits& limits = {});
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
