// libFuzzer target: raw ring-buffer records of any bytes and size, through
// the decoder and everything a record goes through (socket table, process
// cache, JSON). Each input is a sequence of records: a little-endian u16
// length and then the record.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/clock.hpp"
#include "sinks/json_sink.hpp"
#include "sinks/output.hpp"
#include "trace/process_cache.hpp"
#include "trace/record_builder.hpp"
#include "trace/sink.hpp"

using namespace portghost;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  StringOutput out;
  JsonSink sink(out, "fuzz");
  ProcessCache procs("/nonexistent");  // never reads this machine's /proc
  RecordBuilder builder(sink, Filters{}, BootClock(), procs, std::nullopt);
  size_t i = 0;
  while (i + 2 <= size) {
    size_t n = data[i] | static_cast<size_t>(data[i + 1]) << 8;
    i += 2;
    if (n > size - i) n = size - i;
    std::string rec(reinterpret_cast<const char*>(data + i), n);  // exact size: overreads are caught
    builder.on_record(rec.data(), rec.size());
    i += n;
  }
  builder.on_record(data, size);  // the whole input as one record too
  return 0;
}
