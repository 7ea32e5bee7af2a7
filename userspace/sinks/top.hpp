// `portghost top`: the ports held now, live, refreshed every second.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>

#include "sinks/output.hpp"
#include "trace/sink.hpp"

namespace portghost {

class TopSink : public Sink {
 public:
  // range_of(netns): the ephemeral range of that namespace ({0,0} unknown).
  using RangeFn = std::function<std::pair<uint16_t, uint16_t>(uint32_t netns)>;
  TopSink(Output& out, RangeFn range_of, size_t rows = 10) : out_(out), range_of_(std::move(range_of)), rows_(rows) {}

  void start(const StartRecord&) override {}
  void port(const PortRecord& r) override;
  void lost(const LostRecord& r) override { lost_ += r.count; }
  void stop(const StopRecord&) override {}
  // Redraws at most once a second (the trace loop calls this every drain).
  void flush() override;

  // The screen as text (without terminal control), at time now_ns.
  std::string render(uint64_t now_ns);

 private:
  struct Held {
    uint32_t pid;
    std::string comm;
    uint32_t netns;
    Proto proto;
    uint16_t lport;
    uint64_t since_ns;
    bool existing;
  };
  Output& out_;
  RangeFn range_of_;
  size_t rows_;
  std::unordered_map<uint64_t, Held> held_;  // by sock
  std::deque<uint64_t> recent_;              // assign times in the last second
  std::map<uint32_t, std::pair<uint16_t, uint16_t>> ranges_;
  uint64_t lost_ = 0, assigns_ = 0, last_draw_ns_ = 0;
};

}  // namespace portghost
