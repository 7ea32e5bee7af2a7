#include "kernel/probes.hpp"

#include "kernel/counters.hpp"
#include "kernel/existing.hpp"
#include "kernel/iterators.hpp"
#include "kernel/map_memory.hpp"
#include "kernel/skipped_runs.hpp"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <cstdio>

#include <cerrno>
#include <cstdarg>
#include <cstring>

#include "common/errors.hpp"
#include "portghost.skel.h"

namespace portghost {

void Probes::SkelDeleter::operator()(portghost_bpf* s) const { portghost_bpf__destroy(s); }
void Probes::LinkDeleter::operator()(bpf_link* l) const { bpf_link__destroy(l); }
void Probes::RingDeleter::operator()(ring_buffer* r) const { ring_buffer__free(r); }

namespace {

int g_libbpf_verbose = 0;

int libbpf_print(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (level == LIBBPF_DEBUG && g_libbpf_verbose < 2) return 0;
  if (level == LIBBPF_INFO && g_libbpf_verbose < 1) return 0;
  // a verifier log runs to many kilobytes: size the text to the message
  va_list copy;
  va_copy(copy, args);
  int n = vsnprintf(nullptr, 0, fmt, copy);
  va_end(copy);
  if (n < 0) return n;
  std::string msg(static_cast<size_t>(n) + 1, '\0');
  vsnprintf(msg.data(), msg.size(), fmt, args);
  msg.resize(static_cast<size_t>(n));
  while (!msg.empty() && msg.back() == '\n') msg.pop_back();
  switch (level) {
    case LIBBPF_WARN: spdlog::warn("libbpf: {}", msg); break;
    case LIBBPF_INFO: spdlog::info("libbpf: {}", msg); break;
    default: spdlog::debug("libbpf: {}", msg); break;
  }
  return n;
}

// Returned by the ring callback when a batch is full: libbpf stops there
// (keeping the rest for the next call) and hands this back.
constexpr int kBatchFull = -EAGAIN;

void check(int rc, const std::string& what) {
  if (rc < 0) throw FatalError(errno_text(what, rc));
}

bool tracepoint_exists(const char* category, const char* name) {
  for (const char* base : {"/sys/kernel/tracing/events", "/sys/kernel/debug/tracing/events"}) {
    std::string p = std::string(base) + "/" + category + "/" + name;
    if (access(p.c_str(), F_OK) == 0) return true;
  }
  return false;
}

struct VmlinuxBtf {
  btf* b = btf__load_vmlinux_btf();
  ~VmlinuxBtf() { btf__free(b); }
  bool has(const char* name, int kind) const { return b && btf__find_by_name_kind(b, name, kind) >= 0; }
};

bool helper_available(bpf_prog_type type, bpf_func_id id) { return libbpf_probe_bpf_helper(type, id, nullptr) > 0; }

// Loads a two-instruction tracing program of this attach type for the
// kernel function (or iterator target) btf_name: whether the kernel allows
// it at all. Kernels without the trampoline, or that forbid it, say no.
UniqueFd tracing_prog_for(const VmlinuxBtf& btf, const std::string& btf_name, bpf_attach_type type) {
  int id = btf.b ? btf__find_by_name_kind(btf.b, btf_name.c_str(), BTF_KIND_FUNC) : -1;
  if (id < 0) return UniqueFd();
  const bpf_insn insns[] = {
      {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0},  // r0 = 0
      {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},                   // exit
  };
  bpf_prog_load_opts opts{};
  opts.sz = sizeof opts;
  opts.expected_attach_type = type;
  opts.attach_btf_id = static_cast<uint32_t>(id);
  return UniqueFd(bpf_prog_load(BPF_PROG_TYPE_TRACING, nullptr, "GPL", insns, 2, &opts));
}

// Can an fentry program be loaded for, and attached to, this function?
bool fentry_can_attach(const VmlinuxBtf& btf, const char* func) {
  UniqueFd prog = tracing_prog_for(btf, func, BPF_TRACE_FENTRY);
  if (!prog) return false;
  UniqueFd link(bpf_link_create(prog.get(), 0, BPF_TRACE_FENTRY, nullptr));
  return static_cast<bool>(link);
}

// Does the BTF of a loaded kernel module (absent: not loaded) have every
// one of these functions?
bool module_has_funcs(const VmlinuxBtf& vmlinux, const char* module, std::initializer_list<const char*> funcs) {
  if (!vmlinux.b) return false;
  btf* m = btf__load_module_btf(module, vmlinux.b);
  if (!m) return false;
  bool all = true;
  for (const char* f : funcs) all = all && btf__find_by_name_kind(m, f, BTF_KIND_FUNC) >= 0;
  btf__free(m);
  return all;
}

// Can an iterator program for this target ("bpf_sk_storage_map") be loaded?
bool iter_can_load(const VmlinuxBtf& btf, const std::string& target) {
  return static_cast<bool>(tracing_prog_for(btf, "bpf_iter_" + target, BPF_TRACE_ITER));
}

// What this kernel allows, for the hook plan. The fentry probes attach a
// test program (not free): skipped when fentry is not wanted.
// The running kernel's version is at least major.minor (uname).
bool kernel_at_least(int major, int minor) {
  utsname u{};
  if (uname(&u) != 0) return false;
  int ma = 0, mi = 0;
  if (std::sscanf(u.release, "%d.%d", &ma, &mi) != 2) return false;
  return ma > major || (ma == major && mi >= minor);
}

KernelFeatures probe_features(const VmlinuxBtf& btf, bool want_fentry) {
  KernelFeatures k;
  // the helpers' kernel functions, as BTF names them: socket storage from
  // tracing programs (Linux 5.11), bpf_get_socket_cookie() there (5.12)
  k.tracing_sk_storage = btf.has("bpf_sk_storage_tracing_allowed", BTF_KIND_FUNC);
  k.tracing_cookie = btf.has("bpf_get_socket_ptr_cookie", BTF_KIND_FUNC);
  // the fexit programs need both: without them, no attach is tried (each
  // patches the kernel's text)
  k.fexit = want_fentry && k.tracing_sk_storage && k.tracing_cookie && fentry_can_attach(btf, "inet_autobind") &&
            fentry_can_attach(btf, "inet_csk_get_port") && fentry_can_attach(btf, "udp_lib_get_port") &&
            fentry_can_attach(btf, "inet_dgram_connect") && fentry_can_attach(btf, "inet_hash_connect");
  k.sctp_module = access("/sys/module/sctp", F_OK) == 0;
  k.sctp_btf = k.fexit && module_has_funcs(btf, "sctp", {"sctp_do_bind", "sctp_connect_new_asoc"});
  k.sock_send_length = btf.has("btf_trace_sock_send_length", BTF_KIND_TYPEDEF);
  k.task_pt_regs = helper_available(BPF_PROG_TYPE_TRACEPOINT, BPF_FUNC_task_pt_regs);
  k.sys_exit_connect = tracepoint_exists("syscalls", "sys_exit_connect");
  k.sys_exit_bind = tracepoint_exists("syscalls", "sys_exit_bind");
  k.sys_exit_sends = tracepoint_exists("syscalls", "sys_exit_sendto") &&
                     tracepoint_exists("syscalls", "sys_exit_sendmsg") &&
                     tracepoint_exists("syscalls", "sys_exit_sendmmsg");
  k.bpf_loop = helper_available(BPF_PROG_TYPE_TRACEPOINT, BPF_FUNC_loop);
  k.iter_tcp = btf.has("bpf_iter__tcp", BTF_KIND_STRUCT);
  k.iter_udp = btf.has("bpf_iter__udp", BTF_KIND_STRUCT);
  k.iter_sk_storage = iter_can_load(btf, "bpf_sk_storage_map");
  k.for_each_map_elem = helper_available(BPF_PROG_TYPE_RAW_TRACEPOINT, BPF_FUNC_for_each_map_elem);
  return k;
}

}  // namespace

void route_libbpf_logs(int verbose) {
  g_libbpf_verbose = verbose;
  libbpf_set_print(libbpf_print);
}

bool ensure_tracefs() {
  if (access("/sys/kernel/tracing/events", F_OK) == 0 || access("/sys/kernel/debug/tracing/events", F_OK) == 0)
    return true;
  if (mount("nodev", "/sys/kernel/tracing", "tracefs", 0, nullptr) == 0) {
    spdlog::info("mounted tracefs on /sys/kernel/tracing");
    return true;
  }
  spdlog::warn("tracefs is not mounted and could not be mounted: {}", std::strerror(errno));
  return false;
}

Probes::Probes(const ProbeConfig& cfg, Callback on_record)
    : ring_ctx_(std::make_unique<RingCtx>(RingCtx{std::move(on_record), 0})) {
  // ---- open
  skel_.reset(portghost_bpf__open());
  if (!skel_) throw FatalError(errno_text("cannot open the BPF object", errno));
  auto* s = skel_.get();

  // ---- configure: filters into rodata, sizes, feature probes
  const Filters& f = cfg.filters;
  s->rodata->targ_tgid = f.pid.value_or(0);
  s->rodata->targ_proto = f.proto ? static_cast<uint8_t>(*f.proto) : 0;
  s->rodata->targ_family = f.family ? static_cast<uint8_t>(*f.family) : 0;
  s->rodata->targ_port_lo = f.port_lo;
  s->rodata->targ_port_hi = f.port_hi;
  s->rodata->targ_netns = f.netns.value_or(0);
  s->rodata->targ_cgroup_id = cfg.cgroup_id;
  s->rodata->targ_cgroup_level = cfg.cgroup_level;
  s->rodata->targ_ephemeral_only = f.ephemeral_only;
  if (f.comm) {
    s->rodata->targ_comm_set = true;
    std::strncpy(const_cast<char*>(s->rodata->targ_comm), f.comm->c_str(), PG_COMM_LEN - 1);
  }
  // an eighth of the ring waiting wakes the consumer, counted per CPU: each
  // CPU wakes it after its share (at least 32 KiB, so that many CPUs do not
  // wake it on every few records)
  uint64_t cpus = static_cast<uint64_t>(std::max(1, libbpf_num_possible_cpus()));
  s->rodata->targ_wakeup_bytes = std::max<uint64_t>(cfg.ring_buffer_bytes / 8 / cpus, 32 * 1024);
  check(bpf_map__set_max_entries(s->maps.events, cfg.ring_buffer_bytes), "ring buffer size");

  VmlinuxBtf btf;
  if (!btf.b) throw FatalError("kernel BTF could not be read from /sys/kernel/btf/vmlinux");
  if (!btf.has("btf_trace_inet_sock_set_state", BTF_KIND_TYPEDEF) || !btf.has("bpf_iter__tcp", BTF_KIND_STRUCT))
    throw FatalError("this kernel is too old: portghost needs Linux >= 5.10 (BTF tracepoints, socket iterators)",
                     kExitUsage);

  // the task as a BTF pointer, in every program type that names a task
  // (tracing programs, which libbpf cannot probe, had it first)
  bool task_btf = true;
  for (auto type :
       {BPF_PROG_TYPE_CGROUP_SOCK, BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_PROG_TYPE_SOCK_OPS, BPF_PROG_TYPE_TRACEPOINT})
    task_btf = task_btf && helper_available(type, BPF_FUNC_get_current_task_btf);
  s->rodata->targ_task_btf = task_btf;

  // which programs load, and what each path is served by: hook_plan.cpp
  HookPlan plan =
      plan_hooks(probe_features(btf, cfg.allow_fentry), {cfg.allow_fentry, cfg.allow_sock_tp, cfg.socket_slots > 0});
  s->rodata->targ_sk_slots = plan.slots;
  slots_ = plan.slots ? cfg.socket_slots : 0;
  check(bpf_map__set_max_entries(s->maps.sk_slots, plan.slots ? cfg.socket_slots : 1), "socket slots");
  s->rodata->targ_defer = plan.defer;
  s->rodata->targ_connect_exit = plan.connect_exit;
  s->rodata->targ_bind_exit = plan.bind_exit;
  s->rodata->targ_sk_tracing = plan.sk_tracing;
  sk_tracing_ = plan.sk_tracing;
  if (!plan.sk_tracing && kernel_at_least(5, 12))
    spdlog::warn(
        "this kernel's BTF names neither bpf_sk_storage_tracing_allowed nor bpf_get_socket_ptr_cookie, which Linux "
        "5.12 has: tracing programs run without socket state (no fexit world, unchecked tcp releases)");
  bpf_program* prog;
  bpf_object__for_each_program(prog, s->obj) {
    std::string name = bpf_program__name(prog);
    if (!known_programs().count(name)) throw FatalError("BPF program " + name + " is in no hook plan");
    bpf_program__set_autoload(prog, plan.loads(name));
  }
  world_ = plan.world;
  paths_ = std::move(plan.paths);
  uncaught_ = std::move(plan.uncaught);

  // ---- load
  int err = portghost_bpf__load(s);
  if (err) throw FatalError(errno_text("cannot load the BPF programs (run with -v for the verifier log)", err));

  // ---- attach
  cgroup_fd_.reset(open(cfg.cgroup_root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cgroup_fd_) throw FatalError(errno_text("cannot open the cgroup v2 root " + cfg.cgroup_root, errno));
  bpf_object__for_each_program(prog, s->obj) {
    // the sweep is run, never attached
    if (!bpf_program__autoload(prog) || prog == s->progs.pg_sweep_slots) continue;
    std::string sec = bpf_program__section_name(prog);
    bpf_link* link = nullptr;
    switch (bpf_program__type(prog)) {
      case BPF_PROG_TYPE_CGROUP_SOCK:
      case BPF_PROG_TYPE_CGROUP_SOCK_ADDR:
      case BPF_PROG_TYPE_SOCK_OPS: link = bpf_program__attach_cgroup(prog, cgroup_fd_.get()); break;
      default:
        if (prog == s->progs.pg_iter_live) {
          bpf_iter_attach_opts opts{};
          bpf_iter_link_info info{};
          info.map.map_fd = static_cast<uint32_t>(bpf_map__fd(s->maps.sk_state));
          opts.sz = sizeof opts;
          opts.link_info = &info;
          opts.link_info_len = sizeof info;
          link = bpf_program__attach_iter(prog, &opts);
        } else if (bpf_program__expected_attach_type(prog) == BPF_TRACE_ITER) {
          link = bpf_program__attach_iter(prog, nullptr);
        } else
          link = bpf_program__attach(prog);
    }
    if (!link) throw FatalError(errno_text("cannot attach " + sec, errno));
    if (prog == s->progs.pg_iter_live)
      iter_live_.reset(link);
    else if (prog == s->progs.pg_iter_tcp)
      iter_tcp_.reset(link);
    else if (prog == s->progs.pg_iter_udp)
      iter_udp_.reset(link);
    else
      links_.emplace_back(link);
    hooks_.push_back(sec);
  }

  // Process records have their own ring, so exec traffic never crowds out a
  // port record. Taken before every port record: the exec or fork that a
  // port's holder went through was committed before the port was taken.
  auto proc_cb = [](void* ctx, void* data, size_t size) -> int {
    static_cast<RingCtx*>(ctx)->cb(data, size);
    return 0;
  };
  proc_ring_.reset(ring_buffer__new(bpf_map__fd(s->maps.proc_events), proc_cb, ring_ctx_.get(), nullptr));
  if (!proc_ring_) throw FatalError(errno_text("cannot set up the process ring buffer", errno));
  ring_ctx_->proc = proc_ring_.get();
  auto ring_cb = [](void* ctx, void* data, size_t size) -> int {
    auto* c = static_cast<RingCtx*>(ctx);
    ring_buffer__consume(c->proc);
    c->cb(data, size);
    return ++c->batch >= kBatch ? kBatchFull : 0;
  };
  ring_.reset(ring_buffer__new(bpf_map__fd(s->maps.events), ring_cb, ring_ctx_.get(), nullptr));
  if (!ring_) throw FatalError(errno_text("cannot set up the ring buffer", errno));

  // ---- arm: every hook is attached, so each assign has its release hook
  __atomic_store_n(&s->bss->pg_armed, true, __ATOMIC_SEQ_CST);
}

int Probes::poll(int timeout_ms) {
  ring_ctx_->batch = 0;
  ring_buffer__consume(proc_ring_.get());
  int n = ring_buffer__poll(ring_.get(), timeout_ms);
  if (n < 0 && n != kBatchFull) return n;
  if (n != kBatchFull) {  // the timer woke us, not the kernel: take what waits
    int m = ring_buffer__consume(ring_.get());
    if (m < 0 && m != kBatchFull) return m;
  }
  return ring_ctx_->batch;
}

int Probes::ring_fd() const { return ring_buffer__epoll_fd(ring_.get()); }

int Probes::drain() {
  ring_ctx_->batch = 0;
  ring_buffer__consume(proc_ring_.get());
  int n = ring_buffer__consume(ring_.get());
  if (n < 0 && n != kBatchFull) return n;
  return ring_ctx_->batch;
}

void Probes::stop_producing() {
  if (read_only_) return;
  // a store to the mmap-ed .bss: every program sees it at its next run
  __atomic_store_n(&skel_->bss->pg_stopping, true, __ATOMIC_SEQ_CST);
}

void Probes::make_read_only() {
  bpf_map* map;
  bpf_object__for_each_map(map, skel_->obj) {
    int fd = bpf_map__fd(map);
    if (fd < 0 || bpf_map__type(map) == BPF_MAP_TYPE_RINGBUF) continue;
    bpf_map_info info{};
    uint32_t len = sizeof info;
    check(bpf_obj_get_info_by_fd(fd, &info, &len), std::string("map info of ") + bpf_map__name(map));
    bpf_get_fd_by_id_opts opts{};
    opts.sz = sizeof opts;
    opts.open_flags = BPF_F_RDONLY;
    UniqueFd ro(bpf_map_get_fd_by_id_opts(info.id, &opts));
    if (!ro) throw FatalError(errno_text(std::string("read-only descriptor of map ") + bpf_map__name(map), errno));
    if (map == skel_->maps.bss) {
      // nothing reads the programs' global data from here on: its mapping
      // goes (a map cannot be mapped from a read-only descriptor), replaced
      // in place by inaccessible anonymous memory so that libbpf's unmap at
      // the end still hits its own range
      size_t size = (bpf_map__value_size(map) + 4095) & ~size_t{4095};
      void* at = skel_->bss;
      if (mmap(at, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != at)
        throw FatalError(errno_text("unmapping the programs' global data", errno));
    }
    if (dup3(ro.get(), fd, O_CLOEXEC) < 0) throw FatalError(errno_text("read-only map descriptor", errno));
  }
  read_only_ = true;
}

Counters Probes::counters() const { return read_counters(bpf_map__fd(skel_->maps.counters)); }

uint64_t Probes::skipped_runs() const { return portghost::skipped_runs(skel_->obj); }
uint64_t Probes::skipped_releases() const { return portghost::skipped_runs(skel_->obj, "pg_set_state"); }
uint64_t Probes::map_memory() const { return map_memory_bytes(skel_->obj); }

std::vector<uint8_t> Probes::run_iterators() {
  // the iterators cannot make a socket's cookie here: a sock_diag dump does
  if (!sk_tracing_ && !generate_socket_cookies())
    spdlog::warn("sock_diag dump failed: sockets from before the start may go unlisted");
  return read_socket_iterators();
}

std::vector<uint8_t> Probes::read_socket_iterators() {
  std::vector<uint8_t> out;
  for (auto* link : {iter_tcp_.get(), iter_udp_.get()})
    if (link) read_iterator(link, out);
  return out;
}

std::vector<uint8_t> Probes::run_liveness_iterators() {
  __atomic_store_n(&skel_->bss->pg_iter_liveness, true, __ATOMIC_SEQ_CST);
  std::vector<uint8_t> out = read_socket_iterators();
  __atomic_store_n(&skel_->bss->pg_iter_liveness, false, __ATOMIC_SEQ_CST);
  return out;
}

std::optional<std::vector<uint64_t>> Probes::live_sockets() {
  // the slots' walk frees the slots of sockets gone unseen, wherever the
  // storage's walk is missing
  std::optional<SlotWalk> slots;
  if (slots_) slots = walk_slots(bpf_program__fd(skel_->progs.pg_sweep_slots), bpf_map__fd(skel_->maps.sk_slots));
  if (slots) slots_freed_ += slots->freed;
  if (!iter_live_ || (slots_ && !slots)) return std::nullopt;
  std::vector<uint8_t> raw;
  // a partial list would release live sockets: all or nothing
  if (!read_iterator(iter_live_.get(), raw)) return std::nullopt;
  std::vector<uint64_t> cookies = slots ? std::move(slots->live) : std::vector<uint64_t>{};
  size_t n = cookies.size();
  cookies.resize(n + raw.size() / sizeof(uint64_t));
  std::memcpy(cookies.data() + n, raw.data(), (cookies.size() - n) * sizeof(uint64_t));
  return cookies;
}

}  // namespace portghost
