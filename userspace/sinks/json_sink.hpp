// JSON Lines: one object per record, the log contract (docs/event-schema.md).
#pragma once

#include <array>
#include <optional>
#include <string>

#include "common/json.hpp"
#include "sinks/attribution_cache.hpp"
#include "sinks/held_assigns.hpp"
#include "sinks/output.hpp"
#include "trace/sink.hpp"

namespace portghost {

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
  auto assign_writer() {
    return [this](std::string_view members) { write_assign(members); };
  }
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
