// JSON Lines: one object per record, the log contract (docs/event-schema.md).
#pragma once

#include <string>

#include "common/json.hpp"
#include "sinks/output.hpp"
#include "trace/sink.hpp"

namespace portghost {

class JsonSink : public Sink {
 public:
  // host: when set, every record ends with "host" (merged logs of many hosts
  // stay attributable).
  explicit JsonSink(Output& out, std::string host = "") : out_(out), host_(std::move(host)) {}
  void start(const StartRecord& r) override;
  void port(const PortRecord& r) override;
  void lost(const LostRecord& r) override;
  void stop(const StopRecord& r) override;
  void warning(const WarningRecord& r) override;
  void flush() override { out_.flush(); }

  // One record's line (with its newline), as port() writes it.
  static std::string render(const PortRecord& r, const std::string& host = "");
  static void render_to(std::string& s, const PortRecord& r, const std::string& host);

 private:
  void finish(JsonObject& o, const std::string& s);  // host last, close, write
  Output& out_;
  std::string host_;
  std::string line_;  // reused: no allocation per record
};

}  // namespace portghost
