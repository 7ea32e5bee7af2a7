// Assign lines held back a short while, so that a socket released within it
// is written as one `life` line (docs/event-schema.md): where a release is
// matched to its held assign. Most ports live for milliseconds; one line
// instead of two is about half the bytes and half the work per port.
//
// A held assign is written as it was rendered, in the order held, once it
// is older than the hold, or at once when the held text passes its bound
// (counted: nothing is lost, the port is then written as two lines), when
// its socket's release cannot share its line, or when a record about its
// socket must follow it.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>

#include "common/fixed_text.hpp"
#include "common/flat_map.hpp"
#include "trace/records.hpp"

namespace portghost {

class HeldAssigns {
 public:
  struct Limits {
    uint64_t hold_ns = 100'000'000;  // a port released within it is one line
    size_t max_bytes = 1u << 20;     // held text, at most (about 2,300 assigns)
  };
  explicit HeldAssigns(Limits l) : limits_(l) {}

  // Holds assign r, rendered as `members` (its members after "type", up to
  // and without "host"). Its hold is counted from the next expire(), which
  // is after it came. A socket held already is written first.
  template <class Write>
  void hold(const PortRecord& r, std::string_view members, Write&& write) {
    write_sock(r.sock, write);
    drop_ended_front();
    while (!entries_.empty() && held_bytes() + members.size() > limits_.max_bytes) {
      if (entries_.front().live) early_++;
      pop_front(write);
    }
    Entry e;
    e.sock = r.sock;
    e.at_ns = kUnstamped;
    e.off = arena_base_ + arena_.size();
    e.len = members.size();
    e.flow = Flow::of(r);
    arena_.append(members);
    *index_.try_emplace(r.sock).first = first_ + entries_.size();
    entries_.push_back(e);
    live_++;
  }

  // Release r's held assign, when its line can carry r: the members held
  // (valid until the next call), and the entry is gone. Otherwise nullopt,
  // and a held assign of r's socket is written first.
  template <class Write>
  std::optional<std::string_view> pair(const PortRecord& r, Write&& write) {
    drop_ended_front();
    Entry* e = find(r.sock);
    if (!e) return std::nullopt;
    if (!pairable(r) || !(e->flow == Flow::of(r))) {
      write_sock(r.sock, write);
      return std::nullopt;
    }
    end(*e);
    return text(*e);  // the front is given back at the next call, not before
  }

  // Writes the held assign of sock, if any (a record about it follows).
  template <class Write>
  void write_sock(uint64_t sock, Write&& write) {
    if (Entry* e = find(sock)) {
      write(text(*e));
      end(*e);
    }
  }

  // Writes the assigns held for hold_ns or more by now_ns, oldest first;
  // those held since the last call are held from now_ns.
  template <class Write>
  void expire(uint64_t now_ns, Write&& write) {
    now_ns_ = now_ns;
    for (auto it = entries_.rbegin(); it != entries_.rend() && it->at_ns == kUnstamped; ++it) it->at_ns = now_ns;
    while (!entries_.empty() && (!entries_.front().live || now_ns - entries_.front().at_ns >= limits_.hold_ns))
      pop_front(write);
  }

  // Writes every held assign (the stop).
  template <class Write>
  void write_all(Write&& write) {
    while (!entries_.empty()) pop_front(write);
  }

  size_t held() const { return live_; }
  // assigns written before their hold ended because the held text was full
  uint64_t early() const { return early_; }

 private:
  // What a release must name to share its assign's line: the same flow,
  // and the assign's holder.
  struct Flow {
    Proto proto = Proto::Tcp;
    Family family = Family::Ipv4;
    uint16_t lport = 0;
    std::optional<uint16_t> rport;
    AddrText laddr, raddr;
    bool has_raddr = false;
    std::optional<uint32_t> pid;
    std::optional<CommText> comm;
    bool fits = true;  // every text fitted: otherwise no release pairs with it
    static Flow of(const PortRecord& r);
    bool operator==(const Flow& o) const;
  };
  static constexpr uint64_t kUnstamped = ~uint64_t{0};
  struct Entry {
    uint64_t sock = 0, at_ns = 0;
    uint64_t off = 0;  // in the arena, counted from its first byte ever
    size_t len = 0;
    bool live = true;
    Flow flow;
  };
  // A release the line of its assign can carry: seen at its time, with its
  // duration, and not a port given up by a socket that stays open.
  static bool pairable(const PortRecord& r) { return r.duration_ns && !r.reconciled && !r.disconnect && !r.late; }
  Entry* find(uint64_t sock) {
    const uint64_t* n = index_.find(sock);
    return n ? &entries_[*n - first_] : nullptr;
  }
  std::string_view text(const Entry& e) const { return std::string_view(arena_).substr(e.off - arena_base_, e.len); }
  size_t held_bytes() const { return entries_.empty() ? 0 : arena_base_ + arena_.size() - entries_.front().off; }
  void end(Entry& e) {
    e.live = false;
    index_.erase(e.sock);
    live_--;
  }
  template <class Write>
  void pop_front(Write& write) {
    Entry& e = entries_.front();
    if (e.live) {
      write(text(e));
      end(e);
    }
    entries_.pop_front();
    first_++;
    trim();
  }
  // Entries at the front that ended (paired, or written) go at once: most
  // ports are short-lived, and their text need not wait for the hold.
  void drop_ended_front() {
    while (!entries_.empty() && !entries_.front().live) {
      entries_.pop_front();
      first_++;
    }
    trim();
  }
  void trim();  // gives back the arena's written-out front

  Limits limits_;
  std::deque<Entry> entries_;  // in the order held
  uint64_t first_ = 0;         // the number of entries_.front()
  FlatMap<uint64_t> index_;    // sock -> its entry's number
  std::string arena_;          // the held members, in the order held
  uint64_t arena_base_ = 0;    // the count of bytes ever given back from arena_'s front
  size_t live_ = 0;
  uint64_t early_ = 0;
  uint64_t now_ns_ = 0;     // the latest expire()'s time
  uint64_t shrunk_ns_ = 0;  // when the room was last given back
};

}  // namespace portghost
