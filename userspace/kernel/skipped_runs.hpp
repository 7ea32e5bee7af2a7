// Runs of the tracing programs that the kernel skipped: a tracing program
// (tp_btf, fentry, fexit) is not run nested on a CPU where it already runs
// (a softirq moving a socket to CLOSE while the same program runs in
// process context), and the kernel counts that only in the program's
// recursion_misses. A skip may have cost a record, so it is reported and
// answered with a reconciliation walk.
#pragma once

#include <cstdint>

struct bpf_object;

namespace portghost {

// The sum of recursion_misses over the object's loaded programs (a program
// whose information cannot be read counts 0, and is logged once).
// name: only that program's (nullptr: every program's).
uint64_t skipped_runs(bpf_object* obj, const char* name = nullptr);

}  // namespace portghost
