#include "app/cli.hpp"
#include "common/text.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>
#include <vector>

#include "common/errors.hpp"
#include "common/version.hpp"

namespace portghost {}

namespace portghost {

namespace {

// An option given with an empty value is a mistake, not "unset".
const CLI::Validator kNonEmpty([](std::string& v) { return v.empty() ? std::string("an empty value") : std::string(); },
                               "", "NONEMPTY");

const char* kCaFileHelp =
    "With clickhouses://: trust only the CAs in FILE (PEM) to vouch for the server's certificate, not the system's";

const char* kTopFooter = R"(
Examples:
  sudo portghost                                   trace everything (table on a terminal)
  sudo portghost trace -o /var/log/ports.jsonl     append JSON Lines to a file
  sudo portghost trace --port-range 49152-65535 --proto udp
  sudo portghost trace --comm curl --duration 30
  portghost who 60302 --at 10:03:12                who held local port 60302 then
  sudo portghost top                               ports held now, live
  portghost stats /var/log/portghost               a log in summary
  portghost ship /var/log/portghost --to clickhouses://db1/portghost
                                                   send the log to ClickHouse (TLS), follow it

Run 'portghost COMMAND --help' for every option of a command.)";

const char* kTraceFooter = R"(
Records (JSON Lines, docs/event-schema.md): start, existing, assign, release, lost, stop.
Filters run in the kernel; sockets that held ports before the start are filtered here.

Examples:
  sudo portghost trace --format json -o - | jq 'select(.type=="assign")'
  sudo portghost trace -o /var/log/portghost/events.jsonl --rotate-size 100 --rotate-keep 10
  sudo portghost trace --pid 1234 --family 6
  sudo portghost trace --cgroup /system.slice/nginx.service --ephemeral-only

Exit status: 0 on a clean stop (SIGINT, SIGTERM, --duration), 1 on a runtime error
(privileges, kernel support, output), 2 on bad options.)";

const char* kWhoFooter = R"(
Reads portghost's JSON logs (plain, rotated, .gz) and prints every socket that held
the port in the window, with its process, and says where the logs cannot tell:
when portghost was not running, when records were lost, or when a holder predates
its trace.

Examples:
  portghost who 60302 --at 10:03:12
  portghost who 60302 --since -1h /var/log/portghost
  portghost who 53 --proto udp --at 2026-11-22T10:03:12Z --format json events.jsonl events.jsonl.1.gz
  portghost who 60302 --at 14:03:07 --host web-7 --raddr 10.0.0.9 --rport 443 \
      --from clickhouse://db1:8123/portghost --credentials /etc/portghost/clickhouse.conf
  portghost who --flow '10.0.0.5:60302 10.0.0.9:443' --at 14:03:07
  portghost who --community-id '1:LQU9qZlK+B5F3KDmev6m5PMibrg=' --since -1h

--flow takes the 5-tuple as a firewall prints it, in either direction (IPv6 in
brackets) and answers for whichever end was local; --community-id finds the flow
by its Community ID (the records' community_id).

With --from, the records come from ClickHouse (see 'portghost ship'); the answer is
the one the same records give from files. Credentials: a file of lines user=NAME and
password=SECRET, or PORTGHOST_CLICKHOUSE_USER and PORTGHOST_CLICKHOUSE_PASSWORD.
clickhouses:// is HTTPS (port 8443), the server's certificate always verified.)";

const char* kShipFooter = R"(
Follows the log (FILE, or DIR/events.jsonl) across its rotation and sends every record
to ClickHouse in gzip batches. The position is kept in a state file, replaced atomically
after each batch the server took: a restart resumes there. Delivery is at least once; the
store counts a record once by (host, run, seq). While the server is down or failing,
nothing is lost: the log is the buffer; retries back off up to 30 s and the lag is
reported on stderr. Answers that no retry can fix (authentication, a missing or different
table, a TLS certificate that does not verify) stop it with exit status 1.

clickhouse:// is plain HTTP (port 8123): the password and the records cross the network
in clear. clickhouses:// is HTTPS (port 8443, ClickHouse's https_port): the server's
certificate and host name are always verified, by the system's CAs or by --ca-file's.

Create the table first:  portghost schema clickhouse --apply clickhouse://db1:8123/portghost

Examples:
  portghost ship /var/log/portghost --to clickhouses://db1:8443/portghost \
      --credentials /etc/portghost/clickhouse.conf --ca-file /etc/portghost/clickhouse-ca.pem
  portghost ship old-events.jsonl --to clickhouse://127.0.0.1:8123 --once)";

}  // namespace

