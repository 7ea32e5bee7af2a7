// The hook plan, for every world, without root: which programs load, and
// what the start record says serves each path.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "kernel/hook_plan.hpp"
#include "portghost.skel.h"

using namespace portghost;

namespace {

KernelFeatures everything() {
  KernelFeatures k;
  k.fexit = k.sctp_module = k.sctp_btf = k.sock_send_length = k.task_pt_regs = true;
  k.sys_exit_connect = k.sys_exit_bind = k.sys_exit_sends = true;
  k.bpf_loop = k.iter_tcp = k.iter_udp = k.iter_sk_storage = k.for_each_map_elem = true;
  k.tracing_sk_storage = k.tracing_cookie = true;
  return k;
}

KernelFeatures without_fexit() {
  KernelFeatures k = everything();
  k.fexit = false;
  return k;
}

// Linux 5.15-6.2 without fexit (or with it refused): no sock_send_length.
KernelFeatures old_kernel() {
  KernelFeatures k = without_fexit();
  k.sock_send_length = false;
  return k;
}

// Debian 11's 5.10: fentry attaches, but tracing programs have neither
// socket storage nor cookies; no bpf_task_pt_regs, bpf_loop or
// sock_send_length.
KernelFeatures linux_5_10() {
  KernelFeatures k = everything();
  k.sock_send_length = k.task_pt_regs = k.bpf_loop = k.for_each_map_elem = false;
  k.tracing_sk_storage = k.tracing_cookie = false;
  return k;
}

std::set<std::string> path_keys(const HookPlan& p) {
  std::set<std::string> keys;
  for (const auto& ph : p.paths) keys.insert(ph.path);
  return keys;
}

std::string hook_of(const HookPlan& p, const std::string& path) {
  for (const auto& ph : p.paths)
    if (ph.path == path) return ph.hook;
  return "<missing>";
}

bool any_on_syscall_layer(const HookPlan& p) {
  for (const auto& prog : p.programs)
    if (on_syscall_layer(prog)) return true;
  return false;
}

bool mentions(const HookPlan& p, const std::string& text) {
  for (const auto& u : p.uncaught)
    if (u.find(text) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST(HookPlan, FexitWorldSeesTheEndsInTheKernelFunctions) {
  HookPlan p = plan_hooks(everything(), {});
  EXPECT_EQ(p.world, "fexit");
  for (const char* prog : {"pg_autobind_enter", "pg_autobind_exit", "pg_csk_get_port_exit", "pg_udp_get_port_exit",
                           "pg_dgram_connect_exit", "pg_hash_connect_exit", "pg_sctp_bind_exit", "pg_sctp_new_asoc",
                           "pg_connect4", "pg_connect6", "pg_post_bind4", "pg_set_state", "pg_sock_release_slots"})
    EXPECT_TRUE(p.loads(prog)) << prog;
  EXPECT_FALSE(p.loads("pg_send_length"));
  EXPECT_FALSE(p.loads("pg_sendmsg4"));
  EXPECT_FALSE(any_on_syscall_layer(p));
  EXPECT_FALSE(p.sock_tp || p.connect_exit || p.bind_exit);
  EXPECT_EQ(hook_of(p, "bind(0) finding no free port"), "fexit/inet_csk_get_port, fexit/udp_lib_get_port");
  EXPECT_NE(hook_of(p, "sctp port taken, released or not found"), "");
  EXPECT_FALSE(mentions(p, "sctp: "));
}

TEST(HookPlan, SctpNeedsItsModuleLoadedAtStart) {
  KernelFeatures k = everything();
  k.sctp_module = k.sctp_btf = false;
  HookPlan p = plan_hooks(k, {});
  EXPECT_FALSE(p.loads("pg_sctp_bind_exit"));
  EXPECT_EQ(hook_of(p, "sctp port taken, released or not found"), "");
  EXPECT_TRUE(mentions(p, "the sctp module was not loaded"));
  k.sctp_module = true;
  EXPECT_TRUE(mentions(plan_hooks(k, {}), "BTF lacks sctp_do_bind"));
}

TEST(HookPlan, SocketWorldPutsNothingOnTheSyscallLayer) {
  for (const auto& [k, o] :
       {std::pair{without_fexit(), HookOptions{}}, std::pair{everything(), HookOptions{false, true}}}) {
    HookPlan p = plan_hooks(k, o);
    EXPECT_EQ(p.world, "socket");
    EXPECT_TRUE(p.sock_tp);
    EXPECT_TRUE(p.loads("pg_send_length"));
    EXPECT_TRUE(p.loads("pg_connect4"));
    EXPECT_FALSE(p.loads("pg_autobind_exit"));
    EXPECT_FALSE(p.loads("pg_sctp_bind_exit"));
    EXPECT_FALSE(p.loads("pg_sendmsg4"));
    EXPECT_FALSE(any_on_syscall_layer(p));
    EXPECT_EQ(hook_of(p, "udp send finding no free port"), "tp_btf/sock_send_length");
    EXPECT_EQ(hook_of(p, "bind(0) finding no free port").rfind("late: ", 0), 0u);
    EXPECT_TRUE(mentions(p, "bind(0) finding no free port: recorded at the socket's next send"));
    EXPECT_TRUE(mentions(p, "only fexit sees them"));
  }
}

TEST(HookPlan, SyscallWorldWhereNothingElseServesOrWhenAsked) {
  for (const auto& [k, o] :
       {std::pair{old_kernel(), HookOptions{}}, std::pair{without_fexit(), HookOptions{true, false}}}) {
    HookPlan p = plan_hooks(k, o);
    EXPECT_EQ(p.world, "syscall");
    EXPECT_TRUE(p.connect_exit && p.bind_exit);
    EXPECT_FALSE(p.sock_tp);
    for (const char* prog : {"pg_sendmsg4", "pg_sendmsg6", "pg_exit_connect", "pg_exit_bind", "pg_exit_sendto",
                             "pg_exit_sendmsg", "pg_exit_sendmmsg", "pg_connect4"})
      EXPECT_TRUE(p.loads(prog)) << prog;
    EXPECT_FALSE(p.loads("pg_send_length"));
    EXPECT_EQ(hook_of(p, "udp connect() finding no free port"), "");
    EXPECT_TRUE(mentions(p, "io_uring bind or send finding no free port"));
  }
}

// Without bpf_task_pt_regs (Linux < 5.15) no syscall exit can read its
// socket: the cgroup hooks serve alone, and a connect's or bind's end is
// read at the socket's next sight.
TEST(HookPlan, WithoutSyscallExitsThatReadTheSocketTheCgroupHooksServeAlone) {
  KernelFeatures k = old_kernel();
  k.task_pt_regs = false;
  HookPlan p = plan_hooks(k, {});
  EXPECT_EQ(p.world, "cgroup");
  EXPECT_TRUE(p.defer);
  EXPECT_TRUE(p.loads("pg_connect4"));
  EXPECT_TRUE(p.loads("pg_sendmsg4"));
  EXPECT_FALSE(p.loads("pg_exit_connect"));
  EXPECT_FALSE(p.loads("pg_exit_sendto"));
  EXPECT_FALSE(p.loads("pg_exit_bind"));
  EXPECT_FALSE(any_on_syscall_layer(p));
  EXPECT_EQ(hook_of(p, "udp connect()").rfind("cgroup/connect4, cgroup/connect6 + the socket's next", 0), 0u);
  EXPECT_EQ(hook_of(p, "bind(0) finding no free port").rfind("late: ", 0), 0u);
  EXPECT_TRUE(mentions(p, "udp connect(): recorded at the socket's next send"));
  EXPECT_TRUE(mentions(p, "bind(0) finding no free port: recorded at the socket's next send"));
}

TEST(HookPlan, OptionalProgramsFollowTheirFeatures) {
  KernelFeatures k = everything();
  k.bpf_loop = k.iter_tcp = k.iter_udp = k.iter_sk_storage = false;
  HookPlan p = plan_hooks(k, {});
  for (const char* prog : {"pg_exec", "pg_iter_tcp", "pg_iter_udp", "pg_iter_live"})
    EXPECT_FALSE(p.loads(prog)) << prog;
  EXPECT_TRUE(mentions(p, "no bpf_loop"));
  EXPECT_TRUE(mentions(p, "no tcp socket iterator"));
  EXPECT_TRUE(mentions(p, "no socket storage iterator"));
  HookPlan full = plan_hooks(everything(), {});
  for (const char* prog : {"pg_exec", "pg_iter_tcp", "pg_iter_udp", "pg_iter_live", "pg_fork", "pg_exit"})
    EXPECT_TRUE(full.loads(prog)) << prog;
}

// Socket state goes to the preallocated slots only where their sweep can
// run (bpf_for_each_map_elem, Linux >= 5.13), and not with --socket-slots 0.
TEST(HookPlan, SocketSlotsNeedTheirSweep) {
  HookPlan p = plan_hooks(everything(), {});
  EXPECT_TRUE(p.slots);
  EXPECT_TRUE(p.loads("pg_sweep_slots"));
  // the release's twin that takes either kind of state, not both programs
  EXPECT_TRUE(p.loads("pg_sock_release_slots"));
  EXPECT_FALSE(p.loads("pg_sock_release"));
  HookOptions none;
  none.socket_slots = false;
  HookPlan storage = plan_hooks(everything(), none);
  EXPECT_FALSE(storage.slots);
  EXPECT_FALSE(storage.loads("pg_sweep_slots"));
  EXPECT_TRUE(storage.loads("pg_sock_release"));
  EXPECT_FALSE(storage.loads("pg_sock_release_slots"));
  HookPlan old = plan_hooks(linux_5_10(), {});
  EXPECT_FALSE(old.slots);
  EXPECT_FALSE(old.loads("pg_sweep_slots"));
  EXPECT_FALSE(old.loads("pg_sock_release_slots")) << "a pointer argument to a global function needs Linux 5.12";
  EXPECT_FALSE(on_syscall_layer("pg_sweep_slots"));
}

TEST(HookPlan, Linux510IsTheCgroupWorldWithUncheckedTcpReleases) {
  HookPlan p = plan_hooks(linux_5_10(), {});
  EXPECT_EQ(p.world, "cgroup");
  EXPECT_FALSE(p.sk_tracing);
  EXPECT_FALSE(p.sock_tp || p.connect_exit || p.bind_exit);
  for (const char* prog : {"pg_bind4", "pg_post_bind4", "pg_sockops", "pg_sendmsg4", "pg_sendmsg6", "pg_set_state",
                           "pg_sock_release", "pg_iter_tcp", "pg_iter_udp", "pg_iter_live"})
    EXPECT_TRUE(p.loads(prog)) << prog;
  EXPECT_TRUE(p.defer) << "connect and bind resolved at the socket's next sight";
  EXPECT_TRUE(p.loads("pg_connect4"));
  EXPECT_EQ(hook_of(p, "udp connect() finding no free port").rfind("late: ", 0), 0u);
  EXPECT_EQ(hook_of(p, "udp send finding no free port"), "");
  for (const char* prog : {"pg_autobind_exit", "pg_dgram_connect_exit", "pg_sctp_bind_exit", "pg_send_length",
                           "pg_exec", "pg_exit_bind", "pg_exit_connect", "pg_exit_sendto"})
    EXPECT_FALSE(p.loads(prog)) << prog;
  EXPECT_FALSE(any_on_syscall_layer(p));
  EXPECT_TRUE(mentions(p, "the move to CLOSE cannot read socket state"));
  EXPECT_TRUE(mentions(p, "no fexit world"));
  EXPECT_TRUE(mentions(p, "udp send whose autobind finds no free port: no fexit, sock_send_length or syscall exit"));
  // 5.11: storage, but no cookie helper in tracing programs yet
  KernelFeatures k = linux_5_10();
  k.tracing_sk_storage = true;
  EXPECT_FALSE(plan_hooks(k, {}).sk_tracing);
  EXPECT_TRUE(mentions(plan_hooks(k, {}), "no bpf_get_socket_cookie there"));
  // 5.12: both: the fexit world
  k.tracing_cookie = true;
  EXPECT_EQ(plan_hooks(k, {}).world, "fexit");
}

// The start record names the same paths in every world (a missing hook is
// an empty one), so that a query over a fleet's logs finds each key.
TEST(HookPlan, EveryWorldNamesTheSamePaths) {
  auto keys = path_keys(plan_hooks(everything(), {}));
  EXPECT_EQ(keys.size(), 16u);
  EXPECT_EQ(path_keys(plan_hooks(without_fexit(), {})), keys);
  EXPECT_EQ(path_keys(plan_hooks(old_kernel(), {})), keys);
  EXPECT_EQ(path_keys(plan_hooks(KernelFeatures{}, {})), keys);
  EXPECT_EQ(path_keys(plan_hooks(linux_5_10(), {})), keys);
}

// A UDP port given up while the socket stays open: seen at the disconnect
// where a hook runs after connect(AF_UNSPEC), else at the next sight, and
// the socket and cgroup worlds say what that leaves unseen.
TEST(HookPlan, AUdpDisconnectIsSeenWhereAHookRunsAfterIt) {
  const std::string path = "udp port given up while the socket stays open (connect(AF_UNSPEC))";
  const std::string unseen = "udp connect() undone by connect(AF_UNSPEC)";
  auto mentions = [](const HookPlan& p, const std::string& what) {
    for (const auto& u : p.uncaught)
      if (u.find(what) != std::string::npos) return true;
    return false;
  };
  HookPlan fexit = plan_hooks(everything(), {});
  EXPECT_EQ(fexit.world, "fexit");
  EXPECT_EQ(hook_of(fexit, path), "fexit/inet_dgram_connect");
  EXPECT_FALSE(mentions(fexit, unseen));
  HookPlan sys = plan_hooks(old_kernel(), {});
  EXPECT_EQ(sys.world, "syscall");
  EXPECT_EQ(hook_of(sys, path), "tracepoint/syscalls/sys_exit_connect");
  EXPECT_FALSE(mentions(sys, unseen));
  for (const auto& k : {without_fexit(), linux_5_10()}) {
    HookPlan p = plan_hooks(k, {});
    EXPECT_TRUE(p.world == "socket" || p.world == "cgroup") << p.world;
    EXPECT_EQ(hook_of(p, path).rfind("late: ", 0), 0u) << p.world << ": " << hook_of(p, path);
    EXPECT_TRUE(mentions(p, unseen)) << p.world;
  }
}

// The plan and the BPF object name the same programs: none is loaded by
// accident, and none the plan names is missing from the object.
TEST(HookPlan, KnowsExactlyTheProgramsOfTheBpfObject) {
  portghost_bpf* s = portghost_bpf__open();
  ASSERT_NE(s, nullptr);
  std::set<std::string> in_object;
  bpf_program* prog;
  bpf_object__for_each_program(prog, s->obj) in_object.insert(bpf_program__name(prog));
  portghost_bpf__destroy(s);
  EXPECT_EQ(in_object, known_programs());
  for (const auto& k : {everything(), without_fexit(), old_kernel(), linux_5_10(), KernelFeatures{}})
    for (const auto& p : plan_hooks(k, {}).programs) EXPECT_TRUE(known_programs().count(p)) << p;
}
