#include "app/privileges.hpp"
#include <bpf/bpf.h>
#include <sys/wait.h>
#include <cstdint>
#include "common/text.hpp"

#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <vector>

#include <spdlog/spdlog.h>

#include "common/errors.hpp"

namespace portghost {

namespace {

constexpr int kCapBpf = 39, kCapPerfmon = 38;

bool capget_all(__user_cap_data_struct (&data)[2]) {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  return syscall(SYS_capget, &hdr, data) == 0;
}

bool capset_none() {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  return syscall(SYS_capset, &hdr, data) == 0;
}

// The highest capability this kernel knows (CAP_LAST_CAP of the running
// kernel, not of our headers).
int last_cap() {
  int last = CAP_LAST_CAP;
  while (prctl(PR_CAPBSET_READ, last + 1, 0, 0, 0) >= 0) last++;
  return last;
}

[[noreturn]] void fail(const std::string& who, const std::string& what, int err) {
  throw FatalError(errno_text("--user " + printable(who) + ": " + what, err));
}

}  // namespace

void check_privileges(bool will_drop) {
  struct Cap {
    int bit;
    const char* name;
  };
  static const Cap needed[] = {{kCapBpf, "CAP_BPF"},
                               {kCapPerfmon, "CAP_PERFMON"},
                               {CAP_NET_ADMIN, "CAP_NET_ADMIN"},
                               {CAP_SYS_ADMIN, "CAP_SYS_ADMIN"},
                               {CAP_SYS_PTRACE, "CAP_SYS_PTRACE"}};
  // the drop itself: change ids and groups, empty the bounding set
  static const Cap to_drop[] = {{CAP_SETUID, "CAP_SETUID"}, {CAP_SETGID, "CAP_SETGID"}, {CAP_SETPCAP, "CAP_SETPCAP"}};
  __user_cap_data_struct data[2] = {};
  if (!capget_all(data)) throw FatalError(errno_text("capget", errno));
  auto missing_of = [&](auto& caps) {
    std::string missing;
    for (const auto& c : caps) {
      if (!(data[c.bit / 32].effective & (1u << (c.bit % 32))))
        missing += (missing.empty() ? "" : ", ") + std::string(c.name);
    }
    return missing;
  };
  if (auto missing = missing_of(needed); !missing.empty())
    throw FatalError(
        "needs root, or the capabilities CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, CAP_SYS_ADMIN, "
        "CAP_SYS_PTRACE (missing: " +
        missing + ")");
  if (auto missing = missing_of(to_drop); will_drop && !missing.empty())
    throw FatalError("--user needs CAP_SETUID, CAP_SETGID and CAP_SETPCAP to drop privileges (missing: " + missing +
                     ")");
}

void warn_of_cgroup_naming(bool will_drop) {
  __user_cap_data_struct data[2] = {};
  bool can_open_handles =
      capget_all(data) && (data[CAP_DAC_READ_SEARCH / 32].effective & (1u << (CAP_DAC_READ_SEARCH % 32)));
  if (will_drop)
    spdlog::warn(
        "under --user, cgroups are named by a walk of the tree at most once a second (open_by_handle_at needs "
        "CAP_DAC_READ_SEARCH): a container made and gone between two walks is not named");
  else if (!can_open_handles)
    spdlog::warn(
        "without CAP_DAC_READ_SEARCH, cgroups are named by a walk of the tree at most once a second: a "
        "container made and gone between two walks is not named");
}

RunAs resolve_user(const std::string& name) {
  long size = sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buf(size > 0 ? static_cast<size_t>(size) : 16384);
  passwd pw{}, *found = nullptr;
  int err = 0;
  while ((err = getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found)) == ERANGE && buf.size() < (1u << 20))
    buf.resize(buf.size() * 2);
  if (!found) {
    uid_t uid = 0;
    auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), uid);
    if (ec == std::errc{} && end == name.data() + name.size() && !name.empty())
      while ((err = getpwuid_r(uid, &pw, buf.data(), buf.size(), &found)) == ERANGE && buf.size() < (1u << 20))
        buf.resize(buf.size() * 2);
  }
  if (!found)
    throw FatalError(
        "--user " + printable(name) + ": no such user" + (err ? " (" + errno_text("lookup", err) + ")" : ""),
        kExitUsage);
  // uid 0 without capabilities still owns every root file: not a drop
  if (pw.pw_uid == 0)
    throw FatalError("--user " + printable(name) + ": is root (uid 0); name an unprivileged user", kExitUsage);
  return RunAs{pw.pw_name, pw.pw_uid, pw.pw_gid};
}