CliResult parse_cli(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  CliResult res;
  CLI::App app{"portghost: every local port assignment and release on this host, attributed to its process.",
               "portghost"};
  app.set_version_flag("--version", kVersion);
  app.footer(kTopFooter);
  app.require_subcommand(0, 1);

  TraceOptions& o = res.trace;
  std::string format, proto, port_range, family;
  std::optional<uint32_t> port;
  CLI::App* trace = app.add_subcommand("trace", "Trace port assignments and releases (the default command)");
  trace->footer(kTraceFooter);
  trace
      ->add_option("--format", format,
                   "Output format: json (portghost's log), table, ecs (Elastic Common Schema 9.4.0) or ocsf (OCSF "
                   "1.2.0 Network Activity) (default: table on a terminal, else json)")
      ->check(CLI::IsMember({"json", "table", "ecs", "ocsf"}));
  trace->add_option("-o,--output", o.output, "Append records to FILE ('-' for stdout)")->capture_default_str();
  trace->add_option("--rotate-size", o.rotate_size_mb, "Rotate FILE when it would pass MB megabytes")
      ->check(CLI::Range(1, 1 << 20));
  trace->add_option("--rotate-keep", o.rotate_keep, "Rotated files kept (FILE.1 ...)")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  trace->add_option("--pid", o.filters.pid, "Only ports assigned by this process (tgid)")
      ->check(CLI::Range(1, 1 << 30));
  trace->add_option("--comm", o.filters.comm, "Only processes with this name (exact, as in /proc/PID/comm)");
  trace->add_option("--port", port, "Only this local port")->check(CLI::Range(0, 65535));
  trace->add_option("--port-range", port_range, "Only local ports in A-B")->check(kNonEmpty);
  trace->add_option("--proto", proto, "tcp, udp, udplite or sctp")
      ->check(CLI::IsMember({"tcp", "udp", "udplite", "sctp"}));
  trace->add_option("--family", family, "4 or 6")->check(CLI::IsMember({"4", "6"}));
  trace->add_option("--netns", o.filters.netns, "Only this network namespace (inode, as in ls -l /proc/PID/ns/net)");
  trace->add_option("--cgroup", o.filters.cgroup, "Only tasks in this cgroup v2 (path) or below it")->check(kNonEmpty);
  trace->add_flag("--ephemeral-only", o.filters.ephemeral_only, "Only ports the kernel chose");
  trace->add_option("--duration", o.duration_s, "Stop after SEC seconds")
      ->check(CLI::Range(0.001, 1e9).description("SEC > 0"));
  trace
      ->add_option("--socket-slots", o.socket_slots,
                   "Sockets whose state the kernel keeps in preallocated memory (about 200 bytes each); the "
                   "state of more goes to socket storage, allocated per socket (0: always)")
      ->check(CLI::Range(0, 1024 * 1024))
      ->capture_default_str();
  trace->add_option("--ring-buffer-mb", o.ring_buffer_mb, "Kernel ring buffer size in MiB (power of two)")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  trace->add_flag(
      "--no-nat", [&](int64_t) { o.nat = false; },
      "Do not follow the kernel's NAT translations (conntrack events) of recorded sockets' flows");
  trace->add_flag(
      "--no-existing", [&](int64_t) { o.existing = false; }, "Do not report sockets that held ports before the start");
  trace
      ->add_option("--warn-occupancy", o.warn_occupancy,
                   "Write a warning record when PCT% of a namespace's ephemeral range is held (0: never)")
      ->check(CLI::Range(0, 100))
      ->capture_default_str();
  trace
      ->add_option("--reconcile", o.reconcile_s,
                   "Every SEC seconds, release the recorded sockets that are gone without a release (0: never)")
      ->check(CLI::Range(0, 86400))
      ->capture_default_str();
  trace
      ->add_option("--community-id-seed", o.community_id_seed,
                   "The Community ID's seed: the one the site's other tools (Zeek, Suricata, the SIEM) use")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  trace
      ->add_option("--life-ms", o.life_ms,
                   "JSON: a port released within this many ms of its assignment is written as one `life` line "
                   "(its assign and release); 0: every record on its own line. Other ports' assigns are written "
                   "this much later")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  trace
      ->add_option("--nice", o.nice,
                   "Run the consumer at this nice value, above the workload's, so that busy CPUs do not starve it "
                   "into losing records")
      ->check(CLI::Range(-20, 19))
      ->default_str(std::to_string(kDefaultNice));
  trace->add_option("--raw-dump", o.raw_dump, "Also write every raw kernel record to FILE, for replay")
      ->check(kNonEmpty);
  trace->add_option("--user", o.user, "Once attached, run as USER (name or uid) with no capabilities, like tcpdump -Z")
      ->check(kNonEmpty);
  trace->add_flag(
      "--no-fentry", [&](int64_t) { o.fentry = false; },
      "Use the tracepoint hooks even where the kernel has fentry/fexit");
  trace->add_flag("--syscall-exits", o.syscall_exits,
                  "Without fexit, use the syscall-exit tracepoints even where socket tracepoints serve: a bind(0) "
                  "finding no free port is then seen at once, at a cost to every syscall of every process");
  trace->add_flag("--probe-report", o.probe_report,
                  "Load and attach, print which hook serves which path on this kernel, and exit");
  trace->add_flag("-v,--verbose", o.verbose, "Diagnostics on stderr (repeat for libbpf debug)");

  WhoOptions& w = res.who;
  std::string who_format = "table";
  CLI::App* who = app.add_subcommand("who", "Who held local port PORT at a time, from the logs");
  who->footer(kWhoFooter);
  std::string who_port_text;
  who->add_option("PORT", who_port_text, "The local port (none with --flow or --community-id)");
  who->add_option("LOG", w.logs, "Log files or directories (default: " + std::string(kDefaultLogDir) + ")");
  who->add_option("--at", w.at, "An instant: RFC 3339, HH:MM:SS (today, local), unix seconds, or -5m")
      ->check(kNonEmpty);
  who->add_option("--since", w.since, "Window start (same forms as --at)")->check(kNonEmpty);
  who->add_option("--until", w.until, "Window end (same forms as --at)")->check(kNonEmpty);
  who->add_option("--proto", w.proto, "tcp, udp, udplite or sctp")
      ->check(CLI::IsMember({"tcp", "udp", "udplite", "sctp"}));
  std::string who_family;
  who->add_option("--family", who_family, "4 or 6")->check(CLI::IsMember({"4", "6"}));
  who->add_option("--netns", w.netns, "Only this network namespace (inode)");
  who->add_option("--laddr", w.laddr, "Only this local address")->check(kNonEmpty);
  who->add_option("--host", w.host, "Only records from this host")->check(kNonEmpty);
  who->add_option("--raddr", w.raddr, "Only sockets with this peer address (or no known peer)")->check(kNonEmpty);
  uint32_t who_rport = 0;
  CLI::Option* who_rport_opt =
      who->add_option("--rport", who_rport, "Only sockets with this peer port (or no known peer)")
          ->check(CLI::Range(1, 65535));
  CLI::Option* flow_opt =
      who->add_option("--flow", w.flow,
                      "The holder of either end of a flow as a firewall logs it: 'SRC:SPORT DST:DPORT' "
                      "(IPv6 in brackets)")
          ->check(kNonEmpty);
  CLI::Option* cid_opt =
      who->add_option("--community-id", w.community_id, "The holder of the local end of this Community ID's flow")
          ->check(kNonEmpty);
  flow_opt->excludes(cid_opt);
  who->add_option("--format", who_format, "table or json")->check(CLI::IsMember({"json", "table"}));
  auto store_options = [&](CLI::App* cmd, StoreOptions& st) {
    cmd->add_option("--from", st.from,
                    "Read the records from ClickHouse: clickhouse://HOST[:PORT][/DATABASE], clickhouses:// for TLS")
        ->check(kNonEmpty);
    cmd->add_option("--credentials", st.credentials, "With --from: a file of lines user=NAME, password=SECRET")
        ->check(kNonEmpty);
    cmd->add_option("--ca-file", st.ca_file, kCaFileHelp)->check(kNonEmpty);
    cmd->add_option("--table", st.table, "With --from: the table")->capture_default_str()->check(kNonEmpty);
  };
  store_options(who, w.store);

  CLI::App* top = app.add_subcommand("top", "Live view of the ports held now (refreshed every second)");
  top->add_option("--rows", res.top_rows, "Rows per table")->check(CLI::Range(1, 1000))->capture_default_str();
  top->add_option("--duration", o.duration_s, "Stop after SEC seconds")->check(CLI::Range(0.001, 1e9));
  top->add_flag("-v,--verbose", o.verbose, "Diagnostics on stderr");

  StatsOptions& so = res.stats;
  std::string stats_format = "table";
  CLI::App* stats = app.add_subcommand("stats", "Summary of a log: busiest processes, port-time, lifetimes");
  stats->add_option("LOG", so.logs, "Log files or directories (default: " + std::string(kDefaultLogDir) + ")");
  stats->add_option("--top", so.top, "Rows per ranking")->check(CLI::Range(1, 1000))->capture_default_str();
  stats->add_option("--format", stats_format, "table or json")->check(CLI::IsMember({"json", "table"}));
  stats->add_option("--host", so.host, "Only records from this host")->check(kNonEmpty);
  store_options(stats, so.store);

  ShipOptions& sh = res.ship;
  CLI::App* ship = app.add_subcommand("ship", "Send the log to ClickHouse, following it across rotation");
  ship->footer(kShipFooter);
  ship->add_option("LOG", sh.log, "The log file, or its directory (events.jsonl)")->required()->check(kNonEmpty);
  ship->add_option("--to", sh.to,
                   "clickhouse://HOST[:PORT][/DATABASE] (port 8123, database portghost), or clickhouses:// for TLS "
                   "(port 8443)")
      ->required()
      ->check(kNonEmpty);
  ship->add_option("--credentials", sh.credentials, "A file of lines user=NAME, password=SECRET")->check(kNonEmpty);
  ship->add_option("--ca-file", sh.ca_file, kCaFileHelp)->check(kNonEmpty);
  ship->add_option("--table", sh.table, "The table")->capture_default_str()->check(kNonEmpty);
  ship->add_option("--state", sh.state,
                   "The position file (default: outside the log's directory: $STATE_DIRECTORY, else "
                   "/var/lib/portghost-ship for root, else ~/.local/state/portghost-ship; named after the log). Its "
                   "directory must be root's or the shipper's, writable by nobody else")
      ->check(kNonEmpty);
  ship->add_option("--batch", sh.batch_records, "Records per batch at most")
      ->check(CLI::Range(1, 10'000'000))
      ->capture_default_str();
  ship->add_option("--flush-ms", sh.flush_ms, "A partial batch waits at most this long")
      ->check(CLI::Range(1, 3'600'000))
      ->capture_default_str();
  ship->add_flag("--once", sh.once, "Send what the log holds now, then exit");

  SchemaOptions& sc = res.schema;
  CLI::App* schema = app.add_subcommand("schema", "Print the ClickHouse table definition for 'portghost ship'");
  std::string schema_store;
  schema->add_option("STORE", schema_store, "clickhouse")->required()->check(CLI::IsMember({"clickhouse"}));
  schema->add_option("--database", sc.database, "Database")->capture_default_str()->check(kNonEmpty);
  schema->add_option("--table", sc.table, "Table")->capture_default_str()->check(kNonEmpty);
  CLI::Option* apply =
      schema
          ->add_option("--apply", sc.apply,
                       "Create it on this server instead of printing it: clickhouse://HOST[:PORT]/DATABASE, or "
                       "clickhouses:// for TLS")
          ->check(kNonEmpty);
  schema->add_option("--credentials", sc.credentials, "With --apply: a file of lines user=NAME, password=SECRET")
      ->check(kNonEmpty)
      ->needs(apply);
  schema->add_option("--ca-file", sc.ca_file, kCaFileHelp)->check(kNonEmpty)->needs(apply);
  schema->get_option("--database")->excludes(apply);

  // `portghost [trace options]` is `portghost trace [trace options]`
  std::vector<const char*> args(argv, argv + argc);
  std::string first = argc > 1 ? argv[1] : "";
  CLI::App* named = nullptr;
  for (CLI::App* c : {trace, who, top, stats, ship, schema})
    if (first == c->get_name()) named = c;
  bool top_level = named || first == "--help" || first == "-h" || first == "--version";
  if (!top_level) args.insert(args.begin() + 1, "trace");
  std::string sub = named ? first : "trace";
  auto fail = [&](const std::string& msg) {
    // the message may quote the argument: never raw bytes to a terminal
    err << "portghost: " << printable(msg) << " (see 'portghost " << sub << " --help')\n";
    res.exit_code = kExitUsage;
    return res;
  };
  try {
    app.parse(static_cast<int>(args.size()), args.data());
  } catch (const CLI::CallForHelp& e) {
    out << (named ? named->help() : app.help());
    res.exit_code = kExitOk;
    return res;
  } catch (const CLI::CallForVersion& e) {
    out << "portghost " << kVersion << "\n";
    res.exit_code = kExitOk;
    return res;
  } catch (const CLI::ParseError& e) {
    std::string msg = e.what();
    return fail(msg.empty() ? e.get_name() : msg);
  }

  if (top->parsed()) {
    res.command = "top";
    res.run = true;
    return res;
  }
  auto name_ok = [](const std::string& n) {
    return !n.empty() && n.size() <= 64 && std::all_of(n.begin(), n.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
    });
  };
  if (schema->parsed()) {
    if (!name_ok(sc.database) || !name_ok(sc.table)) return fail("--database, --table: letters, digits and _ only");
    res.command = "schema";
    res.run = true;
    return res;
  }
  if (ship->parsed()) {
    res.command = "ship";
    res.run = true;
    return res;
  }
  if (stats->parsed()) {
    so.json = stats_format == "json";
    if (so.logs.empty()) so.logs.push_back(kDefaultLogDir);
    res.command = "stats";
    res.run = true;
    return res;
  }
  if (who->parsed()) {
    if (!w.at.empty() && (!w.since.empty() || !w.until.empty())) return fail("who: --at excludes --since and --until");
    if (!who_family.empty()) w.family = who_family == "4" ? "ipv4" : "ipv6";
    if (w.flow || w.community_id) {
      if (w.flow && (w.laddr || w.raddr || *who_rport_opt))
        return fail("who: --flow names both ends: no --laddr, --raddr or --rport with it");
      if (!who_port_text.empty()) w.logs.insert(w.logs.begin(), who_port_text);  // no PORT: a log
    } else {
      uint32_t port = 0;
      auto [end, ec] = std::from_chars(who_port_text.data(), who_port_text.data() + who_port_text.size(), port);
      if (who_port_text.empty()) return fail("who: PORT is required (or --flow, or --community-id)");
      if (ec != std::errc() || end != who_port_text.data() + who_port_text.size() || port > 65535)
        return fail("who: PORT: expected a port number 0-65535, got '" + who_port_text + "'");
      w.port = static_cast<uint16_t>(port);
    }
    w.json = who_format == "json";
    if (*who_rport_opt) w.rport = static_cast<uint16_t>(who_rport);
    if (w.logs.empty()) w.logs.push_back(kDefaultLogDir);
    res.command = "who";
    res.run = true;
    return res;
  }
  if (!format.empty())
    o.format = format == "json"   ? Format::Json
               : format == "ecs"  ? Format::Ecs
               : format == "ocsf" ? Format::Ocsf
                                  : Format::Table;
  if (!proto.empty()) o.filters.proto = proto_from_string(proto);
  if (!family.empty()) o.filters.family = family == "4" ? Family::Ipv4 : Family::Ipv6;
  if (port && !port_range.empty()) return fail("--port and --port-range exclude each other");
  if (port) o.filters.port_lo = o.filters.port_hi = static_cast<uint16_t>(*port);
  if (!port_range.empty()) {
    auto r = parse_port_range(port_range);
    if (!r) return fail("--port-range: expected A-B with 0 <= A <= B <= 65535, got '" + port_range + "'");
    std::tie(o.filters.port_lo, o.filters.port_hi) = *r;
  }
  if (o.filters.comm && (o.filters.comm->empty() || o.filters.comm->size() > 15))
    return fail("--comm: a process name has 1 to 15 characters");
  if (o.ring_buffer_mb & (o.ring_buffer_mb - 1)) return fail("--ring-buffer-mb: must be a power of two");
  if (o.output.empty()) return fail("--output: empty path");
  if (o.duration_s && !std::isfinite(*o.duration_s)) return fail("--duration: SEC must be a finite number");
  res.command = "trace";
  res.run = true;
  return res;
}

}  // namespace portghost
