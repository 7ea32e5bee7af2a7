// Where `portghost ship` keeps its position, and how it is read and
// replaced without trusting anyone else who can write near it: a forged
// position would make the shipper skip records (evidence never sent), a
// planted link would make a root shipper overwrite any file.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

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

// The state's directory and the state itself must be root's or the
// shipper's own (its effective uid), and the directory writable by nobody
// else: otherwise FatalError, one line naming the owner and what to do.
std::optional<ShipPosition> load_ship_state(const std::string& path);
// write to PATH.tmp (created anew, never through a link), fsync, rename
// over PATH, fsync the directory
void save_ship_state(const std::string& path, const ShipPosition& p);

// The default state of the log `log_file`, outside the log's directory
// (which may be another user's: the tracer's --user): in $STATE_DIRECTORY
// (systemd's StateDirectory=) if set, else /var/lib/portghost-ship for root,
// else $XDG_STATE_HOME or ~/.local/state/portghost-ship; named after the
// log's path, so that shippers of different logs do not share one.
std::string default_ship_state(const std::string& log_file);
// Where releases before this one kept it by default: beside the log.
std::string legacy_ship_state(const std::string& log_file);

}  // namespace portghost
