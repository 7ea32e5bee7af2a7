// `portghost stats [LOG...]`: what a log says in summary.
#pragma once

#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "logs/log_reader.hpp"

namespace portghost {

class LogStats {
 public:
  void add(const LogEvent& e);
  void print(std::ostream& out, size_t top, bool json) const;

  // lifetime buckets: upper bounds in ns (the last is open)
  static const std::vector<std::pair<uint64_t, const char*>>& buckets();

  uint64_t assigns() const { return assigns_; }
  uint64_t releases() const { return releases_; }
  uint64_t sessions() const { return sessions_; }
  uint64_t lost() const { return lost_; }
  uint64_t exhausted() const { return exhausted_; }
  const std::vector<uint64_t>& histogram() const { return hist_; }
  struct Proc {
    uint64_t assigns = 0;
    uint64_t held_ns = 0;  // port-nanoseconds, over released ports
  };
  const std::map<std::string, Proc>& procs() const { return procs_; }

 private:
  uint64_t assigns_ = 0, releases_ = 0, existing_ = 0, sessions_ = 0, lost_ = 0, unmatched_ = 0;
  uint64_t exhausted_ = 0, warnings_ = 0;
  std::map<std::string, uint64_t> exhausted_by_;  // by "comm (exe)"
  uint64_t first_ns_ = UINT64_MAX, last_ns_ = 0;
  std::map<std::string, Proc> procs_;  // by "comm (exe)"
  std::vector<uint64_t> hist_ = std::vector<uint64_t>(buckets().size(), 0);
};

struct StatsOptions;
int run_stats(const StatsOptions& o, std::ostream& out, std::ostream& err);

}  // namespace portghost
