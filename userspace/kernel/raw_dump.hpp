// Raw kernel records, as the ring buffer handed them over, kept in a file
// for replay: benchmarks of the consumer, and bug reports that reproduce
// without the kernel. Format: "PGRAW2\n", then per record a little-endian
// u32 size and the record's bytes.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace portghost {

class RawDumpWriter {
 public:
  explicit RawDumpWriter(const std::string& path);  // throws FatalError
  ~RawDumpWriter();
  RawDumpWriter(const RawDumpWriter&) = delete;
  RawDumpWriter& operator=(const RawDumpWriter&) = delete;

  void write(const void* data, size_t size);
  void flush();

 private:
  std::string path_;
  FILE* f_ = nullptr;
};

// Every record of a dump; throws FatalError for a file that is not a dump.
// A record cut off at the end (the writer was killed) is dropped.
std::vector<std::string> read_raw_dump(const std::string& path);

}  // namespace portghost
