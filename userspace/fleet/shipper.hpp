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

namespace portghost {

// Where the shipper is: the file (by inode) and the offset after the last
// record the server acknowledged, and that record's identity (the way back
// in when the file has been rotated away or compressed meanwhile).
struct ShipPosition {
  uint64_t ino = 0, offset = 0;
  RecordIdentity last;
  bool has_last = false;
  uint64_t shipped = 0;  // records acknowledged, over the state's life
};

std::optional<ShipPosition> load_ship_state(const std::string& path);
// write to PATH.tmp, fsync, rename over PATH, fsync the directory
void save_ship_state(const std::string& path, const ShipPosition& p);

int run_ship(const ShipOptions& o, const std::atomic<bool>& stop, std::ostream& err);

}  // namespace portghost
