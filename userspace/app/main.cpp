// portghost: every local port assignment and release, attributed.
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <iostream>

#include "app/cli.hpp"
#include "app/privileges.hpp"
#include "app/trace_loop.hpp"
#include "common/errors.hpp"
#include "fleet/records_table.hpp"
#include "fleet/shipper.hpp"
#include "fleet/store_reader.hpp"
#include "kernel/existing.hpp"
#include "kernel/probes.hpp"
#include "logs/stats.hpp"
#include "logs/who.hpp"
#include "sinks/json_sink.hpp"
#include "sinks/output.hpp"
#include "sinks/table_sink.hpp"
#include "sinks/top.hpp"
#include "trace/container.hpp"
#include "trace/record_builder.hpp"
#include "trace/sink.hpp"

using namespace portghost;

namespace {

std::atomic<bool> g_stop{false};
std::atomic<bool> g_reopen{false};

void on_signal(int) { g_stop.store(true); }
void on_hangup(int) { g_reopen.store(true); }

void install_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: the poll returns EINTR and the loop sees the flag
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sa.sa_handler = on_hangup;  // the file was moved away (logrotate): reopen it
  sigaction(SIGHUP, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGXFSZ, SIG_IGN);  // a file size limit fails the write (EFBIG), retried like a full disk
}

void check_btf() {
  if (access("/sys/kernel/btf/vmlinux", R_OK) != 0)
    throw FatalError("this kernel has no BTF (/sys/kernel/btf/vmlinux): portghost needs CONFIG_DEBUG_INFO_BTF=y");
}

int run(int argc, char** argv) {
  CliResult cli = parse_cli(argc, argv, std::cout, std::cerr);
  if (!cli.run) return cli.exit_code;
  if (cli.command == "who")
    return cli.who.store.from ? run_who_from_store(cli.who, std::cout, std::cerr)
                              : run_who(cli.who, std::cout, std::cerr);
  if (cli.command == "stats")
    return cli.stats.store.from ? run_stats_from_store(cli.stats, std::cout, std::cerr)
                                : run_stats(cli.stats, std::cout, std::cerr);
  if (cli.command == "schema") return run_schema(cli.schema, std::cout, std::cerr);
  if (cli.command == "ship") {
    install_signals();
    return run_ship(cli.ship, g_stop, std::cerr);
  }
  TraceOptions& opt = cli.trace;

  auto logger = spdlog::stderr_color_mt("portghost");
  logger->set_pattern("portghost: %^%l%$: %v");
  logger->set_level(opt.verbose >= 2   ? spdlog::level::debug
                    : opt.verbose == 1 ? spdlog::level::info
                                       : spdlog::level::warn);
  spdlog::set_default_logger(logger);
  route_libbpf_logs(opt.verbose);

  // bad output path: fail before any probe loads
  TraceContext ctx;
  if (opt.user) ctx.run_as = resolve_user(*opt.user);
  RotateConfig rot{opt.rotate_size_mb << 20, opt.rotate_keep};
  if (ctx.run_as) rot.dir_owner = ctx.run_as->uid;  // it writes and rotates there once it is that user
  FileOutput out(opt.output, rot);
  check_privileges(ctx.run_as.has_value());
  if (ctx.run_as && !unprivileged_can_read_maps(*ctx.run_as))
    throw FatalError(
        "--user cannot work on this kernel: it refuses every bpf() call of an unprivileged process "
        "(kernel.unprivileged_bpf_disabled), so the loss counters could not be read; run without --user",
        kExitUsage);
  check_btf();

  ctx.options = opt;
  auto root = find_cgroup2_mount();
  if (!root) throw FatalError("no cgroup v2 hierarchy is mounted (see /proc/mounts): the socket hooks attach to it");
  ctx.cgroup_root = *root;
  if (opt.filters.cgroup) {
    std::string p = *opt.filters.cgroup;
    std::string dir = p.rfind(*root, 0) == 0 ? p : *root + (p.empty() || p[0] != '/' ? "/" : "") + p;
    auto id = CgroupResolver::id_of_dir(*root, dir);
    if (!id)
      throw FatalError("--cgroup: no cgroup v2 directory " + dir + " (see 'portghost trace --help')", kExitUsage);
    std::tie(ctx.cgroup_id, ctx.cgroup_level) = *id;
  }
  std::unique_ptr<Sink> sink;
  if (cli.command == "top") {
    sink = std::make_unique<TopSink>(
        out, [](uint32_t netns) { return port_range_of_netns(netns); }, cli.top_rows);
  } else {
    Format format = opt.format.value_or(out.is_terminal() ? Format::Table : Format::Json);
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    LifeLines life;
    life.hold_ns = uint64_t{opt.life_ms} * 1'000'000;
    sink = make_sink(format, out, host, opt.community_id_seed, life);
  }
  warn_of_cgroup_naming(ctx.run_as.has_value());
  install_signals();
  out.set_interrupt(&g_stop);
  return run_trace(ctx, out, *sink, g_stop, &g_reopen);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const FatalError& e) {
    std::cerr << "portghost: " << e.what() << "\n";
    return e.code();
  } catch (const std::exception& e) {
    std::cerr << "portghost: " << e.what() << "\n";
    return kExitRuntime;
  }
}
