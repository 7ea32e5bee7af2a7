#include "trace/process_cache.hpp"

#include <dirent.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace portghost {

namespace {

// At most `limit` bytes of a file (a process's argv can be megabytes).
std::optional<std::string> read_file(const std::string& path, size_t limit = 1 << 16) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return std::nullopt;
  std::string s(limit, '\0');
  f.read(s.data(), static_cast<std::streamsize>(limit));
  s.resize(static_cast<size_t>(f.gcount()));
  return s;
}

// The first n images of p's chain (p, what it replaced, ...). Images are
// shared (a forked child copies its parent's chain): one is copied, never
// changed, where the chain must end sooner.
std::shared_ptr<const ProcInfo> kept(const std::shared_ptr<const ProcInfo>& p, int n) {
  if (!p || !p->before) return p;
  auto rest = n > 1 ? kept(p->before, n - 1) : nullptr;
  if (rest == p->before) return p;
  auto c = std::make_shared<ProcInfo>(*p);
  c->before = std::move(rest);
  return c;
}

// Field 22 of /proc/PID/stat, the start in clock ticks after boot, in ns
// (rounded down, as the kernel rounds); 0 when absent.
uint64_t start_boot_ns(const std::string& stat) {
  auto close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream in(stat.substr(close + 1));
  std::string field;
  for (int i = 3; i <= 22; i++)
    if (!(in >> field)) return 0;
  static const long tick = sysconf(_SC_CLK_TCK);
  if (tick <= 0) return 0;
  return std::strtoull(field.c_str(), nullptr, 10) * (1'000'000'000ULL / static_cast<uint64_t>(tick));
}

}  // namespace

const std::string& SharedText::empty_text() {
  static const std::string empty;
  return empty;
}

SharedText::SharedText(std::string s, const std::shared_ptr<Budget>& budget) {
  if (s.empty()) return;
  size_t n = s.size();
  budget->bytes += n;
  // the deleter keeps the budget alive for as long as the text
  p_ = std::shared_ptr<const std::string>(new std::string(std::move(s)), [budget, n](const std::string* t) {
    budget->bytes -= n;
    delete t;  // NOLINT(cppcoreguidelines-owning-memory): the shared_ptr's deleter
  });
}

// Evicts entries (any but pid) while a bound is passed: the count, or the
// bytes of text. An evicted process's next record reads /proc again.
void ProcessCache::make_room(uint32_t pid) {
  while (!procs_.empty() && (procs_.size() > max_entries_ || budget_->bytes > max_bytes_)) {
    auto victim = procs_.begin();
    if (victim->first == pid && ++victim == procs_.end()) break;
    procs_.erase(victim);
    evicted_++;
  }
}

void ProcessCache::put(uint32_t pid, ProcInfo info) {
  procs_[pid] = std::move(info);
  make_room(pid);
}

void ProcessCache::on_event(const TaskEvent& t) {
  switch (t.kind) {
    case TaskEvent::Kind::Exec: {
      ProcInfo info;
      info.exe = SharedText(t.exe, budget_);
      info.cmdline = SharedText(t.cmdline, budget_);
      info.comm = t.comm;
      info.ppid = t.ppid;
      if (t.args_unreadable) {
        // the argv pages were not resident: /proc still has them if alive,
        // and if it is still this image (not a later exec, not a reused pid)
        auto p = read_proc(t.pid);
        if (p && p->comm == t.comm && p->since_boot_ns <= t.ts_boot_ns) info.cmdline = p->cmdline;
      }
      info.since_boot_ns = t.ts_boot_ns;
      // the image it replaces stays, for port records made before the exec
      // and read after it (a few images at most)
      if (auto it = procs_.find(t.pid); it != procs_.end() && it->second)
        info.before = kept(std::make_shared<const ProcInfo>(std::move(*it->second)), kImagesKept - 1);
      put(t.pid, std::move(info));
      break;
    }
    case TaskEvent::Kind::Fork: {
      // the image the parent ran at the fork (it may have exec'd since)
      const ProcInfo* parent = lookup(t.ppid, {}, t.ts_boot_ns);
      if (parent == &unknown_) parent = nullptr;
      ProcInfo info = parent ? *parent : ProcInfo{};
      info.comm = t.comm;
      info.ppid = t.ppid;
      info.exited_boot_ns = 0;
      put(t.pid, std::move(info));
      break;
    }
    case TaskEvent::Kind::Exit: {
      auto it = procs_.find(t.pid);
      if (it == procs_.end()) break;
      if (!it->second) {
        procs_.erase(it);
        break;
      }
      it->second->exited_boot_ns = t.ts_boot_ns ? t.ts_boot_ns : 1;
      exits_.emplace_back(it->second->exited_boot_ns, t.pid);
      break;
    }
  }
}

