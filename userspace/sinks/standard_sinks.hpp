// The records in the schemas incident responders' tools already read: the
// Elastic Common Schema (ECS 9.4.0) and the Open Cybersecurity Schema
// Framework's Network Activity class (OCSF 1.2.0). One JSON document per
// line; what neither schema has a field for goes under "portghost"
// (ECS) or "unmapped" (OCSF). The mapping: docs/event-schema.md.
#pragma once

#include <cstdint>
#include <string>

#include "sinks/json_sink.hpp"
#include "sinks/output.hpp"
#include "trace/sink.hpp"

namespace portghost {

inline constexpr const char* kEcsVersion = "9.4.0";
inline constexpr const char* kOcsfVersion = "1.2.0";

// What both share: the session's identity and the flow's Community ID.
class StandardSink : public Sink {
 public:
  StandardSink(Output& out, std::string host, uint16_t community_seed);
  void flush() override { out_.flush(); }

 protected:
  void session_started(uint64_t ts_ns) {
    run_ = ts_ns;
    seq_ = 0;
  }
  uint64_t next_seq() { return seq_++; }
  Output& out_;
  std::string host_;
  uint64_t run_ = 0, seq_ = 0;
  CommunityIds community_ids_;
};

class EcsSink : public StandardSink {
 public:
  using StandardSink::StandardSink;
  void start(const StartRecord& r) override;
  void port(const PortRecord& r) override;
  void lost(const LostRecord& r) override;
  void stop(const StopRecord& r) override;
  void warning(const WarningRecord& r) override;
  void nat(const NatRecord& r) override;
};

class OcsfSink : public StandardSink {
 public:
  using StandardSink::StandardSink;
  void start(const StartRecord& r) override;
  void port(const PortRecord& r) override;
  void lost(const LostRecord& r) override;
  void stop(const StopRecord& r) override;
  void warning(const WarningRecord& r) override;
  void nat(const NatRecord& r) override;
};

// "docker://abc" -> "abc": the container's own id, as ECS and OCSF hold it.
std::string container_id_of(std::string_view container);

}  // namespace portghost
