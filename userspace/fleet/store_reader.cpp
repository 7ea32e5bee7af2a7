#include "fleet/store_reader.hpp"

#include <charconv>
#include <map>
#include <set>
#include <sstream>

#include "common/errors.hpp"
#include "common/text.hpp"
#include "fleet/answer_rows.hpp"
#include "fleet/clickhouse.hpp"
#include "fleet/records_table.hpp"
#include "logs/log_reader.hpp"
#include "logs/stats.hpp"
#include "logs/who.hpp"

namespace portghost {

namespace {

ClickHouseClient client_of(const StoreOptions& s, std::ostream& err) {
  ClickHouseClient c(clickhouse_endpoint(*s.from, s.credentials, s.table, s.ca_file));
  warn_if_cleartext(c.endpoint(), err);
  return c;
}

std::string where_am_i(const ClickHouseClient& c) { return "ClickHouse " + c.endpoint().describe(); }

// Rows a host no portghost ships were skipped: said once, with their count.
void say_bad_hosts(const ClickHouseClient& c, uint64_t n, std::ostream& warn) {
  if (!n) return;
  warn << "portghost: " << where_am_i(c) << ": " << n << " record" << (n == 1 ? "" : "s")
       << " skipped: their host has a control character or over " << kMaxHostName
       << " bytes (no portghost ships such a host)\n";
}

std::string host_filter(const std::optional<std::string>& host) {
  return host ? "host = " + sql_quote(*host) + " AND " : "";
}

// TabSeparated, not Raw: escaped, no value (a host or a line of another
// writer than portghost's) can cut a row
std::string records_of(const std::string& table, const std::string& where) {
  return "SELECT run, " + selected_host() + ", line FROM " + table + " PREWHERE " + where +
         " ORDER BY host, run, seq LIMIT 1 BY host, run, seq FORMAT TabSeparated";
}

// The nat and nat_end records (few: one per translated flow), in order.
std::vector<LogEvent> nat_records(ClickHouseClient& c, const std::string& table, const std::optional<std::string>& host,
                                  std::ostream& warn, uint64_t& bad_hosts) {
  std::vector<LogEvent> events;
  SessionRows split(where_am_i(c), [&](const std::string&, const std::string& text, size_t size) {
    read_log_text(
        where_am_i(c), text, size, std::nullopt, [&](LogEvent&& e) { events.push_back(std::move(e)); }, warn);
  });
  c.query_stream(records_of(table, host_filter(host) + "type IN ('nat', 'nat_end')"),
                 [&](std::string_view d) { return split.feed(d); });
  split.finish();
  bad_hosts += split.bad_hosts();
  return events;
}

}  // namespace

int run_who_from_store(const WhoOptions& o, std::ostream& out, std::ostream& err) {
  auto query = who_query_of(o, err);
  if (!query) return kExitUsage;
  WhoQuery q = *query;
  ClickHouseClient c = client_of(o.store, err);
  const std::string table = c.endpoint().qualified_table();
  auto questions = who_questions(
      o, q,
      [&](const std::string& id) {
        std::set<uint16_t> ports;
        query_rows(c,
                   "SELECT DISTINCT lport FROM " + table + " PREWHERE " + host_filter(q.host) +
                       "community_id = " + sql_quote(id) + " FORMAT TabSeparated",
                   16, [&](std::string_view row) {
                     unsigned p = 0;
                     auto r = std::from_chars(row.data(), row.data() + row.size(), p);
                     if (r.ec != std::errc() || r.ptr != row.data() + row.size() || p > 65535)
                       throw FatalError(where_am_i(c) + ": a port that is none in the answer");
                     ports.insert(static_cast<uint16_t>(p));
                   });
        return ports;
      },
      err);
  if (!questions) return kExitUsage;
  std::ostringstream warn;
  // the outside of a NAT: the sockets behind its translations hold other ports
  std::vector<NatHop> hops;
  uint64_t bad_hosts = 0;
  {
    auto nats = nat_records(c, table, q.host, warn, bad_hosts);
    for (const auto& one : *questions)
      for (auto& h : nat_hops(nats, one)) hops.push_back(std::move(h));
  }
  std::string ports;
  for (const auto& one : *questions) ports += (ports.empty() ? "" : ", ") + std::to_string(one.port);
  for (const auto& h : hops) ports += ", " + std::to_string(h.inside.port);
  // Every session's own records (they have no protocol: first in each
  // host's part of the sort key), and the port's: a condition the primary
  // key can use, evaluated first (PREWHERE) so that only those rows' lines
  // are read. Of the other records only the latest time of each session
  // (what the file reader's ticks carry: how long it is known to have run).
  std::string where = host_filter(q.host) +
                      "((proto = '' AND type IN ('start', 'stop', 'lost')) OR "
                      "(proto IN ('tcp', 'udp', 'udplite', 'sctp') AND lport IN (" +
                      ports + ") AND type IN ('assign', 'existing', 'release', 'life')))";
  std::map<std::string, uint64_t> last_ns;  // by "run\thost"
  {
    std::string host_where = q.host ? " WHERE host = " + sql_quote(*q.host) : "";
    // keyed as the records' rows are (TabSeparated, the host cut alike)
    auto tick = [&](std::string_view row) {
      size_t t = row.rfind('\t');
      uint64_t ns = 0;
      auto r = t == std::string_view::npos ? std::from_chars_result{row.data(), std::errc::invalid_argument}
                                           : std::from_chars(row.data() + t + 1, row.data() + row.size(), ns);
      if (r.ec != std::errc() || r.ptr != row.data() + row.size())
        throw FatalError(where_am_i(c) + ": a session's time that is none in the answer");
      last_ns[std::string(row.substr(0, t))] = ns;
    };
    size_t max_row = 20 + 1 + 2 * (kMaxHostName + 1) + 1 + 20;
    try {
      query_rows(c,
                 "SELECT run, " + selected_host() + ", maxMerge(last_ns) FROM " + c.endpoint().database + "." +
                     sessions_table(c.endpoint().table) + host_where + " GROUP BY host, run FORMAT TabSeparated",
                 max_row, tick);
    } catch (const ClickHouseError& e) {
      if (std::string(e.what()).find("Code: 60,") == std::string::npos) throw;
      // a table made without the view: the same from the records
      last_ns.clear();
      query_rows(c,
                 "SELECT run, " + selected_host() + ", max(" + record_end_ns() + ") FROM " + table + host_where +
                     " GROUP BY host, run FORMAT TabSeparated",
                 max_row, tick);
    }
  }
  std::vector<LogEvent> events;
  ReadStats totals;
  SessionRows split(where_am_i(c), [&](const std::string& key, const std::string& text, size_t size) {
    std::vector<LogEvent> evs;
    ReadStats st = read_log_text(
        where_am_i(c), text, size, std::nullopt, [&](LogEvent&& e) { evs.push_back(std::move(e)); }, warn);
    totals.add(st);
    auto it = last_ns.find(key);
    if (it != last_ns.end() && !evs.empty()) {
      LogEvent tick;
      tick.type = LogEvent::Type::Tick;
      tick.ts_ns = it->second;
      tick.host = evs.front().host;
      auto at = evs.back().type == LogEvent::Type::Stop ? evs.end() - 1 : evs.end();
      evs.insert(at, std::move(tick));
      last_ns.erase(it);  // a long session comes in pieces: one tick is enough
    }
    for (auto& e : evs) events.push_back(std::move(e));
  });
  c.query_stream(records_of(table, where), [&](std::string_view d) { return split.feed(d); });
  split.finish();
  say_bad_hosts(c, bad_hosts + split.bad_hosts(), warn);
  err << warn.str();
  if (events.empty()) {
    err << "portghost: no portghost record in ClickHouse " << c.endpoint().describe()
        << (q.host ? " for host " + printable(*q.host) : "") << "\n";
    return kExitRuntime;
  }
  std::vector<WhoAnswer> parts;
  for (const auto& one : *questions) parts.push_back(answer_who(events, one));
  for (const auto& h : hops) parts.push_back(answer_through_nat(events, h));
  print_who(merge_answers(std::move(parts)), q, out);
  return kExitOk;
}

int run_stats_from_store(const StatsOptions& o, std::ostream& out, std::ostream& err) {
  ClickHouseClient c = client_of(o.store, err);
  const std::string table = c.endpoint().qualified_table();
  LogStats st;
  uint64_t kept = 0;
  std::ostringstream warn;
  SessionRows split(where_am_i(c), [&](const std::string&, const std::string& text, size_t size) {
    read_log_text(
        where_am_i(c), text, size, std::nullopt,
        [&](LogEvent&& e) {
          st.add(e);
          kept++;
        },
        warn);
  });
  std::string where = o.host ? "host = " + sql_quote(*o.host) : "1";
  c.query_stream(records_of(table, where), [&](std::string_view d) { return split.feed(d); });
  split.finish();
  say_bad_hosts(c, split.bad_hosts(), warn);
  err << warn.str();
  if (!kept) {
    err << "portghost: no portghost record in ClickHouse " << c.endpoint().describe()
        << (o.host ? " for host " + printable(*o.host) : "") << "\n";
    return kExitRuntime;
  }
  st.print(out, o.top, o.json);
  return kExitOk;
}

}  // namespace portghost
