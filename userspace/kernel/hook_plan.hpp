// Which BPF programs to load on this kernel, which hook serves each path of
// port assignment, release and failure, and what stays unseen: a pure
// function of the probed kernel features and the options, the one source of
// the start record's world, paths and uncaught, and of --probe-report.
#pragma once

#include <set>
#include <string>
#include <vector>

namespace portghost {

// What the kernel allows, as probed at start (kernel_features.cpp).
struct KernelFeatures {
  // fentry/fexit attach to inet_autobind, inet_csk_get_port,
  // udp_lib_get_port, inet_dgram_connect and inet_hash_connect
  bool fexit = false;
  bool sctp_module = false;       // the sctp module was loaded at start
  bool sctp_btf = false;          // ... and its BTF has sctp_do_bind, sctp_connect_new_asoc
  bool sock_send_length = false;  // tp_btf/sock_send_length (Linux >= 6.3)
  bool task_pt_regs = false;      // bpf_task_pt_regs() in tracepoint programs
  bool sys_exit_connect = false, sys_exit_bind = false;
  bool sys_exit_sends = false;  // sys_exit_sendto, sys_exit_sendmsg and sys_exit_sendmmsg
  bool bpf_loop = false;
  bool iter_tcp = false, iter_udp = false;
  bool iter_sk_storage = false;    // iter/bpf_sk_storage_map
  bool for_each_map_elem = false;  // bpf_for_each_map_elem() in raw tracepoint programs (Linux >= 5.13)
  // tracing programs (fentry/fexit, tp_btf, iterators) may use socket
  // storage (Linux >= 5.11) and bpf_get_socket_cookie() (>= 5.12)
  bool tracing_sk_storage = false, tracing_cookie = false;
};

struct HookOptions {
  bool allow_fentry = true;   // false: the tracepoint hooks even where fentry works
  bool allow_sock_tp = true;  // false: without fexit, the syscall exits even where socket tracepoints serve
  bool socket_slots = true;   // false: socket state in socket storage only
};

// Which hook serves one path of port assignment or failure.
struct PathHook {
  std::string path;
  std::string hook;  // "" when nothing here can see it
};

struct HookPlan {
  // "fexit", "socket" (socket tracepoints, nothing on the syscall layer),
  // "syscall" (the syscall exits) or "cgroup" (the cgroup socket hooks
  // alone, where no syscall exit can read its socket: Linux < 5.15 without
  // fexit): where the ends of connect, bind and send are seen. One world
  // only, never two: a record would be written twice.
  std::string world;
  std::set<std::string> programs;  // the BPF programs to load, by name
  // the knobs of the kernel side that follow from the world
  bool sock_tp = false, connect_exit = false, bind_exit = false;
  bool defer = false;       // the ends of connect and bind are resolved at the socket's next sight
  bool sk_tracing = false;  // tracing programs use socket storage and cookies
  bool slots = false;       // socket state in sk_slots first (its sweep program loads)
  std::vector<PathHook> paths;
  std::vector<std::string> uncaught;  // paths this kernel cannot show, and why

  bool loads(const std::string& program) const { return programs.count(program) != 0; }
};

HookPlan plan_hooks(const KernelFeatures& k, const HookOptions& o);

// Every program the plan may choose from: the BPF object's programs are
// exactly these (a unit test holds the two together).
const std::set<std::string>& known_programs();

// Programs on the syscall layer, which slow every syscall of every process.
bool on_syscall_layer(const std::string& program);

}  // namespace portghost
