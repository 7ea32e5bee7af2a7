#include "fleet/shipper.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "common/clock.hpp"
#include "common/text.hpp"
#include "common/unique_fd.hpp"
#include "logs/log_reader.hpp"

namespace portghost {

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kMaxLine = kMaxLogLine;  // what who and stats read, too

uint64_t ms_since(Clock::time_point t) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count());
}

std::string dir_of(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}

std::optional<struct stat> stat_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return st;
}

// FILE.N ... FILE.1 (plain or .gz), oldest first; FILE itself is not listed.
std::vector<std::string> rotated_files(const std::string& file) {
  std::vector<std::string> out;
  for (int i = 64; i >= 1; i--) {
    std::string p = file + "." + std::to_string(i);
    if (stat_of(p))
      out.push_back(p);
    else if (stat_of(p + ".gz"))
      out.push_back(p + ".gz");
  }
  return out;
}

bool after(const RecordIdentity& a, const RecordIdentity& b) {
  return a.run > b.run || (a.run == b.run && a.seq > b.seq);
}

bool is_gz(const std::string& path) { return path.size() > 3 && path.compare(path.size() - 3, 3, ".gz") == 0; }

// A file of the log, opened: once open, a rename (the tracer's rotation)
// cannot swap it for another. Plain files are followed by offset; .gz ones
// are decompressed as a stream.
struct Source {
  std::string path;
  UniqueFd fd;
  uint64_t ino = 0, offset = 0;
  gzFile gz = nullptr;
  bool live = false;  // FILE itself: may grow, may be rotated away
  Source() = default;
  Source(Source&& o) noexcept
      : path(std::move(o.path)),
        fd(std::move(o.fd)),
        ino(o.ino),
        offset(o.offset),
        gz(std::exchange(o.gz, nullptr)),
        live(o.live) {}
  Source& operator=(Source&& o) noexcept {
    if (this != &o) {
      if (gz) gzclose(gz);
      path = std::move(o.path);
      fd = std::move(o.fd);
      ino = o.ino;
      offset = o.offset;
      gz = std::exchange(o.gz, nullptr);
      live = o.live;
    }
    return *this;
  }
  Source(const Source&) = delete;
  Source& operator=(const Source&) = delete;
  ~Source() {
    if (gz) gzclose(gz);
  }
};

// path opened now (nullopt if it is not there, or is not a regular file:
// then `refused` says why). The log's directory may be another user's (the
// tracer's --user): a link planted at a rotated name is not followed, and a
// FIFO is not waited on.
std::optional<Source> open_source(const std::string& path, std::string& refused) {
  Source src;
  src.path = path;
  src.fd.reset(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!src.fd) {
    if (errno == ELOOP) refused = path + " is a symbolic link: not read";
    return std::nullopt;
  }
  struct stat st {};
  if (fstat(src.fd.get(), &st) != 0) return std::nullopt;
  if (!S_ISREG(st.st_mode)) {
    refused = path + " is not a regular file: not read";
    return std::nullopt;
  }
  ::fcntl(src.fd.get(), F_SETFL, 0);  // blocking reads again: it is a file
  src.ino = static_cast<uint64_t>(st.st_ino);
  if (is_gz(path)) {
    int dup_fd = ::dup(src.fd.get());
    src.gz = dup_fd >= 0 ? gzdopen(dup_fd, "rb") : nullptr;
    if (!src.gz) {
      if (dup_fd >= 0) ::close(dup_fd);
      return std::nullopt;
    }
  }
  return src;
}

// The identity of the line that ends just before offset (the last one the
// state says was sent), read back from the file; nullopt if there is none.
std::optional<RecordIdentity> identity_before(int fd, uint64_t offset) {
  if (offset == 0) return std::nullopt;
  size_t want = static_cast<size_t>(std::min<uint64_t>(offset, 1u << 20));
  std::string buf(want, '\0');
  ssize_t n = ::pread(fd, buf.data(), want, static_cast<off_t>(offset - want));
  if (n != static_cast<ssize_t>(want) || buf.back() != '\n') return std::nullopt;
  size_t start = buf.rfind('\n', want - 2);
  start = start == std::string::npos ? 0 : start + 1;
  if (start == 0 && want < offset) return std::nullopt;  // longer than any line of ours
  std::string rows;
  LegacySession none;
  return append_record_row(rows, std::string_view(buf.data() + start, want - 1 - start), none);
}

