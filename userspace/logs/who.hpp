// `portghost who PORT`: who held a local port when, from the logs, and where
// the logs cannot tell (portghost not running, records lost, start unknown).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "logs/log_reader.hpp"

namespace portghost {

struct WhoQuery {
  uint16_t port = 0;
  uint64_t since_ns = 0, until_ns = UINT64_MAX;  // inclusive window
  std::optional<std::string> proto, family, laddr, host;
  std::optional<uint64_t> netns;
  std::optional<std::string> raddr;  // the peer: holdings with another known peer are left out
  std::optional<uint16_t> rport;
  // --flow: a socket bound to the unspecified address holds the port on
  // every local address
  bool laddr_or_wildcard = false;
  std::optional<std::string> community_id;  // only holdings of this flow
  std::optional<uint64_t> sock;             // only this socket (the one behind a NAT translation)
  std::string what;                         // what was asked, for "none found" ("" : the port)
  bool json = false;
};

// One end of a flow as a firewall prints it: ADDR:PORT, [IPV6]:PORT.
struct Endpoint {
  std::string addr;
  uint16_t port = 0;
};
std::optional<Endpoint> parse_endpoint(std::string_view text);
// "SRC:SPORT DST:DPORT" (also with "->" or "," between): the two ends.
std::optional<std::pair<Endpoint, Endpoint>> parse_flow(std::string_view text);

// A socket holding the port for a while.
struct Holding {
  LogEvent first;  // the assign or existing record
  std::optional<LogEvent> release;
  bool from_existing = false;  // held since before its trace started
  enum class End { Released, StillHeldAtStop, OpenAtEndOfLog, UnknownAfterCrash } end = End::Released;
  uint64_t end_ns = 0;  // release, stop or last record time
  // found through a NAT translation: its nat record (the outside tuple), and
  // when it ended (nat_end; nullopt: not in the logs)
  std::optional<LogEvent> nat;
  std::optional<uint64_t> nat_end_ns;
};

struct Gap {
  uint64_t from_ns, to_ns;
  std::string why;
};

struct WhoAnswer {
  std::vector<Holding> holdings;  // overlapping the window, in time order
  std::vector<Gap> gaps;          // parts of the window not covered
  uint64_t lost_in_window = 0;
  bool hosts_mixed = false;
};

// A question about the outside of a NAT (the translated port, or a --flow as
// the world saw it) turned into one about the socket behind it: a nat record
// whose translated end matches, in the window.
struct NatHop {
  WhoQuery inside;  // that socket's port, addresses, namespace and cookie
  LogEvent nat;
  std::optional<uint64_t> end_ns;
};
// `events`: the logs' records in order (only nat and nat_end are looked at).
std::vector<NatHop> nat_hops(const std::vector<LogEvent>& events, const WhoQuery& q);
// The holders of the sockets behind those translations, each marked with it.
WhoAnswer answer_through_nat(const std::vector<LogEvent>& events, const NatHop& hop);

// The port queries a --flow question makes: the local end may be either.
std::vector<WhoQuery> flow_queries(const WhoQuery& base, const std::pair<Endpoint, Endpoint>& flow);
// Holders of several queries of one question, in time order (their gaps
// and losses are the same: they come from the sessions).
WhoAnswer merge_answers(std::vector<WhoAnswer> parts);

// Events in the order they were written (files oldest first).
WhoAnswer answer_who(const std::vector<LogEvent>& events, const WhoQuery& q);
void print_who(const WhoAnswer& a, const WhoQuery& q, std::ostream& out);

struct WhoOptions;
// The query the options ask (times parsed); nullopt after a one-line error.
std::optional<WhoQuery> who_query_of(const WhoOptions& o, std::ostream& err);
// The port queries the question makes (q gains what it asks): one port; both
// ends of a --flow; for a --community-id, each local port whose records
// carry that ID (ports_of asks the logs or the store). nullopt after a
// one-line error.
std::optional<std::vector<WhoQuery>> who_questions(
    const WhoOptions& o, WhoQuery& q, const std::function<std::set<uint16_t>(const std::string&)>& ports_of,
    std::ostream& err);
// The whole command: read the logs, answer, print. Returns the exit code.
int run_who(const WhoOptions& o, std::ostream& out, std::ostream& err);

}  // namespace portghost
