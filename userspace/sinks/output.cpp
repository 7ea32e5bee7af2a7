#include "sinks/output.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <spdlog/spdlog.h>

#include "common/errors.hpp"
#include "common/file_place.hpp"

namespace portghost {

std::string errno_text(const std::string& what, int err) {
  if (err < 0) err = -err;
  return what + ": " + std::strerror(err);
}

namespace {
constexpr size_t kFlushAt = 1 << 20;
constexpr int kStopGraceMs = 2000;  // per write, once stopping

// A write to a regular file that failed: retried later, not fatal.
class WriteFailed : public FatalError {
 public:
  using FatalError::FatalError;
};
}  // namespace

FileOutput::FileOutput(std::string path, RotateConfig rotate) : path_(std::move(path)), rotate_(rotate) {
  if (path_ == "-") {
    stdout_ = true;
    fd_ = STDOUT_FILENO;
    struct stat st {};
    if (fstat(fd_, &st) == 0)
      if (std::string why = unwritable_kind(fd_, st); !why.empty())
        throw FatalError("refusing to write the output to stdout: " + why, kExitUsage);
    return;
  }
  open_file();
}

FileOutput::~FileOutput() {
  try {
    flush();
  } catch (...) {
  }
  if (fd_ >= 0 && !stdout_) close(fd_);
}

namespace {
// A kernel file system whose files look regular but are the kernel's
// interfaces (/proc, /sys and their kind): a log there can never be written
// (EIO, EINVAL) or, worse, a write changes a setting.
bool kernel_interface_fs(int fd) {
  struct statfs fs {};
  if (fstatfs(fd, &fs) != 0) return false;
  switch (static_cast<unsigned long>(fs.f_type)) {
    case PROC_SUPER_MAGIC:
    case SYSFS_MAGIC:
    case DEBUGFS_MAGIC:
    case TRACEFS_MAGIC:
    case SECURITYFS_MAGIC:
    case CGROUP_SUPER_MAGIC:
    case CGROUP2_SUPER_MAGIC:
    case BPF_FS_MAGIC:
    case PSTOREFS_MAGIC:
    case EFIVARFS_MAGIC:
    case SELINUX_MAGIC:
    case SMACK_MAGIC:
    case BINFMTFS_MAGIC: return true;
    default: return false;
  }
}
}  // namespace

// What makes fd no place for a log ("" when it is one): a log goes to a
// regular file, a pipe, a socket, a terminal or /dev/null, never to a
// device or a kernel interface.
std::string unwritable_kind(int fd, const struct stat& st) {
  if (S_ISREG(st.st_mode)) return kernel_interface_fs(fd) ? "a kernel interface file, not a log file" : "";
  if (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) return "";
  if (S_ISCHR(st.st_mode)) {
    if (isatty(fd) || st.st_rdev == makedev(1, 3)) return "";  // a terminal, /dev/null
    return "a device, not a file, pipe, socket or terminal";
  }
  if (S_ISDIR(st.st_mode)) return "a directory";
  return "not a regular file, pipe, socket or terminal";
}

void FileOutput::open_file() {
  check_file_place(path_, rotate_.dir_owner);
  // O_NOFOLLOW: a symbolic link in the log's place is never followed.
  // O_NONBLOCK: a FIFO without a reader would block the open forever (at a
  // rotation too: every record then waits on whoever planted it); it fails
  // at once instead. Writes block again (cleared below).
  int fd = open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0640);
  if (fd < 0 && errno == ELOOP) throw FatalError("refusing to write " + path_ + ": it is a symbolic link");
  if (fd < 0 && errno == ENXIO) {
    struct stat st {};
    bool sock = lstat(path_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
    throw FatalError(
        "cannot write output " + path_ + (sock ? ": a socket file, not a log" : ": a FIFO that nobody reads"),
        kExitUsage);
  }
  if (fd < 0) throw FatalError(errno_text("cannot open output " + path_, errno));
  if (int fl = fcntl(fd, F_GETFL); fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  struct stat st {};
  if (fstat(fd, &st) == 0) {
    std::string why = unwritable_kind(fd, st);
    // a pipe only when asked for one: `-o -` into the shell's pipe. A FIFO
    // at a path may be anyone's planted reader (at a rotation, too)
    if (S_ISFIFO(st.st_mode)) why = "a FIFO (to write into a pipe, use -o - and redirect)";
    if (!why.empty()) {
      close(fd);
      throw FatalError("refusing to write output " + path_ + ": " + why, kExitUsage);
    }
    size_ = static_cast<uint64_t>(st.st_size);
    regular_ = S_ISREG(st.st_mode);
    // a pipe or device has nothing to rotate: never rename or truncate it
    if (!regular_) rotate_.max_bytes = 0;
  }
  fd_ = fd;
  // A previous writer cut off mid-line (killed, disk full): end that line so
  // our first record starts on a line of its own.
  end_partial_line();
}

void FileOutput::end_partial_line() {
  if (!regular_ || size_ == 0) return;
  char last = '\n';
  int rfd = open(path_.c_str(), O_RDONLY | O_CLOEXEC);  // ours is write-only
  if (rfd >= 0) {
    if (pread(rfd, &last, 1, static_cast<off_t>(size_ - 1)) != 1) last = '\n';
    close(rfd);
  }
  if (last != '\n') {
    write_all("\n");
    size_++;
  }
}

bool FileOutput::open_anew(std::string& why) {
  int old = fd_;
  uint64_t old_size = size_;
  bool old_regular = regular_;
  try {
    open_file();
  } catch (const FatalError& e) {
    fd_ = old;
    size_ = old_size;
    regular_ = old_regular;
    why = e.what();
    return false;
  }
  if (old >= 0) close(old);
  return true;
}

void FileOutput::reopen() {
  if (stdout_) return;
  flush();
  // keep writing where we were rather than lose the log
  if (std::string why; !open_anew(why))
    spdlog::warn("cannot reopen the output, still writing to the old file: {}", why);
}

bool FileOutput::is_terminal() const { return fd_ >= 0 && isatty(fd_); }

void FileOutput::write(std::string_view text) {
  buf_ += text;
  if (buf_.size() < kFlushAt) return;
  if (!failing_)
    flush();
  else if (buf_.size() > kMaxPending)  // retried by the caller's next flush, not per record
    give_up_oldest();
}

void FileOutput::write_all(std::string_view text) {
  size_t done = 0;
  bool stopping_mode = false;
  while (done < text.size()) {
    // Stopping: a reader that does not take our output within a grace period
    // must not keep us from exiting (a pipe to a stuck reader blocks forever).
    if (!stopping_mode && interrupt_ && interrupt_->load()) {
      int fl = fcntl(fd_, F_GETFL);
      if (fl >= 0) fcntl(fd_, F_SETFL, fl | O_NONBLOCK);
      stopping_mode = true;
    }
    ssize_t n = ::write(fd_, text.data() + done, text.size() - done);
    if (n >= 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN && stopping_mode) {
      pollfd pfd{fd_, POLLOUT, 0};
      if (poll(&pfd, 1, kStopGraceMs) > 0) continue;
    }
    // Never leave half a line behind: cut the file back to the last whole
    // record written (a pipe cannot be cut; its reader sees the short line).
    if (regular_ && done > 0 && ftruncate(fd_, static_cast<off_t>(size_)) != 0) {
    }
    if (regular_ && err != EAGAIN) throw WriteFailed(errno_text("write to " + path_, err));
    buf_.clear();
    throw FatalError(err == EAGAIN ? "output " + path_ + " blocked: stopped before the final records"
                                   : errno_text("write to " + path_, err));
  }
}

void FileOutput::flush() {
  if (buf_.empty()) return;
  if (!stdout_ && rotate_.max_bytes && size_ > 0 && size_ + buf_.size() > rotate_.max_bytes) {
    try {
      rotate();
    } catch (const FatalError& e) {
      spdlog::warn("{} (writing on to the same file)", e.what());
    }
  }
  try {
    if (failing_) {
      // the failed write was cut back; if that failed too, end its line
      struct stat st {};
      if (fstat(fd_, &st) == 0) size_ = static_cast<uint64_t>(st.st_size);
      end_partial_line();
    }
    write_all(buf_);
  } catch (const WriteFailed& e) {
    if (!failing_) spdlog::warn("{}: keeping records in memory and trying again", e.what());
    failing_ = true;
    last_error_ = e.what();
    if (buf_.size() > kMaxPending) give_up_oldest();
    return;
  }
  if (failing_) spdlog::warn("output {}: writing again", path_);
  failing_ = false;
  size_ += buf_.size();
  buf_.clear();
}

// Keeps the newest half of the pending text (whole lines), counting the
// records given up: a JSON `life` line is a port's assign and release.
void FileOutput::give_up_oldest() {
  size_t cut = buf_.find('\n', buf_.size() - kMaxPending / 2);
  if (cut == std::string::npos) cut = buf_.size() - 1;
  constexpr std::string_view kLife = "{\"type\":\"life\"";
  for (size_t at = 0; at <= cut;) {
    size_t nl = buf_.find('\n', at);
    if (nl == std::string::npos || nl > cut) break;
    unwritten_ += std::string_view(buf_).substr(at, kLife.size()) == kLife ? 2 : 1;
    at = nl + 1;
  }
  buf_.erase(0, cut + 1);
  spdlog::warn("output {}: still failing, {} records given up so far", path_, unwritten_);
}

// FILE -> FILE.1 -> FILE.2 ... ; the oldest beyond `keep` is removed. Only
// whole lines were ever written, so every rotated file ends with a newline.
void FileOutput::rotate() {
  if (rotate_.keep == 0) {
    if (ftruncate(fd_, 0) != 0) throw FatalError(errno_text("truncate " + path_, errno));
    size_ = 0;
    return;
  }
  std::string oldest = path_ + "." + std::to_string(rotate_.keep);
  unlink(oldest.c_str());
  for (unsigned i = rotate_.keep; i > 1; i--) {
    std::string from = path_ + "." + std::to_string(i - 1), to = path_ + "." + std::to_string(i);
    rename(from.c_str(), to.c_str());
  }
  if (rename(path_.c_str(), (path_ + ".1").c_str()) != 0) throw FatalError(errno_text("rotate " + path_, errno));
  // the new file first: if it cannot be opened (a FIFO nobody reads, a
  // directory that changed hands), the records go on into the old one, now
  // FILE.1, and rotation stops (another would rename whatever stands at the
  // path over FILE.1, the file still being written)
  if (std::string why; !open_anew(why)) {
    rotate_.max_bytes = 0;
    spdlog::warn("cannot open a new {} after rotating it: {}; writing on to {}.1, without rotating", path_, why, path_);
  }
}

}  // namespace portghost
