// An aligned table for people at a terminal, and the choice of sink.
#pragma once

#include <memory>
#include <string>

#include "common/options.hpp"
#include "sinks/json_sink.hpp"
#include "sinks/output.hpp"
#include "trace/sink.hpp"

namespace portghost {

class TableSink : public Sink {
 public:
  explicit TableSink(Output& out) : out_(out) {}
  void start(const StartRecord& r) override;
  void port(const PortRecord& r) override;
  void lost(const LostRecord& r) override;
  void stop(const StopRecord& r) override;
  void warning(const WarningRecord& r) override;
  void nat(const NatRecord& r) override;
  void flush() override { out_.flush(); }

  static std::string header();
  static std::string render(const PortRecord& r);
  static std::string render(const NatRecord& r);

 private:
  Output& out_;
};

// The sink for --format (JSON Lines or the table) writing to out; life:
// JSON Lines only (the other formats write a document per record).
std::unique_ptr<Sink> make_sink(Format format, Output& out, const std::string& host = "", uint16_t community_seed = 0,
                                LifeLines life = {});

}  // namespace portghost
