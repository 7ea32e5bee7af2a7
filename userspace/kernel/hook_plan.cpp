#include "kernel/hook_plan.hpp"

namespace portghost {

namespace {

// In every world: the hooks that run once a port is known, and the releases.
const char* const kAlways[] = {"pg_bind4",     "pg_bind6",        "pg_post_bind4", "pg_post_bind6", "pg_sockops",
                               "pg_set_state", "pg_sock_release", "pg_fork",       "pg_exit"};
const char* const kFexit[] = {"pg_autobind_enter",    "pg_autobind_exit",      "pg_csk_get_port_exit",
                              "pg_udp_get_port_exit", "pg_dgram_connect_exit", "pg_hash_connect_exit"};
const char* const kSctp[] = {"pg_sctp_bind_exit", "pg_sctp_new_asoc"};
const char* const kExitSends[] = {"pg_exit_sendto", "pg_exit_sendmsg", "pg_exit_sendmmsg"};

void add(HookPlan& p, std::initializer_list<const char*> names) { p.programs.insert(names.begin(), names.end()); }

template <size_t N>
void add(HookPlan& p, const char* const (&names)[N]) {
  p.programs.insert(std::begin(names), std::end(names));
}

// Where the cgroup world reads what a connect() or bind() came to.
constexpr const char* kNextSight = "the socket's next send to an address, connect, bind or close";

// The paths every world shares, with the world's hooks where they differ.
void common_paths(HookPlan& p, bool fexit, bool sock_tp, bool sctp) {
  const char* udp_send = fexit     ? "fexit/inet_autobind"
                         : sock_tp ? "tp_btf/sock_send_length"
                                   : "cgroup/sendmsg4, cgroup/sendmsg6";
  bool cgroup = p.defer && !sock_tp;  // the cgroup world: ends read at the next sight
  std::string send_fails_late =
      cgroup ? std::string("late: ") + kNextSight : "late: cgroup/connect4/6, cgroup/sendmsg4/6 or cgroup/sock_release";
  std::string udp_connect_late =
      cgroup ? std::string("cgroup/connect4, cgroup/connect6 + ") + kNextSight + ", with the connect's time and task"
             : "";
  p.paths = {
      {"tcp connect(): port chosen",
       fexit ? "fexit/inet_hash_connect, sockops TCP_CONNECT_CB" : "sockops TCP_CONNECT_CB"},
      {"tcp connect() with TCP_FASTOPEN_CONNECT",
       fexit            ? "fexit/inet_hash_connect"
       : sock_tp        ? "cgroup/connect4, cgroup/connect6 + sockops TCP_CONNECT_CB or tp_btf/inet_sock_set_state, "
                          "with the connect's time and task"
       : p.connect_exit ? "cgroup/connect4, cgroup/connect6 + tracepoint/syscalls/sys_exit_connect"
                        : "sockops TCP_CONNECT_CB (at the first write)"},
      {"bind(): port given or chosen", "cgroup/post_bind4, cgroup/post_bind6"},
      {"listen() on an unbound socket", "sockops TCP_LISTEN_CB"},
      {"udp send on an unbound socket", udp_send},
      {"udp send whose autobind succeeds but the send fails", fexit || sock_tp ? udp_send : send_fails_late},
      {"udp connect()", fexit            ? "cgroup/connect4, cgroup/connect6 + fexit/inet_dgram_connect"
                        : sock_tp        ? "cgroup/connect4, cgroup/connect6 + tp_btf/sock_send_length or "
                                           "cgroup/sock_release (the next send or the close), with the connect's "
                                           "time and task"
                        : p.connect_exit ? "cgroup/connect4, cgroup/connect6 + tracepoint/syscalls/sys_exit_connect"
                                         : udp_connect_late},
      {"udp port given up while the socket stays open (connect(AF_UNSPEC))",
       fexit            ? "fexit/inet_dgram_connect"
       : p.connect_exit ? "tracepoint/syscalls/sys_exit_connect"
                        : std::string("late: ") + kNextSight},
      {"tcp release", "sockops BPF_SOCK_OPS_STATE_CB (a socket that connected), tp_btf/inet_sock_set_state"},
      {"udp release, tcp close before a state change", "cgroup/sock_release"},
      {"tcp connect() finding no free port", "tp_btf/inet_sock_set_state (SYN_SENT to CLOSE)"},
      {"listen() finding no free port", "tp_btf/inet_sock_set_state (LISTEN to CLOSE without a port)"},
      {"sctp port taken, released or not found",
       sctp ? "fexit/sctp_do_bind (+ fentry/sctp_connect_new_asoc), cgroup/sock_release" : ""},
  };
}

void fexit_world(HookPlan& p) {
  add(p, kFexit);
  p.paths.push_back({"bind(0) finding no free port", "fexit/inet_csk_get_port, fexit/udp_lib_get_port"});
  p.paths.push_back({"udp send finding no free port", "fentry+fexit/inet_autobind"});
  p.paths.push_back({"udp connect() finding no free port", "fentry+fexit/inet_autobind"});
}

void socket_world(HookPlan& p) {
  add(p, {"pg_send_length"});
  p.paths.push_back({"bind(0) finding no free port",
                     "late: cgroup/bind4, cgroup/bind6 + the socket's next send, connect, bind or close, with the "
                     "bind's time (wildcard and loopback addresses)"});
  p.paths.push_back({"udp send finding no free port", "tp_btf/sock_send_length"});
  p.paths.push_back({"udp connect() finding no free port",
                     "late: cgroup/connect4, cgroup/connect6 + the socket's next send, connect, bind or close, with "
                     "the connect's time and task"});
  p.uncaught.push_back(
      "bind(0) finding no free port: recorded at the socket's next send, connect, bind or close (with the bind's "
      "time), and only for a wildcard or loopback address, where nothing else can make it fail (--syscall-exits "
      "sees it at once, at a cost to every syscall)");
  p.uncaught.push_back(
      "udp connect() finding no free port: recorded at the socket's next send, connect, bind or close, with the "
      "connect's time and task");
}

void syscall_world(HookPlan& p, const KernelFeatures& k) {
  // the autobind's fexit and sock_send_length see every datagram send's port
  add(p, {"pg_sendmsg4", "pg_sendmsg6"});
  if (p.connect_exit) add(p, {"pg_exit_connect"});
  if (p.bind_exit) add(p, {"pg_exit_bind"});
  bool exit_sends = k.task_pt_regs && k.sys_exit_sends;
  if (exit_sends) add(p, kExitSends);
  p.paths.push_back({"bind(0) finding no free port", p.bind_exit ? "tracepoint/syscalls/sys_exit_bind" : ""});
  p.paths.push_back({"udp send finding no free port",
                     exit_sends ? "tracepoint/syscalls/sys_exit_sendto, sys_exit_sendmsg, sys_exit_sendmmsg" : ""});
  p.paths.push_back({"udp connect() finding no free port", ""});
  if (!p.bind_exit)
    p.uncaught.push_back("bind() to port 0 finding no free port: no syscall tracepoint or bpf_task_pt_regs");
  if (!exit_sends)
    p.uncaught.push_back("udp send whose autobind finds no free port: no syscall tracepoints or bpf_task_pt_regs");
  p.uncaught.push_back("udp connect() finding no free port: no fexit on inet_autobind");
  if (p.connect_exit)
    p.uncaught.push_back(
        "a udp socket that gives its port up (connect(AF_UNSPEC)) and then happens to get the same port again: "
        "that second holding is not recorded (the syscall exit cannot mark the socket's state)");
  p.uncaught.push_back("io_uring bind or send finding no free port: no fexit on the port allocators");
  p.uncaught.push_back(
      "a port taken through the 32-bit syscall ABI finding no free port: syscall tracepoints ignore compat syscalls");
  p.uncaught.push_back(
      "udp connect() through the 32-bit syscall ABI or io_uring: recorded late (at a later connect, send to an "
      "address or the close), without the connect's time");
  p.uncaught.push_back(
      "udp send whose autobind succeeds but the send fails: recorded late (at a later connect, send to an address "
      "or the close), without that send's time");
}

// Kernels without fexit whose syscall exits cannot read their socket (no
// bpf_task_pt_regs, Linux < 5.15): the cgroup hooks alone. What a connect()
// or bind() came to is read at the socket's next sight, with its time and
// task; nothing sits on the syscall layer.
void cgroup_world(HookPlan& p) {
  add(p, {"pg_sendmsg4", "pg_sendmsg6"});
  p.paths.push_back({"bind(0) finding no free port", std::string("late: cgroup/bind4, cgroup/bind6 + ") + kNextSight +
                                                         ", with the bind's time (wildcard and loopback addresses)"});
  p.paths.push_back({"udp send finding no free port", ""});
  p.paths.push_back({"udp connect() finding no free port", std::string("late: cgroup/connect4, cgroup/connect6 + ") +
                                                               kNextSight + ", with the connect's time and task"});
  p.uncaught.push_back(
      "udp connect(): recorded at the socket's next send to an address, connect, bind or close (with the connect's "
      "time and task): no fexit, and no syscall exit that can read its socket (bpf_task_pt_regs)");
  p.uncaught.push_back(
      "bind(0) finding no free port: recorded at the socket's next send, connect, bind or close (with the bind's "
      "time), and only for a wildcard or loopback address");
  p.uncaught.push_back("udp send whose autobind finds no free port: no fexit, sock_send_length or syscall exit");
  p.uncaught.push_back(
      "udp send whose autobind succeeds but the send fails: recorded late (at a later connect, send to an address "
      "or the close), without that send's time");
}

// What the tail of every plan shares: optional programs and what no world sees.
void extras(HookPlan& p, const KernelFeatures& k, bool fexit, bool sctp) {
  bool udp_connect = fexit || p.defer || p.connect_exit;
  if (udp_connect)
    add(p, {"pg_connect4", "pg_connect6"});
  else
    p.uncaught.push_back(
        "udp connect() without a send to an explicit address: no syscall tracepoint or bpf_task_pt_regs");
  if (k.bpf_loop)
    add(p, {"pg_exec"});
  else
    p.uncaught.push_back("exe/cmdline of processes gone before they are read: no bpf_loop (kernel < 5.17)");
  if (k.iter_tcp)
    add(p, {"pg_iter_tcp"});
  else
    p.uncaught.push_back("tcp sockets holding ports before start: no tcp socket iterator");
  if (k.iter_udp)
    add(p, {"pg_iter_udp"});
  else
    p.uncaught.push_back("udp sockets holding ports before start: no udp socket iterator");
  // Reconciliation walks the socket storage where the kernel allows it;
  // elsewhere the tcp and udp iterators in each namespace stand in, which
  // need privileges (none after --user) and cannot see every socket.
  if (k.iter_sk_storage)
    add(p, {"pg_iter_live"});
  else
    p.uncaught.push_back(
        "releases never seen, found by reconciliation only for udp sockets and tcp ones that connected or listened "
        "without a bound port, and not after --user: no socket storage iterator");
  p.uncaught.push_back(
      "tcp sockets bound before start but neither listening nor connected (no kernel list has them), until their "
      "close (recorded late)");
  p.uncaught.push_back(
      "a udp port unhashed by an abort (sock_diag SOCK_DESTROY, ss -K): released at the socket's next send, connect, "
      "bind or close (late)");
  p.uncaught.push_back(
      "the move to CLOSE of a tcp socket that did not connect while traced (held before the start, a Fast Open "
      "connect seen only by fexit) while the tracepoint program runs on that CPU: the kernel skips the nested run "
      "(stop.skipped_runs counts it), and the reconciliation that this starts at once writes the release");
  if (p.defer)
    p.uncaught.push_back(
        "udp connect() undone by connect(AF_UNSPEC) before the socket's next send, connect, bind or close: its port is "
        "not recorded (counted in lost records, udp_connect_given_up_unseen), and its release is seen only then");
  p.uncaught.push_back("udp-lite sockets holding ports before start: the socket iterators list tcp and udp only");
  if (sctp) {
    add(p, kSctp);
    p.uncaught.push_back("sctp sockets holding ports before start: the socket iterators list tcp and udp only");
  } else if (fexit && k.sctp_module) {
    p.uncaught.push_back("sctp: the sctp module's BTF lacks sctp_do_bind or sctp_connect_new_asoc");
  } else if (fexit) {
    p.uncaught.push_back("sctp: the sctp module was not loaded when the trace started");
  } else {
    p.uncaught.push_back("sctp: its ports are taken outside the inet bind hooks, and only fexit sees them");
  }
}

// Tracing programs without socket storage or cookies (Linux < 5.12): the
// move to CLOSE cannot tell which socket's port was reported.
void without_sk_tracing(HookPlan& p, const KernelFeatures& k) {
  p.uncaught.push_back(
      "tcp release of a socket that did not connect while traced (a listener, one held before the start): the move "
      "to CLOSE cannot read socket state, so a release there names no closer, and a tcp connect with "
      "TCP_FASTOPEN_CONNECT closed before writing is not recorded (no socket storage in tracing "
      "programs: Linux < 5.11" +
      std::string(k.tracing_sk_storage ? ", or no bpf_get_socket_cookie there: < 5.12)" : ")"));
  p.uncaught.push_back(
      "no fexit world: its programs keep socket state, which tracing programs cannot reach before Linux 5.12");
}

}  // namespace

HookPlan plan_hooks(const KernelFeatures& k, const HookOptions& o) {
  // Four worlds. Where the kernel allows fentry/fexit (and its programs may
  // keep socket state, Linux >= 5.12): the end of a udp connect() and the
  // port allocators' failures are seen in the kernel functions, whatever
  // called them (a syscall, io_uring, a kernel socket). Elsewhere, on Linux
  // >= 6.3: at the end of every send (sock_send_length) and at the socket's
  // next sight, with nothing on the syscall layer, whose tracepoints slow
  // every syscall of every process. Older kernels: at the syscall exits
  // where they can read their socket (bpf_task_pt_regs, >= 5.15), else with
  // the cgroup hooks alone, at the socket's next sight.
  HookPlan p;
  // every fexit program keeps state in socket storage
  p.sk_tracing = k.tracing_sk_storage && k.tracing_cookie;
  bool fexit = o.allow_fentry && k.fexit && p.sk_tracing;
  // SCTP takes its ports in its own module (no inet bind hook runs): seen
  // where fexit works and the module was loaded before the start
  bool sctp = fexit && k.sctp_module && k.sctp_btf;
  p.sock_tp = !fexit && o.allow_sock_tp && k.sock_send_length;
  bool syscalls = !fexit && !p.sock_tp;
  // the exits read the socket of the syscall's fd through bpf_task_pt_regs()
  bool pt_regs = syscalls && k.task_pt_regs;
  p.connect_exit = pt_regs && k.sys_exit_connect;
  p.bind_exit = pt_regs && k.sys_exit_bind;
  bool exits = p.connect_exit || p.bind_exit || (pt_regs && k.sys_exit_sends);
  p.world = fexit ? "fexit" : p.sock_tp ? "socket" : exits ? "syscall" : "cgroup";
  p.defer = p.sock_tp || p.world == "cgroup";
  add(p, kAlways);
  common_paths(p, fexit, p.sock_tp, sctp);
  if (fexit)
    fexit_world(p);
  else if (p.sock_tp)
    socket_world(p);
  else if (exits)
    syscall_world(p, k);
  else
    cgroup_world(p);
  extras(p, k, fexit, sctp);
  if (!p.sk_tracing) without_sk_tracing(p, k);
  // Socket state in preallocated slots needs their sweep (the slots of
  // sockets whose end no hook saw); without it, socket storage as before.
  p.slots = o.socket_slots && k.for_each_map_elem;
  if (p.slots) {
    add(p, {"pg_sweep_slots", "pg_sock_release_slots"});
    p.programs.erase("pg_sock_release");  // its twin verified once for either kind of state
  }
  return p;
}

const std::set<std::string>& known_programs() {
  static const std::set<std::string> all = [] {
    HookPlan p;
    add(p, kAlways);
    add(p, kFexit);
    add(p, kSctp);
    add(p, kExitSends);
    add(p, {"pg_send_length", "pg_sendmsg4", "pg_sendmsg6", "pg_exit_connect", "pg_exit_bind", "pg_connect4",
            "pg_connect6", "pg_exec", "pg_iter_tcp", "pg_iter_udp", "pg_iter_live", "pg_sweep_slots",
            "pg_sock_release_slots"});
    return p.programs;
  }();
  return all;
}

bool on_syscall_layer(const std::string& program) {
  static const std::set<std::string> syscall_layer = {"pg_exit_connect", "pg_exit_bind", "pg_exit_sendto",
                                                      "pg_exit_sendmsg", "pg_exit_sendmmsg"};
  return syscall_layer.count(program) != 0;
}

}  // namespace portghost