void drop_privileges(const RunAs& who) {
  // The bounding set first: dropping from it needs CAP_SETPCAP, gone after
  // the switch of user.
  int last = last_cap();
  for (int c = 0; c <= last; c++) {
    if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0 && errno != EINVAL)
      fail(who.name, "cannot empty the capability bounding set", errno);
  }
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
    fail(who.name, "cannot clear the ambient capabilities", errno);
  if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) fail(who.name, "cannot clear keep-capabilities", errno);
  // Groups before the user: changing groups needs the privilege we give up.
  if (setgroups(1, &who.gid) != 0) fail(who.name, "setgroups", errno);
  if (setresgid(who.gid, who.gid, who.gid) != 0) fail(who.name, "setresgid", errno);
  if (setresuid(who.uid, who.uid, who.uid) != 0) fail(who.name, "setresuid", errno);
  // Leaving uid 0 already cleared them; a tracer started by a non-root user
  // with capabilities (a service's ambient set) still holds them: clear.
  if (!capset_none()) fail(who.name, "cannot clear the capabilities", errno);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail(who.name, "cannot set no_new_privs", errno);

  // Trust nothing: check what we became.
  uid_t ru, eu, su;
  gid_t rg, eg, sg;
  if (getresuid(&ru, &eu, &su) != 0 || ru != who.uid || eu != who.uid || su != who.uid)
    fail(who.name, "the user ids did not all change", EPERM);
  if (getresgid(&rg, &eg, &sg) != 0 || rg != who.gid || eg != who.gid || sg != who.gid)
    fail(who.name, "the group ids did not all change", EPERM);
  __user_cap_data_struct data[2] = {};
  if (!capget_all(data)) fail(who.name, "capget", errno);
  for (const auto& d : data)
    if (d.effective || d.permitted || d.inheritable) fail(who.name, "capabilities remain after the drop", EPERM);
  for (int c = 0; c <= last; c++) {
    if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) > 0) fail(who.name, "the bounding set is not empty", EPERM);
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, c, 0, 0) > 0)
      fail(who.name, "an ambient capability remains", EPERM);
  }
  gid_t groups[2];
  int n = getgroups(2, groups);
  if (n > 1 || (n == 1 && groups[0] != who.gid)) fail(who.name, "supplementary groups remain", EPERM);
  if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) fail(who.name, "no_new_privs is not set", EPERM);
  if (setuid(0) == 0) fail(who.name, "uid 0 could be regained", EPERM);
}

bool unprivileged_can_read_maps(const RunAs& who) {
  int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "pg_user_probe", sizeof(uint32_t), sizeof(uint64_t), 1, nullptr);
  if (fd < 0) return true;  // the load will say what is wrong
  pid_t pid = fork();
  if (pid == 0) {
    try {
      drop_privileges(who);
    } catch (...) {
      _exit(2);
    }
    uint32_t key = 0;
    uint64_t value = 0;
    _exit(bpf_map_lookup_elem(fd, &key, &value) == 0 ? 0 : 1);
  }
  close(fd);
  if (pid < 0) return true;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return !WIFEXITED(status) || WEXITSTATUS(status) != 1;  // only a refused read says no
}

}  // namespace portghost
