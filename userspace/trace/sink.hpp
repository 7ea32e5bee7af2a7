// Where the records go: one interface, implemented by the JSON Lines sink
// (the log contract, docs/event-schema.md), the table and the live view.
#pragma once

#include "trace/records.hpp"

namespace portghost {

class Sink {
 public:
  virtual ~Sink() = default;
  virtual void start(const StartRecord& r) = 0;
  virtual void port(const PortRecord& r) = 0;
  virtual void lost(const LostRecord& r) = 0;
  virtual void stop(const StopRecord& r) = 0;
  virtual void warning(const WarningRecord&) {}
  virtual void nat(const NatRecord&) {}
  virtual void flush() = 0;
};

}  // namespace portghost
