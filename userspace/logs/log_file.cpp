#include "logs/log_file.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <ostream>
#include <utility>
#include <vector>

#include "common/errors.hpp"
#include "logs/log_reader.hpp"

namespace portghost {

namespace {

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

const char* kind_of(mode_t m) {
  if (S_ISLNK(m)) return "a symbolic link";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISDIR(m)) return "a directory";
  if (S_ISCHR(m) || S_ISBLK(m)) return "a device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a file";
}

FatalError not_regular(const std::string& path, mode_t m) {
  return FatalError(path + " is not a regular file (" + kind_of(m) + "): not read as a log");
}

}  // namespace

LogFile::LogFile(const std::string& path, uint64_t gz_floor, uint64_t gz_ratio) : path_(path), gz_ratio_(gz_ratio) {
  // O_NONBLOCK: opening a FIFO without a writer would wait for one
  fd_ = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd_ < 0) {
    int err = errno;
    struct stat st {};
    if (err == ELOOP && lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode))
      throw FatalError(path +
                       " is a symbolic link: not followed, as a log's directory may be writable by others "
                       "(name the file it points to)");
    if (lstat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) throw not_regular(path, st.st_mode);
    throw FatalError(errno_text("cannot read log " + path, err));
  }
  struct stat st {};
  if (fstat(fd_, &st) != 0) {
    int err = errno;
    ::close(fd_);
    throw FatalError(errno_text("cannot read log " + path, err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd_);
    throw not_regular(path, st.st_mode);
  }
  int flags = fcntl(fd_, F_GETFL);
  if (flags >= 0) fcntl(fd_, F_SETFL, flags & ~O_NONBLOCK);
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (!ends_with(path, ".gz")) {
    left_ = size;
    return;
  }
  gz_size_ = size;
  max_out_ = gz_ratio && size > UINT64_MAX / gz_ratio ? UINT64_MAX : std::max(gz_floor, size * gz_ratio);
  gz_ = gzdopen(fd_, "rb");
  if (!gz_) {
    ::close(fd_);
    throw FatalError("cannot read log " + path + ": out of memory for gzip");
  }
  fd_ = -1;  // the gzFile's now
  gzbuffer(gz_, 1u << 16);
}

LogFile::~LogFile() {
  if (gz_) gzclose(gz_);
  if (fd_ >= 0) ::close(fd_);
}

size_t LogFile::read(char* buf, size_t n) {
  if (gz_) {
    int got = gzread(gz_, buf, static_cast<unsigned>(std::min<size_t>(n, 1u << 30)));
    if (got <= 0) return 0;  // the end, or damage: the lines before it stand
    out_ += static_cast<uint64_t>(got);
    if (out_ > max_out_)
      throw FatalError(path_ + ": decompresses to over " + std::to_string(out_ >> 20) + " MiB, more than " +
                       std::to_string(gz_ratio_) + " times its " + std::to_string(gz_size_) +
                       " bytes: refused as a decompression bomb (a portghost log compresses 10 to 20 times)");
    return static_cast<size_t>(got);
  }
  while (left_) {
    ssize_t got = ::read(fd_, buf, static_cast<size_t>(std::min<uint64_t>(n, left_)));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw FatalError(errno_text("cannot read log " + path_, errno));
    if (got == 0) break;  // cut back meanwhile
    left_ -= static_cast<uint64_t>(got);
    return static_cast<size_t>(got);
  }
  return 0;
}

std::vector<std::string> expand_log_paths(const std::vector<std::string>& args, std::ostream* warn) {
  std::vector<std::string> out;
  for (const auto& a : args) {
    struct stat st {};
    if (stat(a.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      out.push_back(a);  // read_log says what is wrong with it
      continue;
    }
    std::vector<std::pair<int, std::string>> found;  // rotation index, path
    if (DIR* d = opendir(a.c_str())) {
      while (dirent* de = readdir(d)) {
        std::string name = de->d_name;
        if (name.rfind("events.jsonl", 0) != 0) continue;
        std::string rest = name.substr(12);
        if (ends_with(rest, ".gz")) rest.resize(rest.size() - 3);
        int idx = 0;
        if (!rest.empty()) {
          if (rest[0] != '.') continue;
          char* end = nullptr;
          idx = static_cast<int>(std::strtol(rest.c_str() + 1, &end, 10));
          if (!end || *end) continue;
        }
        std::string path = std::string(a).append("/").append(name);
        struct stat e {};
        if (fstatat(dirfd(d), de->d_name, &e, AT_SYMLINK_NOFOLLOW) != 0) continue;  // gone meanwhile
        if (!S_ISREG(e.st_mode)) {
          if (warn)
            *warn << "portghost: " << path << " is not a regular file (" << kind_of(e.st_mode) << "): skipped\n";
          continue;
        }
        found.emplace_back(idx, std::move(path));
      }
      closedir(d);
    }
    // FILE.N is older than FILE.N-1, FILE is the newest
    std::sort(found.begin(), found.end(), [](const auto& x, const auto& y) { return x.first > y.first; });
    for (auto& f : found) out.push_back(f.second);
  }
  return out;
}

}  // namespace portghost
