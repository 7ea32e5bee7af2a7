// What the user asked for, parsed and validated.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/net.hpp"

namespace portghost {

struct Filters {
  std::optional<uint32_t> pid;
  std::optional<std::string> comm;
  uint16_t port_lo = 0, port_hi = 65535;
  std::optional<Proto> proto;
  std::optional<Family> family;
  std::optional<uint32_t> netns;
  std::optional<std::string> cgroup;  // path as given
  bool ephemeral_only = false;

  bool any() const {
    return pid || comm || port_lo != 0 || port_hi != 65535 || proto || family || netns || cgroup || ephemeral_only;
  }
};

enum class Format { Json, Table, Ecs, Ocsf };

inline constexpr int kDefaultNice = -4;

struct TraceOptions {
  std::optional<Format> format;  // default: table on a terminal, else json
  std::string output = "-";
  uint64_t rotate_size_mb = 0;
  unsigned rotate_keep = 5;
  Filters filters;
  std::optional<double> duration_s;
  int verbose = 0;
  uint32_t ring_buffer_mb = 8;
  uint32_t socket_slots = 65536;  // preallocated socket state entries (0: socket storage only)
  unsigned warn_occupancy = 80;   // percent of a namespace's ephemeral range; 0: never
  bool existing = true;
  std::string raw_dump;             // also keep every raw kernel record here (replay)
  std::optional<std::string> user;  // --user: drop to this user once attached
  bool fentry = true;               // false: tracepoint hooks even where fentry works
  bool syscall_exits = false;       // without fexit: the syscall-exit world even where socket tracepoints serve
  bool probe_report = false;        // print which hook serves which path, then exit
  unsigned reconcile_s = 60;        // release recorded sockets gone unseen, this often; 0: never
  uint16_t community_id_seed = 0;   // the Community ID's seed (a site's choice, shared by its tools)
  unsigned life_ms = 100;           // a port released within this of its assign is one `life` line; 0: never
  bool nat = true;                  // join the kernel's NAT translations (conntrack) to recorded sockets
  // the consumer's nice value: above the workload's, so that a flood that
  // keeps every CPU busy cannot starve it into losing records (auditd's
  // priority_boost does the same)
  int nice = kDefaultNice;
};

// `portghost who`, as given (times are parsed when it runs).
// Where who and stats read from instead of the log files.
struct StoreOptions {
  std::optional<std::string> from;  // clickhouse[s]://HOST:PORT/DB
  std::optional<std::string> credentials;
  std::optional<std::string> ca_file;  // clickhouses://: the CAs that vouch for the server (PEM)
  std::string table = "records";
};

struct WhoOptions {
  uint16_t port = 0;
  std::string at, since, until;
  std::optional<std::string> proto, family, laddr, host;
  std::optional<uint64_t> netns;
  std::optional<std::string> raddr;  // the peer, as a firewall logged it
  std::optional<uint16_t> rport;
  std::optional<std::string> flow;          // "SRC:SPORT DST:DPORT": the holder of either end
  std::optional<std::string> community_id;  // the holder of this flow's local end
  bool json = false;
  std::vector<std::string> logs;  // default: the service's log directory
  StoreOptions store;             // --from clickhouse://...: ask the store, not the logs
};

// `portghost stats`.
struct StatsOptions {
  std::vector<std::string> logs;
  std::optional<std::string> host;  // only this host's records
  StoreOptions store;
  size_t top = 10;
  bool json = false;
};

// `portghost ship`: the tracer's log into ClickHouse.
struct ShipOptions {
  std::string log;  // FILE, or a directory holding events.jsonl
  std::string to;   // clickhouse[s]://HOST:PORT/DB
  std::string table = "records";
  std::optional<std::string> credentials;
  std::optional<std::string> ca_file;  // clickhouses://: the CAs that vouch for the server (PEM)
  std::string state;                   // default: default_ship_state(LOG), outside LOG's directory
  size_t batch_records = 50'000;
  size_t batch_bytes = 16u << 20;  // of rows, before compression
  uint64_t flush_ms = 1000;        // a partial batch waits at most this long
  uint64_t poll_ms = 200;          // how often the log is looked at when idle
  uint64_t lag_report_s = 10;
  bool once = false;  // send what the log holds now, then exit
};

// `portghost schema clickhouse`.
struct SchemaOptions {
  std::string database = "portghost";
  std::string table = "records";
  // --apply URL: create it on that server over HTTP instead of printing it
  std::optional<std::string> apply, credentials, ca_file;
};

// Where the service writes its log: who and stats read it by default.
extern const char* const kDefaultLogDir;

// Parses "A-B" (or "N") into a port range; nullopt if malformed.
std::optional<std::pair<uint16_t, uint16_t>> parse_port_range(const std::string& s);

}  // namespace portghost
