#include "trace/record_filter.hpp"

namespace portghost {

bool matches(const Filters& f, const PortRecord& r) {
  if (f.pid && r.pid != f.pid) return false;
  if (f.comm && r.comm != f.comm) return false;
  if (r.lport < f.port_lo || r.lport > f.port_hi) return false;
  if (f.proto && r.proto != *f.proto) return false;
  if (f.family && r.family != *f.family) return false;
  if (f.netns && r.netns != f.netns) return false;
  if (f.ephemeral_only && r.ephemeral != true) return false;
  return true;
}

}  // namespace portghost
