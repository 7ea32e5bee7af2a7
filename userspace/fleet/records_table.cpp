#include "fleet/records_table.hpp"

#include <simdjson.h>

#include <charconv>

#include "common/json.hpp"
#include "fleet/clickhouse.hpp"

namespace portghost {

const std::vector<std::pair<const char*, const char*>>& records_columns() {
  static const std::vector<std::pair<const char*, const char*>> cols = {
      {"host", "String"},
      {"run", "UInt64"},
      {"seq", "UInt64"},
      {"type", "String"},
      {"ts_ns", "UInt64"},
      {"sock", "UInt64"},
      {"proto", "String"},
      {"family", "String"},
      {"laddr", "String"},
      {"lport", "UInt16"},
      {"raddr", "Nullable(String)"},
      {"rport", "Nullable(UInt16)"},
      {"how", "String"},
      {"pid", "Nullable(UInt32)"},
      {"tid", "Nullable(UInt32)"},
      {"uid", "Nullable(UInt32)"},
      {"comm", "String"},
      {"exe", "String"},
      {"cmdline", "String"},
      {"netns", "Nullable(UInt64)"},
      {"container", "String"},
      {"duration_ns", "Nullable(UInt64)"},
      {"line", "String"},
  };
  return cols;
}

std::string records_schema(const std::string& database, const std::string& table) {
  std::string s = "CREATE DATABASE IF NOT EXISTS " + database + ";\n";
  s += "CREATE TABLE IF NOT EXISTS " + database + "." + table + "\n(\n";
  const auto& cols = records_columns();
  for (size_t i = 0; i < cols.size(); i++)
    s += std::string("    ") + cols[i].first + " " + cols[i].second + (i + 1 < cols.size() ? ",\n" : "\n");
  s += ")\n"
       "ENGINE = ReplacingMergeTree()\n"
       "PARTITION BY toYYYYMMDD(toDateTime(intDiv(ts_ns, 1000000000)))\n"
       "ORDER BY (host, proto, lport, ts_ns, run, seq);\n";
  return s;
}

void check_records_table(ClickHouseClient& c) {
  const auto& ep = c.endpoint();
  std::string got = c.query("SELECT name, type FROM system.columns WHERE database = " + sql_quote(ep.database) +
                            " AND table = " + sql_quote(ep.table) + " FORMAT TSV");
  if (got.empty())
    throw ClickHouseError("ClickHouse " + ep.describe() +
                              ": no such table (create it with: portghost schema clickhouse | clickhouse-client -n)",
                          false);
  std::string want;
  for (const auto& [name, type] : records_columns()) want += std::string(name) + "\t" + type + "\n";
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

void copy_str(std::string& out, simdjson::dom::element& doc, const char* k) {
  std::string_view v;
  if (doc[k].get_string().get(v) != simdjson::SUCCESS) return;
  key(out, k);
  json_append_string(out, v);
}

// a number the column holds (a value past max is not ours: left out)
void copy_num(std::string& out, simdjson::dom::element& doc, const char* k, uint64_t max, bool nullable) {
  uint64_t v;
  auto f = doc[k];
  if (f.get_uint64().get(v) == simdjson::SUCCESS && v <= max)
    num(out, k, v);
  else if (nullable && f.is_null())
    (key(out, k), out += "null");
}

bool known_type(std::string_view t) {
  return t == "start" || t == "existing" || t == "assign" || t == "release" || t == "exhausted" || t == "warning" ||
         t == "lost" || t == "stop";
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
  size_t mark = rows.size();
  rows += '{';
  copy_str(rows, doc, "host");
  if (rows.back() == '{') rows.resize(mark), rows += "{\"host\":\"\"";
  num(rows, "run", id.run);
  num(rows, "seq", id.seq);
  key(rows, "type");
  json_append_string(rows, type);
  num(rows, "ts_ns", ts);
  copy_num(rows, doc, "sock", UINT64_MAX, false);
  copy_str(rows, doc, "proto");
  copy_str(rows, doc, "family");
  copy_str(rows, doc, "laddr");
  copy_num(rows, doc, "lport", 65535, false);
  copy_str(rows, doc, "raddr");
  copy_num(rows, doc, "rport", 65535, true);
  copy_str(rows, doc, "how");
  copy_num(rows, doc, "pid", UINT32_MAX, true);
  copy_num(rows, doc, "tid", UINT32_MAX, true);
  copy_num(rows, doc, "uid", UINT32_MAX, true);
  copy_str(rows, doc, "comm");
  copy_str(rows, doc, "exe");
  copy_str(rows, doc, "cmdline");
  copy_num(rows, doc, "netns", UINT64_MAX, true);
  copy_str(rows, doc, "container");
  copy_num(rows, doc, "duration_ns", UINT64_MAX, true);
  key(rows, "line");
  json_append_string(rows, line);
  rows += "}\n";
  return id;
}

}  // namespace portghost
