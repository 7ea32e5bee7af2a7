// A log opened to be read by root where other users may write: never through
// a symbolic link, never a FIFO or a device (which would hang the reader or
// be touched by opening it), its text handed over in pieces, and a .gz
// decompressed only so far as a real log could go.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

struct gzFile_s;

namespace portghost {

class LogFile {
 public:
  // Throws FatalError (one line): missing or unreadable, a symbolic link (not
  // followed), or not a regular file. A .gz may decompress to at most
  // max(gz_floor, gz_ratio x its size at the open).
  LogFile(const std::string& path, uint64_t gz_floor, uint64_t gz_ratio);
  ~LogFile();
  LogFile(const LogFile&) = delete;
  LogFile& operator=(const LogFile&) = delete;

  // Up to n bytes of the text (decompressed); 0 at its end. A plain file is
  // read up to its size at the open (what is appended meanwhile is left, so
  // a file that grows cannot keep the reader). A damaged .gz ends where the
  // damage starts. Throws FatalError past the .gz's bound.
  size_t read(char* buf, size_t n);

 private:
  std::string path_;
  int fd_ = -1;
  gzFile_s* gz_ = nullptr;
  uint64_t left_ = 0;               // plain: bytes still to read
  uint64_t out_ = 0, max_out_ = 0;  // .gz: bytes decompressed, and the bound
  uint64_t gz_size_ = 0, gz_ratio_ = 0;
};

}  // namespace portghost
