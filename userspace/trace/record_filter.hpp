// The filters, applied in userspace to the records the kernel filters could
// not see (sockets held before the start).
#pragma once

#include "common/options.hpp"
#include "trace/records.hpp"

namespace portghost {

// Whether r passes f. The cgroup filter is the caller's (it needs the
// cgroup tree).
bool matches(const Filters& f, const PortRecord& r);

}  // namespace portghost
