// `who` and `stats` over the records in ClickHouse: the store is asked for
// the lines the file readers would have read, and the same code answers, so
// the answers are the files' (a parity test holds them to it).
#pragma once

#include <ostream>

#include "common/options.hpp"

namespace portghost {

int run_who_from_store(const WhoOptions& o, std::ostream& out, std::ostream& err);
int run_stats_from_store(const StatsOptions& o, std::ostream& out, std::ostream& err);

}  // namespace portghost
