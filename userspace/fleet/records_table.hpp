// The ClickHouse table that holds every host's records: its definition, and
// a log line as one of its rows.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace portghost {

class ClickHouseClient;

// The columns, in order, with their ClickHouse types; `materialized`: the
// server computes it from `line` (empty: the shipper sends it).
struct RecordsColumn {
  std::string name, type, materialized;
};
const std::vector<RecordsColumn>& records_columns();

// CREATE DATABASE, CREATE TABLE and CREATE MATERIALIZED VIEW statements
// (each ended by ";\n"), for ClickHouse 18.16 and later: a ReplacingMergeTree
// ordered for the port question (host, proto, port, time), partitioned by
// day, and beside it each session's latest record time (TABLE_sessions).
std::string sessions_table(const std::string& table);
std::string records_schema(const std::string& database, const std::string& table);

// Throws ClickHouseError (not transient) unless the table exists with these
// columns and types: a shipper must not send into a table it does not know.
void check_records_table(ClickHouseClient& c);

// The identity a record carries in the store: (host, run, seq) names one
// line of one session of one host, so a batch sent twice is counted once.
struct RecordIdentity {
  uint64_t run = 0, seq = 0;
};

// Appends the JSONEachRow row of one log line to rows; returns its identity,
// or nullopt (appending nothing) for a line that is not a record this
// version knows. A line without run and seq (a log from before they were
// written) takes them from `session`, which follows the start records seen.
struct LegacySession {
  uint64_t run = 0, next_seq = 0;
  bool known = false;
};
std::optional<RecordIdentity> append_record_row(std::string& rows, std::string_view line, LegacySession& session);

}  // namespace portghost
