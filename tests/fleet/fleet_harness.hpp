// What the fleet tests share: the portghost binary run as a user runs it, a
// table per test in a ClickHouse server of the test's own, and the counts
// and answers to compare.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "clickhouse_server.hpp"

namespace pgfleet {

struct RunResult {
  int rc = -1;
  std::string out, err;
};

// portghost ARGS..., to its end (killed after timeout_s).
RunResult run_portghost(const std::vector<std::string>& args, int timeout_s = 120);
// portghost ARGS... in the background: its pid; its stderr goes to err_file.
pid_t portghost_bg(const std::vector<std::string>& args, const std::string& err_file);
// SIGTERM (or sig) and reap: the exit status, or -1 if killed by the signal.
int stop_bg(pid_t pid, int sig = SIGTERM);

// A fresh directory (0700), removed at destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A database with portghost's table, created from `portghost schema clickhouse`.
void create_records_table(const ClickHouseServer& s, const std::string& db);
// clickhouse://127.0.0.1:PORT/DB
std::string store_url(const ClickHouseServer& s, const std::string& db);
uint16_t port_of_url(const std::string& url);
// A credentials file for the server's user, in dir.
std::string credentials_file(const ClickHouseServer& s, const TempDir& dir);

// Records per (host, type) in the table, each (host, run, seq) once.
std::map<std::pair<std::string, std::string>, uint64_t> store_counts(const ClickHouseServer& s, const std::string& db);
// Rows in the table, duplicates included.
uint64_t store_rows(const ClickHouseServer& s, const std::string& db);

}  // namespace pgfleet
