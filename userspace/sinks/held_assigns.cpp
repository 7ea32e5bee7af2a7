#include "sinks/held_assigns.hpp"

#include <malloc.h>

namespace portghost {

namespace {
// A text that fits its fixed room whole (a longer one would be cut there,
// and two cut texts could compare equal).
template <size_t N>
bool put(FixedText<N>& to, std::string_view s) {
  to = s;
  return s.size() <= N;
}
}  // namespace

HeldAssigns::Flow HeldAssigns::Flow::of(const PortRecord& r) {
  Flow f;
  f.proto = r.proto;
  f.family = r.family;
  f.lport = r.lport;
  f.rport = r.rport;
  f.fits = put(f.laddr, r.laddr);
  if (r.raddr) {
    f.has_raddr = true;
    f.fits = put(f.raddr, *r.raddr) && f.fits;
  }
  f.pid = r.pid;
  if (r.comm) {
    f.comm.emplace();
    f.fits = put(*f.comm, *r.comm) && f.fits;
  }
  return f;
}

bool HeldAssigns::Flow::operator==(const Flow& o) const {
  return fits && o.fits && proto == o.proto && family == o.family && lport == o.lport && rport == o.rport &&
         has_raddr == o.has_raddr && laddr == o.laddr && raddr == o.raddr && pid == o.pid && comm == o.comm;
}

void HeldAssigns::trim() {
  if (entries_.empty()) {
    arena_base_ += arena_.size();
    arena_.clear();
    // after a burst of long-lived ports, the room goes back; at most once
    // in 10 s, so that a steady load does not pay to grow it again
    if (arena_.capacity() > (256u << 10) && now_ns_ - shrunk_ns_ >= 10'000'000'000ULL) {
      shrunk_ns_ = now_ns_;
      std::string().swap(arena_);
      index_ = FlatMap<uint64_t>();
      std::deque<Entry>().swap(entries_);
      malloc_trim(0);  // the heap's free top too: glibc keeps it otherwise
    }
    return;
  }
  // the written-out front is given back once it is half the arena (each
  // byte is moved at most once on average)
  size_t done = entries_.front().off - arena_base_;
  if (done < (64u << 10) || done * 2 < arena_.size()) return;
  arena_.erase(0, done);
  arena_base_ += done;
}

}  // namespace portghost
