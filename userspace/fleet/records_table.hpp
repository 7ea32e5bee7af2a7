// The ClickHouse table that holds every host's records: its definition, and
// a log line as one of its rows.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/options.hpp"
#include "logs/log_reader.hpp"  // kMaxHostName, valid_host_name

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
// The time a row's record was written, as SQL: its ts_ns, and a life
// line's release time (ts_ns + duration_ns), as the log reader counts it.
std::string record_end_ns();
std::string records_schema(const std::string& database, const std::string& table);
// The same statements one by one (no ";"): ClickHouse's HTTP interface takes
// one statement per request.
std::vector<std::string> records_schema_statements(const std::string& database, const std::string& table);
// Creates the endpoint's database, table and view over HTTP (each statement
// IF NOT EXISTS: safe to repeat), then checks the table as a shipper would.
// Throws ClickHouseError.
void apply_records_schema(ClickHouseClient& c);
// `portghost schema clickhouse`: prints the statements, or with --apply
// runs them on the server (a warning on err if the password would cross the
// network in clear). Throws FatalError.
int run_schema(const SchemaOptions& o, std::ostream& out, std::ostream& err);

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