class Shipper {
 public:
  Shipper(const ShipOptions& o, const std::atomic<bool>& stop, std::ostream& err)
      : o_(o), stop_(stop), err_(err), client_(clickhouse_endpoint(o.to, o.credentials, o.table, o.ca_file)) {
    warn_if_cleartext(client_.endpoint(), err_);
    struct stat st {};
    file_ = o.log;
    if (::stat(file_.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) file_ += "/events.jsonl";
    state_path_ = o.state.empty() ? default_ship_state(file_) : o.state;
  }

  int run() {
    check_with_retries();
    if (stop_) return kExitOk;
    load_position();
    position_sources();
    last_report_ = Clock::now();
    batch_started_ = Clock::now();
    sender_ = std::thread([this] { sender_loop(); });
    try {
      while (!stop_ && !failed_) {
        bool more = read_some();
        bool due = !rows_.empty() && (records_ >= o_.batch_records || rows_.size() >= o_.batch_bytes ||
                                      ms_since(batch_started_) >= o_.flush_ms || (!more && o_.once));
        if (due && !send()) break;
        if (!more) {
          if (o_.once && rows_.empty() && caught_up()) break;
          report_lag();
          sleep_ms(o_.poll_ms);
        }
      }
      drain();
      if (o_.once && !carry_.empty() && !stop_ && !failed_) drop_partial();  // the writer stopped mid-line
    } catch (...) {
      close_sender();
      throw;
    }
    close_sender();
    err_ << "portghost ship: " << shipped_now_ << " records sent to " << client_.endpoint().describe() << " ("
         << pos_.shipped << " over the state's life)"
         << (bad_lines_ ? ", " + std::to_string(bad_lines_) + " unreadable lines skipped" : "")
         << (bad_files_ ? ", " + std::to_string(bad_files_) + " files not read (not regular files)" : "") << "\n";
    return kExitOk;
  }

 private:
  void sleep_ms(uint64_t ms) {
    for (uint64_t t = 0; t < ms && !stop_; t += 50) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }

  // The table must be there, with our columns; a server that is not up yet
  // is waited for.
  void check_with_retries() {
    uint64_t backoff = 200;
    for (int attempt = 1; !stop_; attempt++) {
      try {
        check_records_table(client_);
        return;
      } catch (const ClickHouseError& e) {
        if (!e.transient()) throw;
        if (attempt == 1 || attempt % 10 == 0)
          err_ << "portghost ship: " << e.what() << " (attempt " << attempt << ", retrying)\n";
      }
      sleep_ms(backoff);
      backoff = std::min<uint64_t>(backoff * 2, 30'000);
    }
  }

  // The position: from the state, or (the default state not made yet) from
  // where releases before kept it by default, beside the log, if that one
  // passes the same checks; later saves go to the state.
  void load_position() {
    if (o_.state.empty()) make_state_dir(dir_of(state_path_));
    if (auto p = load_ship_state(state_path_)) {
      pos_ = *p;
      return;
    }
    if (!o_.state.empty() || !stat_of(legacy_ship_state(file_))) return;
    try {
      if (auto p = load_ship_state(legacy_ship_state(file_))) {
        pos_ = *p;
        save_ship_state(state_path_, pos_);
        say("the position is taken from " + legacy_ship_state(file_) + "; it is kept in " + state_path_ + " from now");
      }
    } catch (const FatalError& e) {
      say(std::string("the position beside the log is not used (") + e.what() + "): the whole log is sent again");
    }
  }

  // The default state's directory, made (mode 0700) if missing.
  static void make_state_dir(const std::string& dir) {
    for (size_t i = 1; i <= dir.size(); i++) {
      if (i < dir.size() && dir[i] != '/') continue;
      std::string part = dir.substr(0, i);
      if (::mkdir(part.c_str(), 0700) != 0 && errno != EEXIST)
        throw FatalError(errno_text("cannot make the ship state's directory " + part + " (give --state)", errno));
    }
  }

  // Where to read from: the file the state names, found by its inode among
  // FILE and its rotated copies, if the line before the state's offset is
  // the last one it says was sent; then what was rotated after it. Without
  // state, every file from the oldest. With a state whose file is gone
  // (rotated out, compressed) or no longer holds that line (cut back and
  // written again), every file again, skipping what the state says was sent.
  void position_sources() {
    if (pos_.ino) {
      std::vector<Source> all = open_log_files();
      for (size_t i = 0; i < all.size(); i++) {
        if (all[i].ino != pos_.ino || all[i].gz) continue;
        auto last = identity_before(all[i].fd.get(), pos_.offset);
        if (pos_.has_last && (!last || last->run != pos_.last.run || last->seq != pos_.last.seq)) break;
        all[i].offset = pos_.offset;
        for (size_t j = i; j < all.size(); j++) queue_.push_back(std::move(all[j]));
        next_source();
        return;
      }
      skipping_ = pos_.has_last;
      skip_through_ = pos_.last;
      if (skipping_)
        say("the position in the state is no longer in the log (rotated away, compressed or cut back): "
            "reading every file again and skipping what was already sent");
    }
    follow_rotation();
  }

  // FILE's rotated copies, oldest first, then FILE, all opened, each name
  // checked against what was opened (a rotation in between: again).
  std::vector<Source> open_log_files() {
    for (int attempt = 0;; attempt++) {
      std::vector<Source> v;
      std::vector<std::string> names = rotated_files(file_);
      names.push_back(file_);
      bool stable = true;
      for (const auto& n : names) {
        std::string refused;
        auto src = open_source(n, refused);
        if (!refused.empty() && refused_.insert(n).second) {
          say(refused);
          bad_files_++;
        }
        if (!src) continue;  // gone since the listing (rotated out), or FILE not there yet
        auto st = stat_of(n);
        if (!st || static_cast<uint64_t>(st->st_ino) != src->ino) stable = false;
        src->live = n == file_;
        v.push_back(std::move(*src));
      }
      if (stable || attempt == 5) return v;
    }
  }

  void next_source() {
    discarding_ = false;
    if (queue_.empty()) {
      cur_ = Source{};
      cur_.path = file_;
      cur_.live = true;  // FILE, not there yet: looked for again
      return;
    }
    cur_ = std::move(queue_.front());
    queue_.pop_front();
    discarding_ = false;
  }

  // --once: all read; FILE itself missing counts once it has been for a
  // while (between a rotation's rename and the new file there is a moment)
  bool caught_up() const {
    if (!queue_.empty() || !cur_.live || (!carry_.empty() && !o_.once)) return false;
    return cur_.fd || (live_missing_since_ && ms_since(*live_missing_since_) >= 2000);
  }

  // Reads what is there now into the batch; false when nothing more is.
  bool read_some() {
    char buf[1 << 20];
    if (cur_.gz) {
      int n = gzread(cur_.gz, buf, sizeof buf);
      if (n > 0) {
        absorb(buf, static_cast<size_t>(n));
        return true;
      }
      if (!carry_.empty()) drop_partial();
      done_ino_ = cur_.ino;
      if (queue_.empty())
        follow_rotation();
      else
        next_source();
      return true;
    }
    if (!cur_.fd) {  // the live file was not there yet (or is no file)
      struct stat st {};
      if (::lstat(file_.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
        if (!live_missing_since_) live_missing_since_ = Clock::now();
        return false;
      }
      live_missing_since_.reset();
      follow_rotation();
      return true;
    }
    ssize_t n = ::pread(cur_.fd.get(), buf, sizeof buf, static_cast<off_t>(cur_.offset + carry_.size()));
    if (n > 0) {
      absorb(buf, static_cast<size_t>(n));
      return true;
    }
    // at the end of this file: is there a newer one?
    if (!cur_.live) {
      if (!carry_.empty()) drop_partial();
      done_ino_ = cur_.ino;
      if (queue_.empty())
        follow_rotation();  // it was the live file
      else
        next_source();
      return true;
    }
    auto st = stat_of(file_);
    if (st && static_cast<uint64_t>(st->st_ino) == cur_.ino) {
      struct stat mine {};
      fstat(cur_.fd.get(), &mine);
      if (static_cast<uint64_t>(mine.st_size) < cur_.offset) {  // cut back in place (--rotate-keep 0)
        say(cur_.path + " was cut back: reading it from its start");
        cur_.offset = 0;
        carry_.clear();
        discarding_ = false;
        return true;
      }
      return false;
    }
    if (!st) return false;  // between the rename and the new file
    // rotated: nothing more is written to it once renamed, but what was
    // written before the rename may not have been read yet: read it to
    // its end once more, then move on
    cur_.live = false;
    return true;
  }

  // What follows the last file read (done_ino_): every rotated copy newer
  // than it, then FILE, opened now. If that file is no longer among them
  // (removed, compressed), all of them: sent twice rather than not at all
  // (the store counts a record once).
  void follow_rotation() {
    std::vector<Source> all = open_log_files();
    size_t from = 0;
    for (size_t i = 0; done_ino_ && i < all.size(); i++)
      if (all[i].ino == done_ino_ && !all[i].live) from = i + 1;
    for (size_t j = from; j < all.size(); j++) queue_.push_back(std::move(all[j]));
    next_source();
  }

  // New bytes of the file being read: whole lines become rows; an
  // unfinished line waits in carry_ (only the new bytes are searched for its
  // end). No line of ours is kMaxLine long: past that, the line is dropped
  // to its end, read but not kept, and counted.
  void absorb(const char* p, size_t n) {
    if (discarding_) {
      const char* nl = static_cast<const char*>(std::memchr(p, '\n', n));
      size_t drop = nl ? static_cast<size_t>(nl - p) + 1 : n;
      cur_.offset += drop;
      if (!nl) return;
      discarding_ = false;
      p += drop;
      n -= drop;
    }
    size_t from = carry_.size();
    carry_.append(p, n);
    take_lines(carry_, false, from);
    if (carry_.size() > kMaxLine) {
      say(cur_.path + ": a line longer than " + std::to_string(kMaxLine >> 20) + " MiB, skipped");
      bad_lines_++;
      cur_.offset += carry_.size();
      carry_.clear();
      discarding_ = true;
    }
  }

  void drop_partial() {
    bad_lines_++;
    say(cur_.path + ": an unfinished last line, skipped");
    cur_.offset += carry_.size();
    carry_.clear();
  }

  // Complete lines of text into rows; for a plain file, text is carry_ and
  // what is consumed leaves it (the offset moves past it). text before
  // `from` is known to hold no newline.
  void take_lines(std::string& text, bool whole, size_t from = 0) {
    size_t pos = 0;
    while (true) {
      size_t nl = text.find('\n', std::max(pos, from));
      if (nl == std::string::npos) break;
      std::string_view line(text.data() + pos, nl - pos);
      pos = nl + 1;
      if (!line.empty()) add_line(line);
      if (!whole && !cur_.gz) {
        batch_end_ = {cur_.ino, cur_.offset + pos};
        batch_end_valid_ = true;
      }
    }
    if (!whole) {
      cur_.offset += pos;
      text.erase(0, pos);
    } else if (pos < text.size()) {
      bad_lines_++;
    }
  }

  void add_line(std::string_view line) {
    size_t mark = rows_.size();
    auto id = append_record_row(rows_, line, legacy_);
    if (!id) {
      bad_lines_++;
      return;
    }
    if (skipping_) {
      if (!after(*id, skip_through_)) {
        rows_.resize(mark);
        return;
      }
      skipping_ = false;
    }
    if (records_ == 0) batch_started_ = Clock::now();
    records_++;
    batch_last_ = *id;
  }

  // ---- the sender: compresses and sends one batch while the next is read ----
  struct Batch {
    std::string rows;
    uint64_t records = 0;
    RecordIdentity last;
    std::pair<uint64_t, uint64_t> end{0, 0};
    bool end_valid = false;
  };

  // Hands the batch to the sender (waiting while one is already queued);
  // false if told to stop first.
  bool send() {
    Batch b{std::move(rows_), records_, batch_last_, batch_end_, batch_end_valid_};
    rows_.clear();
    records_ = 0;
    batch_started_ = Clock::now();
    std::unique_lock lk(m_);
    while (queued_ && !failed_ && !stop_) cv_.wait_for(lk, std::chrono::milliseconds(100));
    if (failure_) std::rethrow_exception(failure_);
    if (stop_) return false;
    queued_ = std::move(b);
    cv_.notify_all();
    return true;
  }

  // Waits until every handed batch is taken (or the sender gave up).
  void drain() {
    std::unique_lock lk(m_);
    while ((queued_ || sending_) && !failed_ && !stop_) cv_.wait_for(lk, std::chrono::milliseconds(100));
  }

  void close_sender() {
    {
      std::lock_guard lk(m_);
      closing_ = true;
    }
    closing_flag_ = true;
    cv_.notify_all();
    if (sender_.joinable()) sender_.join();
    if (failure_) std::rethrow_exception(failure_);
  }

  void sender_loop() {
    while (true) {
      Batch b;
      {
        std::unique_lock lk(m_);
        cv_.wait(lk, [&] { return queued_ || closing_; });
        if (!queued_) return;
        b = std::move(*queued_);
        queued_.reset();
        sending_ = true;
      }
      cv_.notify_all();
      bool sent = false;
      try {
        sent = deliver(gzip_compress(b.rows));
        if (sent) {
          pos_.shipped += b.records;
          shipped_now_ += b.records;
          pos_.last = b.last;
          pos_.has_last = true;
          if (b.end_valid) {
            pos_.ino = b.end.first;
            pos_.offset = b.end.second;
          }
          save_ship_state(state_path_, pos_);
        }
      } catch (...) {
        std::lock_guard lk(m_);
        failure_ = std::current_exception();
        failed_ = true;
      }
      {
        std::lock_guard lk(m_);
        sending_ = false;
      }
      cv_.notify_all();
      if (!sent) return;  // stopping, or failed: nothing after it may go
    }
  }

  // Sends until the server takes it; false if told to stop first.
  bool deliver(const std::string& gz) {
    uint64_t backoff = 200;
    for (int attempt = 1;; attempt++) {
      try {
        client_.insert_gzip(gz);
        if (attempt > 1) say("ClickHouse took the batch after " + std::to_string(attempt) + " attempts");
        return true;
      } catch (const ClickHouseError& e) {
        if (!e.transient()) throw;
        if (attempt == 1 || attempt % 10 == 0)
          say(std::string(e.what()) + " (attempt " + std::to_string(attempt) +
              ", retrying; the log keeps everything meanwhile)");
      }
      failing_ = true;
      if (stop_ || closing_flag_) return false;  // stopping, or the reader gave up
      sleep_ms(backoff);
      backoff = std::min<uint64_t>(backoff * 2, 30'000);
      failing_ = false;
    }
  }

  void say(const std::string& what) {
    std::lock_guard lk(say_m_);
    err_ << "portghost ship: " << what << "\n";
  }

  // Bytes of log not yet sent: the rest of the current file and the queued ones.
  uint64_t lag_bytes() const {
    uint64_t n = 0;
    if (cur_.fd) {
      struct stat st {};
      if (fstat(cur_.fd.get(), &st) == 0 && static_cast<uint64_t>(st.st_size) > cur_.offset)
        n += static_cast<uint64_t>(st.st_size) - cur_.offset;
    }
    for (const auto& q : queue_) {
      struct stat st {};
      if (fstat(q.fd.get(), &st) == 0) n += static_cast<uint64_t>(st.st_size) - q.offset;
    }
    return n + rows_.size();
  }

  void report_lag() {
    if (ms_since(last_report_) < o_.lag_report_s * 1000) return;
    last_report_ = Clock::now();
    uint64_t lag = lag_bytes();
    bool failing = failing_;
    if (!lag && !failing) return;
    say(std::to_string(lag) + " bytes of log not yet in ClickHouse" + (failing ? " (server failing)" : ""));
  }

  const ShipOptions& o_;
  const std::atomic<bool>& stop_;
  std::ostream& err_;
  ClickHouseClient client_;
  std::string file_, state_path_;
  ShipPosition pos_;
  std::deque<Source> queue_;  // files to read after cur_, oldest first, opened
  Source cur_;
  std::string carry_;  // read from cur_ past offset, not yet a whole line
  std::string rows_;
  uint64_t records_ = 0, shipped_now_ = 0, bad_lines_ = 0;
  RecordIdentity batch_last_;
  std::pair<uint64_t, uint64_t> batch_end_{0, 0};
  bool batch_end_valid_ = false;
  bool skipping_ = false;
  bool discarding_ = false;        // the rest of a line past kMaxLine
  std::set<std::string> refused_;  // files not read (named once)
  uint64_t bad_files_ = 0;
  RecordIdentity skip_through_;                          // while skipping: the last record the state says was sent
  uint64_t done_ino_ = 0;                                // the last file read to its end
  std::optional<Clock::time_point> live_missing_since_;  // FILE not there since
  LegacySession legacy_;
  Clock::time_point last_report_, batch_started_;
  // the sender and what it shares with the reader
  std::thread sender_;
  std::mutex m_, say_m_;
  std::condition_variable cv_;
  std::optional<Batch> queued_;
  bool sending_ = false, closing_ = false;
  std::exception_ptr failure_;  // under m_
  std::atomic<bool> failed_{false}, closing_flag_{false};
  std::atomic<bool> failing_{false};
};

}  // namespace

int run_ship(const ShipOptions& o, const std::atomic<bool>& stop, std::ostream& err) {
  Shipper s(o, stop, err);
  return s.run();
}

}  // namespace portghost
