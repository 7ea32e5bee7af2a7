// Output sinks behind one interface: JSON Lines (the log contract, see
// docs/event-schema.md) and an aligned table for people at a terminal.
#pragma once

#include <memory>
#include <string>

#include "json.hpp"
#include "output.hpp"
#include "options.hpp"
#include "records.hpp"

namespace portghost {

class Sink {
 public:
  virtual ~Sink() = default;
  virtual void start(const StartRecord& r) = 0;
  virtual void port(const PortRecord& r) = 0;
  virtual void lost(const LostRecord& r) = 0;
  virtual void stop(const StopRecord& r) = 0;
  virtual void warning(const WarningRecord&) {}
  virtual void flush() = 0;
};

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

class TableSink : public Sink {
 public:
  explicit TableSink(Output& out) : out_(out) {}
  void start(const StartRecord& r) override;
  void port(const PortRecord& r) override;
  void lost(const LostRecord& r) override;
  void stop(const StopRecord& r) override;
  void warning(const WarningRecord& r) override;
  void flush() override { out_.flush(); }

  static std::string header();
  static std::string render(const PortRecord& r);

 private:
  Output& out_;
};

std::unique_ptr<Sink> make_sink(Format format, Output& out, const std::string& host = "");


}  // namespace portghost
