// What the tracer needs to start, and how it gives it all up afterwards
// (--user, like tcpdump -Z): loading and attaching need root or five
// capabilities; reading the ring buffer, decoding and writing need none.
#pragma once

#include <sys/types.h>

#include <string>

namespace portghost {

struct RunAs {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
};

// Throws FatalError naming the capabilities this process lacks (with
// will_drop, also those that --user needs to give the rest up).
void check_privileges(bool will_drop = false);

// Warns once, when cgroups can only be named by a periodic walk of the tree
// (under --user, or without CAP_DAC_READ_SEARCH). Called once every check
// that may refuse the run has passed, so a refusal stays one line.
void warn_of_cgroup_naming(bool will_drop);

// A user name, or a numeric uid, from the password database. Throws a
// usage error (exit 2) when there is no such user, or it is root.
RunAs resolve_user(const std::string& name);

// Becomes `who` for good: only its primary group, real/effective/saved ids
// all set, every capability gone (effective, permitted, inheritable,
// ambient, bounding set), no_new_privs set. Verifies each and throws
// FatalError if anything could not be dropped: a half-dropped tracer never
// runs. File descriptors (ring buffer, maps, links, the log) stay open.
void drop_privileges(const RunAs& who);

// Whether `who`, with no capabilities, may still read a BPF map handed to
// it (the loss counters after --user). Some kernels refuse every bpf() call
// of an unprivileged process (kernel.unprivileged_bpf_disabled). Tried in
// a child that drops to `who`; true when it cannot be told here.
bool unprivileged_can_read_maps(const RunAs& who);

}  // namespace portghost
