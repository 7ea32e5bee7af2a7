// JSON Lines: one object per record, the log contract (docs/event-schema.md).
#pragma once

#include <array>
#include <optional>
#include <string>

#include "common/community_id.hpp"
#include "common/json.hpp"
#include "sinks/held_assigns.hpp"
#include "sinks/output.hpp"
#include "trace/sink.hpp"

namespace portghost {

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

// One line for a short-lived port: an assign is held back for hold_ns
// (0: never, each record its own line) and a release within it shares its
// line (`life`). clock: the time the hold is measured by.
struct LifeLines {
  uint64_t hold_ns = 0;
  size_t max_bytes = HeldAssigns::Limits{}.max_bytes;
  uint64_t (*clock)() = nullptr;  // default: CLOCK_BOOTTIME
};

class JsonSink : public Sink {
 public:
  // host: when set, every record but start ends with "host" (merged logs of
  // many hosts stay attributable). Every record then ends with "run" (the
  // session's start time) and "seq" (its line number in the session, start
  // being 0): with the host, the identity a store deduplicates on.
  // community_seed: the Community ID's seed (--community-id-seed).
  explicit JsonSink(Output& out, std::string host = "", uint16_t community_seed = 0, LifeLines life = {});
  void start(const StartRecord& r) override;
  void port(const PortRecord& r) override;
  void lost(const LostRecord& r) override;
  void stop(const StopRecord& r) override;
  void warning(const WarningRecord& r) override;
  void nat(const NatRecord& r) override;
  void flush() override;

  // One record's line (with its newline), as port() writes it.
  static std::string render(const PortRecord& r, const std::string& host = "", uint16_t community_seed = 0);

 private:
  // The record's members into o. host_member: ',"host":..' or empty;
  // cache: where the attribution of the same task is reused (none: rendered).
  static void render_into(JsonObject& o, const PortRecord& r, std::string_view host_member, AttributionCache* cache,
                          CommunityIds& ids);
  static std::string host_member_of(const std::string& host);
  void finish(JsonObject& o, const std::string& s);  // host, run and seq last, close, write
  void identity(JsonObject& o);                      // ,"run":..,"seq":.. (and count the line)
  void write_assign(std::string_view members);       // a held assign's line
  void write_life(std::string_view members, const PortRecord& release);
  Output& out_;
  std::string host_;
  std::string host_member_;  // ,"host":"..." rendered once (empty without a host)
  std::string run_member_;   // ,"run":N rendered once, at start
  DecimalCounter seq_;       // the next record's line number in the session
  std::string line_;         // reused: no allocation per record
  AttributionCache attribution_;
  CommunityIds community_ids_;
  LifeLines life_;
  HeldAssigns held_;
  std::string held_line_;  // reused: an assign rendered to be held
};

}  // namespace portghost
