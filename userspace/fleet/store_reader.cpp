#include "fleet/store_reader.hpp"

#include <map>
#include <set>
#include <sstream>

#include "common/errors.hpp"
#include "common/text.hpp"
#include "fleet/clickhouse.hpp"
#include "fleet/records_table.hpp"
#include "logs/log_reader.hpp"
#include "logs/stats.hpp"
#include "logs/who.hpp"

namespace portghost {

namespace {

ClickHouseClient client_of(const StoreOptions& s) {
  ClickHouseClient c(clickhouse_endpoint(*s.from, s.credentials, s.table));
  return c;
}

// Rows "run \t host \t line" (TabSeparatedRaw: a line is JSON, so it holds
// no tab and no newline; a host name neither) grouped by session, each
// session's lines handed over as a log text.
class SessionSplitter {
 public:
  explicit SessionSplitter(std::function<void(const std::string& key, std::string& text)> each)
      : each_(std::move(each)) {}
  void feed(std::string_view chunk) {
    carry_.append(chunk);
    size_t pos = 0;
    while (true) {
      size_t nl = carry_.find('\n', pos);
      if (nl == std::string::npos) break;
      row(std::string_view(carry_.data() + pos, nl - pos));
      pos = nl + 1;
    }
    carry_.erase(0, pos);
    if (text_.size() > (8u << 20)) emit();  // a long session, in pieces
  }
  void finish() {
    if (!carry_.empty()) throw FatalError("ClickHouse: the answer ended inside a row");
    emit();
  }

 private:
  void row(std::string_view r) {
    size_t t1 = r.find('\t');
    size_t t2 = t1 == std::string_view::npos ? t1 : r.find('\t', t1 + 1);
    if (t2 == std::string_view::npos) throw FatalError("ClickHouse: an answer row without its columns");
    std::string_view key = r.substr(0, t2);
    if (key != key_) {
      emit();
      key_.assign(key);
    }
    text_.append(r.substr(t2 + 1));
    text_ += '\n';
  }
  void emit() {
    if (!text_.empty()) each_(key_, text_);
    text_.clear();
  }
  std::function<void(const std::string&, std::string&)> each_;
  std::string carry_, key_, text_;
};

std::string host_filter(const std::optional<std::string>& host) {
  return host ? "host = " + sql_quote(*host) + " AND " : "";
}

std::string records_of(const std::string& table, const std::string& where) {
  return "SELECT run, host, line FROM " + table + " PREWHERE " + where +
         " ORDER BY host, run, seq LIMIT 1 BY host, run, seq FORMAT TabSeparatedRaw";
}

// The nat and nat_end records (few: one per translated flow), in order.
std::vector<LogEvent> nat_records(ClickHouseClient& c, const std::string& table, const std::optional<std::string>& host,
                                  std::ostream& warn) {
  std::vector<LogEvent> events;
  SessionSplitter split([&](const std::string&, std::string& text) {
    size_t size = text.size();
    std::string padded = padded_log_text(text);
    read_log_text(
        "ClickHouse " + c.endpoint().describe(), padded, size, std::nullopt,
        [&](LogEvent&& e) { events.push_back(std::move(e)); }, warn);
  });
  c.query_stream(records_of(table, host_filter(host) + "type IN ('nat', 'nat_end')"),
                 [&](std::string_view d) { split.feed(d); });
  split.finish();
  return events;
}

}  // namespace

int run_who_from_store(const WhoOptions& o, std::ostream& out, std::ostream& err) {
  auto query = who_query_of(o, err);
  if (!query) return kExitUsage;
  WhoQuery q = *query;
  ClickHouseClient c = client_of(o.store);
  const std::string table = c.endpoint().qualified_table();
  auto questions = who_questions(
      o, q,
      [&](const std::string& id) {
        std::set<uint16_t> ports;
        std::istringstream in(c.query("SELECT DISTINCT lport FROM " + table + " PREWHERE " + host_filter(q.host) +
                                      "community_id = " + sql_quote(id) + " FORMAT TabSeparated"));
        for (unsigned p; in >> p;) ports.insert(static_cast<uint16_t>(p));
        return ports;
      },
      err);
  if (!questions) return kExitUsage;
  std::ostringstream warn;
  // the outside of a NAT: the sockets behind its translations hold other ports
  std::vector<NatHop> hops;
  {
    auto nats = nat_records(c, table, q.host, warn);
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
                      ports + ") AND type IN ('assign', 'existing', 'release')))";
  std::map<std::string, uint64_t> last_ns;  // by "run\thost"
  {
    std::string host_where = q.host ? " WHERE host = " + sql_quote(*q.host) : "";
    std::string ticks;
    try {
      ticks = c.query("SELECT run, host, maxMerge(last_ns) FROM " + c.endpoint().database + "." +
                      sessions_table(c.endpoint().table) + host_where + " GROUP BY host, run FORMAT TabSeparatedRaw");
    } catch (const ClickHouseError& e) {
      if (std::string(e.what()).find("Code: 60,") == std::string::npos) throw;
      // a table made without the view: the same from the records
      ticks = c.query("SELECT run, host, max(ts_ns) FROM " + table + host_where +
                      " GROUP BY host, run FORMAT TabSeparatedRaw");
    }
    std::istringstream in(ticks);
    std::string line;
    while (std::getline(in, line)) {
      size_t t = line.rfind('\t');
      if (t == std::string::npos) continue;
      last_ns[line.substr(0, t)] = std::stoull(line.substr(t + 1));
    }
  }
  std::vector<LogEvent> events;
  ReadStats totals;
  SessionSplitter split([&](const std::string& key, std::string& text) {
    size_t size = text.size();
    std::string padded = padded_log_text(text);
    std::vector<LogEvent> evs;
    ReadStats st = read_log_text(
        "ClickHouse " + c.endpoint().describe(), padded, size, std::nullopt,
        [&](LogEvent&& e) { evs.push_back(std::move(e)); }, warn);
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
  c.query_stream(records_of(table, where), [&](std::string_view d) { split.feed(d); });
  split.finish();
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
  ClickHouseClient c = client_of(o.store);
  const std::string table = c.endpoint().qualified_table();
  LogStats st;
  uint64_t kept = 0;
  std::ostringstream warn;
  SessionSplitter split([&](const std::string&, std::string& text) {
    size_t size = text.size();
    std::string padded = padded_log_text(text);
    read_log_text(
        "ClickHouse " + c.endpoint().describe(), padded, size, std::nullopt,
        [&](LogEvent&& e) {
          st.add(e);
          kept++;
        },
        warn);
  });
  std::string where = o.host ? "host = " + sql_quote(*o.host) : "1";
  c.query_stream(records_of(table, where), [&](std::string_view d) { split.feed(d); });
  split.finish();
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