void ProcessCache::expire(uint64_t boot_ns) {
  while (!exits_.empty() && exits_.front().first < boot_ns) {
    auto [ts, pid] = exits_.front();
    exits_.pop_front();
    auto it = procs_.find(pid);
    // only the process that exited then: the pid may have been reused since
    if (it != procs_.end() && it->second && it->second->exited_boot_ns == ts) procs_.erase(it);
  }
}

std::optional<ProcInfo> ProcessCache::read_proc(uint32_t pid) const {
  std::string dir = proc_root_ + "/" + std::to_string(pid);
  // cut where an exec record's is (PG_ARGS_LIMIT - 1 bytes): the cache's
  // size is then bounded by its count, whatever a process's argv weighs
  auto cmd = read_file(dir + "/cmdline", PG_ARGS_LIMIT - 1);
  if (!cmd) return std::nullopt;
  ProcInfo info;
  info.cmdline = SharedText(cmdline_from_args(cmd->data(), cmd->size()), budget_);
  char buf[4096];
  ssize_t n = readlink((dir + "/exe").c_str(), buf, sizeof buf);
  // no executable to name (a leader gone with its threads still running, a
  // process being torn down): exe and cmdline are unknown, not empty
  if (n <= 0) info.unread = true;
  if (n > 0) {
    std::string exe(buf, static_cast<size_t>(n));
    const std::string deleted = " (deleted)";
    if (exe.size() > deleted.size() && exe.compare(exe.size() - deleted.size(), deleted.size(), deleted) == 0)
      exe.resize(exe.size() - deleted.size());
    info.exe = SharedText(std::move(exe), budget_);
  }
  if (auto comm = read_file(dir + "/comm")) {
    info.comm = *comm;
    while (!info.comm.empty() && info.comm.back() == '\n') info.comm.pop_back();
  }
  if (auto stat = read_file(dir + "/stat")) {
    // pid (comm) state ppid ... ; comm may hold spaces and parentheses
    auto close = stat->rfind(')');
    if (close != std::string::npos && close + 4 < stat->size())
      info.ppid = static_cast<uint32_t>(std::strtoul(stat->c_str() + close + 4, nullptr, 10));
    info.since_boot_ns = start_boot_ns(*stat);
  }
  return info;
}

size_t ProcessCache::seed() {
  DIR* d = opendir(proc_root_.c_str());
  if (!d) return 0;
  size_t n = 0;
  while (dirent* de = readdir(d)) {
    char* end = nullptr;
    unsigned long pid = std::strtoul(de->d_name, &end, 10);
    if (!end || *end || pid == 0) continue;
    if (auto info = read_proc(static_cast<uint32_t>(pid))) {
      // a record already received from the kernel is newer than /proc
      if (procs_.find(static_cast<uint32_t>(pid)) == procs_.end()) put(static_cast<uint32_t>(pid), *info);
      n++;
    }
  }
  closedir(d);
  return n;
}

const ProcInfo* ProcessCache::lookup(uint32_t pid, std::string_view comm, uint64_t at_boot_ns) {
  auto it = procs_.find(pid);
  if (it != procs_.end() && !exec_records_ && !comm.empty() && (!it->second || it->second->comm != comm)) {
    // renamed by an exec we were not told of: what /proc says now, or nothing
    auto now = read_proc(pid);
    if (!now || now->comm != comm) {
      now = ProcInfo{};
      now->comm = std::string(comm);
      now->unread = true;
      if (it->second) now->ppid = it->second->ppid;
    }
    // an exit already read stays, so that expire() still forgets it
    if (it->second) now->exited_boot_ns = it->second->exited_boot_ns;
    it->second = std::move(now);
    make_room(pid);
    it = procs_.find(pid);
  }
  if (it == procs_.end()) {
    procs_.emplace(pid, read_proc(pid));
    make_room(pid);
    it = procs_.find(pid);
  }
  if (!it->second) return nullptr;
  const ProcInfo* p = &*it->second;
  while (p->since_boot_ns > at_boot_ns) {
    if (!p->before) {
      // began after the record, and what it ran before is not known
      unknown_ = ProcInfo{};
      unknown_.comm = p->comm;
      unknown_.ppid = p->ppid;
      unknown_.unread = true;
      return &unknown_;
    }
    p = p->before.get();
  }
  return p;
}

}  // namespace portghost
