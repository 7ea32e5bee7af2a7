// Where the text goes: a file (append, batched writes, size rotation) or
// stdout, or a string in tests.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

struct stat;

namespace portghost {

// Why the open file fd (whose stat is st) can hold no log: "" for a regular
// file, a pipe, a socket, a terminal or /dev/null; else a few words (a
// kernel interface such as /proc/version, another device, a directory).
std::string unwritable_kind(int fd, const struct stat& st);

class Output {
 public:
  virtual ~Output() = default;
  virtual void write(std::string_view text) = 0;
  virtual void flush() = 0;
  virtual bool is_terminal() const { return false; }
  // After an outside rename (SIGHUP): write to the path anew.
  virtual void reopen() {}
  // Lines given up after writes kept failing (disk full, I/O errors), in
  // total; and whether the last write attempt failed.
  virtual uint64_t unwritten() const { return 0; }
  virtual bool failing() const { return false; }
  virtual std::string failure() const { return {}; }  // why, while failing
};

class StringOutput : public Output {
 public:
  void write(std::string_view text) override { text_ += text; }
  void flush() override {}
  const std::string& text() const { return text_; }
  void clear() { text_.clear(); }

 private:
  std::string text_;
};

struct RotateConfig {
  uint64_t max_bytes = 0;  // 0: never rotate
  unsigned keep = 5;       // rotated files kept: FILE.1 .. FILE.keep
  // who besides root (and this process's user) may own the log's directory:
  // the --user the tracer becomes, which writes and rotates there (-1: none)
  uid_t dir_owner = static_cast<uid_t>(-1);
};

// Appends to a file (or stdout for "-"). Text is buffered and written with one
// write(2) per flush; a line is never split across files by rotation.
//
// A regular file that cannot be written (disk full, quota, I/O error) is not
// fatal: the failed write is cut back to the last whole line, the text stays
// buffered and the next flush tries again. Past kMaxPending bytes the oldest
// buffered lines are given up and counted (unwritten()); the caller reports
// that count once writing works again. A pipe or terminal that fails is
// fatal: there is nobody to retry for.
class FileOutput : public Output {
 public:
  // Opens (creating, appending) now: a bad path fails here, before any probe
  // loads. Throws FatalError.
  FileOutput(std::string path, RotateConfig rotate);
  ~FileOutput() override;
  FileOutput(const FileOutput&) = delete;
  FileOutput& operator=(const FileOutput&) = delete;

  void write(std::string_view text) override;
  void flush() override;
  bool is_terminal() const override;
  void reopen() override;
  uint64_t unwritten() const override { return unwritten_; }
  bool failing() const override { return failing_; }
  std::string failure() const override { return failing_ ? last_error_ : std::string(); }
  static constexpr size_t kMaxPending = 16 << 20;
  const std::string& path() const { return path_; }
  // Once *flag is set (stopping), a write that cannot go on within 2 s (a
  // pipe to a stuck reader) gives up with a FatalError instead of blocking
  // the exit forever.
  void set_interrupt(const std::atomic<bool>* flag) { interrupt_ = flag; }

 private:
  void open_file();
  // open_file(), or on failure the old file stays the one written (why:
  // what went wrong); the old one is closed once the new one is open
  bool open_anew(std::string& why);
  void end_partial_line();
  void rotate();
  void write_all(std::string_view text);
  void give_up_oldest();

  std::string path_;
  RotateConfig rotate_;
  int fd_ = -1;
  bool stdout_ = false;
  uint64_t size_ = 0;
  bool regular_ = false;
  std::string buf_;
  const std::atomic<bool>* interrupt_ = nullptr;
  bool failing_ = false;
  uint64_t unwritten_ = 0;
  std::string last_error_;
};

}  // namespace portghost
