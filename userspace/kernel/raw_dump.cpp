#include "kernel/raw_dump.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <utility>

#include "common/errors.hpp"
#include "common/file_place.hpp"

namespace portghost {

namespace {
constexpr char kMagic[] = "PGRAW2\n";
constexpr size_t kMagicLen = sizeof kMagic - 1;
}  // namespace

RawDumpWriter::RawDumpWriter(const std::string& path) : path_(path) {
  // the records name every process and command line: readable by root
  // only, in a directory nobody else can swap names in; never through a
  // link, never into a FIFO (O_NONBLOCK: no wait for its reader either),
  // and a file is cut only once known to be a regular file of its own
  // (not a hard link to another file)
  check_file_place(path);
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
  if (fd < 0 && errno == ENXIO)
    throw FatalError("refusing to write raw dump " + path + ": not a regular file (a FIFO nobody reads)", kExitUsage);
  if (fd < 0) throw FatalError(errno_text("cannot write raw dump " + path, errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink > 1 || st.st_uid != geteuid()) {
    close(fd);
    throw FatalError("refusing to write raw dump " + path +
                         ": not a regular file of its own (a FIFO, a device, a hard link to another file, or "
                         "another user's file)",
                     kExitUsage);
  }
  if (fchmod(fd, 0600) != 0 || ftruncate(fd, 0) != 0 || fcntl(fd, F_SETFL, 0) != 0) {
    int e = errno;
    close(fd);
    throw FatalError(errno_text("cannot write raw dump " + path, e));
  }
  f_ = fdopen(fd, "wb");
  if (!f_) {
    close(fd);
    throw FatalError(errno_text("cannot write raw dump " + path, errno));
  }
  std::setvbuf(f_, nullptr, _IOFBF, 1 << 20);
  if (std::fwrite(kMagic, 1, kMagicLen, f_) != kMagicLen) {
    std::fclose(std::exchange(f_, nullptr));
    throw FatalError("cannot write raw dump " + path);
  }
}

RawDumpWriter::~RawDumpWriter() {
  if (f_) std::fclose(f_);
}

void RawDumpWriter::write(const void* data, size_t size) {
  uint8_t len[4] = {static_cast<uint8_t>(size), static_cast<uint8_t>(size >> 8), static_cast<uint8_t>(size >> 16),
                    static_cast<uint8_t>(size >> 24)};
  if (std::fwrite(len, 1, 4, f_) != 4 || std::fwrite(data, 1, size, f_) != size)
    throw FatalError(errno_text("write to raw dump " + path_, errno));
}

void RawDumpWriter::flush() {
  if (std::fflush(f_) != 0) throw FatalError(errno_text("write to raw dump " + path_, errno));
}

std::vector<std::string> read_raw_dump(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw FatalError(errno_text("cannot read raw dump " + path, errno));
  std::string all(static_cast<size_t>(f.tellg()), '\0');
  f.seekg(0);
  if (!f.read(all.data(), static_cast<std::streamsize>(all.size()))) throw FatalError("cannot read raw dump " + path);
  if (all.compare(0, 5, "PGRAW") == 0 && all.compare(0, kMagicLen, kMagic) != 0)
    throw FatalError(path + ": a raw dump of another portghost version (its records have another layout)");
  if (all.compare(0, kMagicLen, kMagic) != 0) throw FatalError(path + ": not a portghost raw dump");
  std::vector<std::string> records;
  size_t i = kMagicLen;
  while (i + 4 <= all.size()) {
    auto b = [&](size_t k) { return static_cast<uint32_t>(static_cast<uint8_t>(all[i + k])); };
    uint32_t n = b(0) | b(1) << 8 | b(2) << 16 | b(3) << 24;
    if (n > all.size() - i - 4) break;
    records.emplace_back(all, i + 4, n);
    i += 4 + n;
  }
  return records;
}

}  // namespace portghost
