// What a record's text reuses from the records before it: a task's
// attribution and a flow's Community ID, each rendered once.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>

#include "common/community_id.hpp"
#include "common/json.hpp"
#include "trace/records.hpp"

namespace portghost {

// Who did it: pid .. kernel, in the contract's order (assign, existing,
// exhausted), rendered anew.
void render_attribution(JsonObject& o, const PortRecord& r);

// The attribution of a task (pid .. kernel), rendered once and reused while
// the same task takes ports: most of a record's text, and most of its cost.
// A slot holds the values it was rendered from and is used only when every
// one of them is equal again, so a stale slot can never be written.
class AttributionCache {
 public:
  // The rendered members for r (",\"pid\":..,\"kernel\":false"), from a slot or new.
  std::string_view members(const PortRecord& r);
  uint64_t hits() const { return hits_; }
  // A task's name (a release's holder and closer) as a JSON string, kept
  // while the same name comes again.
  std::string_view quoted_name(std::string_view name);

 private:
  std::optional<std::string> name_;
  std::string name_quoted_;
  struct Slot {
    bool used = false;
    std::optional<uint32_t> pid, tid, ppid, uid, netns;
    std::optional<uint64_t> cgroup_id;
    std::optional<std::string> comm, thread, exe, cmdline, container;
    bool kernel = false;
    std::string text;
    bool matches(const PortRecord& r) const;
    void fill(const PortRecord& r);
  };
  static constexpr size_t kSlots = 64;  // by tid: a busy server's threads each keep one
  std::array<Slot, kSlots> slots_;
  uint64_t hits_ = 0;
};

// The Community ID of a record's flow (null without a peer), kept by
// socket: a release usually names the flow its assign named, and a SHA-1
// per record is not free.
class CommunityIds {
 public:
  explicit CommunityIds(uint16_t seed) : seed_(seed) {}
  // nullopt when the record names no flow (no peer, an unspecified end)
  std::optional<std::string_view> of(const PortRecord& r);

 private:
  struct Slot {
    uint64_t sock = 0;
    Proto proto = Proto::Tcp;
    AddrText laddr, raddr;
    uint16_t lport = 0, rport = 0;
    CommunityIdText id;
    bool has_id = false;
    bool used = false;
  };
  static constexpr size_t kSlots = 256;
  std::array<Slot, kSlots> slots_;
  uint16_t seed_;
};

}  // namespace portghost
