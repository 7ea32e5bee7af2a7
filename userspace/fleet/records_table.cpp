#include "fleet/records_table.hpp"

#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <ostream>

#include "common/json.hpp"
#include "fleet/answer_rows.hpp"
#include "fleet/clickhouse.hpp"

namespace portghost {

namespace {

// A column the server fills from `line` (MATERIALIZED): the shipper sends
// the line and its identity only, and the server's work per record is a
// few scans of one string, not the parse of two dozen JSON fields. A
// `start` record's `filters` object holds keys of the same names: its
// columns keep their defaults.
std::string text_of(const char* k) {
  return std::string("if(type = 'start', '', visitParamExtractString(line, '") + k + "'))";
}
std::string null_text_of(const char* k) {
  return std::string("if(type = 'start' OR visitParamExtractRaw(line, '") + k +
         "') IN ('', 'null'), NULL, visitParamExtractString(line, '" + k + "'))";
}
std::string number_of(const char* k, const char* to) {
  return std::string(to) + "(if(type = 'start', 0, visitParamExtractUInt(line, '" + k + "')))";
}
std::string null_number_of(const char* k, const char* to) {
  return std::string("if(type = 'start' OR visitParamExtractRaw(line, '") + k + "') IN ('', 'null'), NULL, " + to +
         "(visitParamExtractUInt(line, '" + k + "')))";
}

}  // namespace

// A life line is written at its release: the session ran up to then.
std::string record_end_ns() { return "ts_ns + if(type = 'life', visitParamExtractUInt(line, 'duration_ns'), 0)"; }

const std::vector<RecordsColumn>& records_columns() {
  static const std::vector<RecordsColumn> cols = {
      {"host", "String", ""},
      {"run", "UInt64", ""},
      {"seq", "UInt64", ""},
      {"type", "String", ""},
      {"ts_ns", "UInt64", ""},
      {"line", "String", ""},
      {"sock", "UInt64", number_of("sock", "toUInt64")},
      // session records (start, stop, lost) have none: first in a host's keys
      {"proto", "String", "if(type IN ('start', 'stop', 'lost'), '', visitParamExtractString(line, 'proto'))"},
      {"family", "String", text_of("family")},
      {"laddr", "String", text_of("laddr")},
      {"lport", "UInt16", number_of("lport", "toUInt16")},
      {"raddr", "Nullable(String)", null_text_of("raddr")},
      {"rport", "Nullable(UInt16)", null_number_of("rport", "toUInt16")},
      {"community_id", "String", text_of("community_id")},
      {"how", "String", text_of("how")},
      {"pid", "Nullable(UInt32)", null_number_of("pid", "toUInt32")},
      {"tid", "Nullable(UInt32)", null_number_of("tid", "toUInt32")},
      {"uid", "Nullable(UInt32)", null_number_of("uid", "toUInt32")},
      {"comm", "String", text_of("comm")},
      {"exe", "String", text_of("exe")},
      {"cmdline", "String", text_of("cmdline")},
      {"netns", "Nullable(UInt64)", null_number_of("netns", "toUInt64")},
      {"container", "String", text_of("container")},
      {"duration_ns", "Nullable(UInt64)", null_number_of("duration_ns", "toUInt64")},
  };
  return cols;
}

std::string sessions_table(const std::string& table) { return table + "_sessions"; }

std::vector<std::string> records_schema_statements(const std::string& database, const std::string& table) {
  std::vector<std::string> out;
  out.push_back("CREATE DATABASE IF NOT EXISTS " + database);
  std::string s = "CREATE TABLE IF NOT EXISTS " + database + "." + table + "\n(\n";
  const auto& cols = records_columns();
  for (size_t i = 0; i < cols.size(); i++) {
    s += std::string("    ") + cols[i].name + " " + cols[i].type;
    if (!cols[i].materialized.empty()) s += " MATERIALIZED " + cols[i].materialized;
    s += i + 1 < cols.size() ? ",\n" : "\n";
  }
  s += ")\n"
       "ENGINE = ReplacingMergeTree()\n"
       "PARTITION BY toYYYYMMDD(toDateTime(intDiv(ts_ns, 1000000000)))\n"
       "ORDER BY (host, proto, lport, ts_ns, run, seq)";
  out.push_back(std::move(s));
  // each session's latest record time, kept as rows arrive: how long a
  // session is known to have run, without a scan of the records
  out.push_back("CREATE MATERIALIZED VIEW IF NOT EXISTS " + database + "." + sessions_table(table) +
                "\n"
                "ENGINE = AggregatingMergeTree()\n"
                "PARTITION BY toYYYYMMDD(toDateTime(intDiv(run, 1000000000)))\n"
                "ORDER BY (host, run)\n"
                "AS SELECT host, run, maxState(" +
                record_end_ns() + ") AS last_ns FROM " + database + "." + table + " GROUP BY host, run");
  return out;
}

std::string records_schema(const std::string& database, const std::string& table) {
  std::string s;
  for (const auto& stmt : records_schema_statements(database, table)) s += stmt + ";\n";
  return s;
}

void apply_records_schema(ClickHouseClient& c) {
  const auto& ep = c.endpoint();
  for (const auto& stmt : records_schema_statements(ep.database, ep.table)) query_bounded(c, stmt, 1u << 16);
  check_records_table(c);
}

int run_schema(const SchemaOptions& o, std::ostream& out, std::ostream& err) {
  if (!o.apply) {
    out << records_schema(o.database, o.table);
    return kExitOk;
  }
  ClickHouseClient c(clickhouse_endpoint(*o.apply, o.credentials, o.table, o.ca_file));
  warn_if_cleartext(c.endpoint(), err);
  apply_records_schema(c);
  out << "created " << c.endpoint().describe() << " (or found it as portghost makes it)\n";
  return kExitOk;
}

void check_records_table(ClickHouseClient& c) {
  const auto& ep = c.endpoint();
  std::string got = query_bounded(c,
                                  "SELECT name, type FROM system.columns WHERE database = " + sql_quote(ep.database) +
                                      " AND table = " + sql_quote(ep.table) + " FORMAT TSV",
                                  1u << 20);
  if (got.empty())
    throw ClickHouseError(
        "ClickHouse " + ep.describe() + ": no such table (create it with: portghost schema clickhouse --apply URL)",
        false);
  std::string want;
  for (const auto& c : records_columns()) want += c.name + "\t" + c.type + "\n";
  if (got != want)
    throw ClickHouseError(
        "ClickHouse " + ep.describe() + ": the table's columns are not portghost's (see 'portghost schema clickhouse')",
        false);
}

namespace {

void key(std::string& out, std::string_view k) {
  out += out.back() == '{' ? "\"" : ",\"";
  out += k;
  out += "\":";
}

void num(std::string& out, std::string_view k, uint64_t v) {
  key(out, k);
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

// line, a JSON text the parser accepted (valid UTF-8, no raw control
// character), as a JSON string: only quotes and backslashes need escaping.
void append_valid_json_as_string(std::string& out, std::string_view line) {
  out += '"';
  const char* p = line.data();
  const char* end = p + line.size();
  while (p < end) {
    const char* q = p;
    while (q < end && *q != '"' && *q != '\\') q++;
    out.append(p, static_cast<size_t>(q - p));
    if (q == end) break;
    out += '\\';
    out += *q;
    p = q + 1;
  }
  out += '"';
}

bool known_type(std::string_view t) {
  return t == "start" || t == "existing" || t == "assign" || t == "release" || t == "life" || t == "exhausted" ||
         t == "warning" || t == "lost" || t == "stop" || t == "nat" || t == "nat_end";
}

}  // namespace

std::optional<RecordIdentity> append_record_row(std::string& rows, std::string_view line, LegacySession& session) {
  thread_local simdjson::dom::parser parser;
  thread_local std::string padded;
  padded.assign(line);
  padded.resize(line.size() + simdjson::SIMDJSON_PADDING);
  simdjson::dom::element doc;
  if (parser.parse(padded.data(), line.size(), false).get(doc) != simdjson::SUCCESS || !doc.is_object())
    return std::nullopt;
  std::string_view type;
  uint64_t ts = 0;
  if (doc["type"].get_string().get(type) != simdjson::SUCCESS || !known_type(type) ||
      doc["ts_ns"].get_uint64().get(ts) != simdjson::SUCCESS)
    return std::nullopt;
  std::string_view host;
  if (doc["host"].get_string().get(host) != simdjson::SUCCESS) host = "";
  // a host name is what the store is keyed and asked by: one with a control
  // character (a tab or a newline breaks the store's tab-separated answers)
  // or longer than any host name is no record's (counted as a bad line)
  if (!valid_host_name(host)) return std::nullopt;
  RecordIdentity id;
  bool has_run = doc["run"].get_uint64().get(id.run) == simdjson::SUCCESS;
  bool has_seq = doc["seq"].get_uint64().get(id.seq) == simdjson::SUCCESS;
  if (type == "start") {
    session = {has_run ? id.run : ts, (has_seq ? id.seq : 0) + 1, true};
    if (!has_run) id.run = ts;
    if (!has_seq) id.seq = 0;
  } else if (!has_run || !has_seq) {
    if (!session.known) return std::nullopt;  // no start seen: nothing to name it by
    id.run = session.run;
    id.seq = session.next_seq++;
  } else {
    session = {id.run, id.seq + 1, true};
  }
  rows += '{';
  key(rows, "host");
  json_append_string(rows, host);
  num(rows, "run", id.run);
  num(rows, "seq", id.seq);
  key(rows, "type");
  json_append_string(rows, type);
  num(rows, "ts_ns", ts);
  key(rows, "line");
  append_valid_json_as_string(rows, line);
  rows += "}\n";
  return id;
}

}  // namespace portghost
