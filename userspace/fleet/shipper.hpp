// `portghost ship`: follows the tracer's log (across its rotation) and sends
// every record to ClickHouse in gzip batches, at least once; the store
// deduplicates on (host, run, seq). The log on disk is the buffer: while the
// server is down or slow nothing is lost, the shipper retries with backoff
// and reports how far behind it is. Its position survives restarts in a state
// file replaced atomically after every batch the server acknowledged.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>

#include "common/options.hpp"
#include "fleet/clickhouse.hpp"
#include "fleet/records_table.hpp"
#include "fleet/ship_state.hpp"

namespace portghost {

int run_ship(const ShipOptions& o, const std::atomic<bool>& stop, std::ostream& err);

}  // namespace portghost
