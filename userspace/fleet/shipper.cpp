#include "fleet/shipper.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <fstream>
#include <mutex>
#include <thread>
#include <vector>

#include "common/clock.hpp"
#include "common/text.hpp"
#include "common/unique_fd.hpp"

namespace portghost {

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kMaxLine = 16u << 20;

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

// Whole .gz text (a cut-off one yields what it holds).
std::string read_gz(const std::string& path) {
  std::string data;
  gzFile gz = gzopen(path.c_str(), "rb");
  if (!gz) return data;
  char buf[1 << 16];
  int n;
  while ((n = gzread(gz, buf, sizeof buf)) > 0) data.append(buf, static_cast<size_t>(n));
  gzclose(gz);
  return data;
}

// One file being read: plain (followed by offset) or gz (read whole).
struct Source {
  std::string path;
  UniqueFd fd;  // plain files: held, so a rename does not lose it
  uint64_t ino = 0, offset = 0;
  bool gz = false, gz_done = false;
  bool live = false;  // FILE itself: may grow, may be rotated away
};

class Shipper {
 public:
  Shipper(const ShipOptions& o, const std::atomic<bool>& stop, std::ostream& err)
      : o_(o), stop_(stop), err_(err), client_(clickhouse_endpoint(o.to, o.credentials, o.table)) {
    struct stat st {};
    file_ = o.log;
    if (::stat(file_.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) file_ += "/events.jsonl";
    state_path_ = o.state.empty() ? dir_of(file_) + "/.portghost-ship.state" : o.state;
  }

  int run() {
    check_with_retries();
    if (stop_) return kExitOk;
    if (auto p = load_ship_state(state_path_)) pos_ = *p;
    position_sources();
    last_report_ = Clock::now();
    batch_started_ = Clock::now();
    sender_ = std::thread([this] { sender_loop(); });
    try {
      while (!stop_ && !failure_) {
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
    } catch (...) {
      close_sender();
      throw;
    }
    close_sender();
    err_ << "portghost ship: " << shipped_now_ << " records sent to " << client_.endpoint().describe() << " ("
         << pos_.shipped << " over the state's life)"
         << (bad_lines_ ? ", " + std::to_string(bad_lines_) + " unreadable lines skipped" : "") << "\n";
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

  // Where to read from: the file the state names, found by its inode among
  // FILE and its rotated copies, and what was rotated after it; without
  // state, every file from the oldest; with a state whose file is gone
  // (rotated out, or compressed), every file again, skipping what the state
  // says was sent.
  void position_sources() {
    auto live = stat_of(file_);
    std::vector<std::string> rotated = rotated_files(file_);
    if (pos_.ino) {
      if (live && static_cast<uint64_t>(live->st_ino) == pos_.ino) {
        open_plain(file_, true, pos_.offset);
        return;
      }
      for (size_t i = 0; i < rotated.size(); i++) {
        auto st = stat_of(rotated[i]);
        if (st && static_cast<uint64_t>(st->st_ino) == pos_.ino) {
          open_plain(rotated[i], false, pos_.offset);
          for (size_t j = i + 1; j < rotated.size(); j++) queue_.push_back(rotated[j]);
          queue_.push_back(file_);
          return;
        }
      }
      skipping_ = pos_.has_last;
      skip_through_ = pos_.last;
      if (skipping_)
        say("the file it was reading was rotated away; reading every file again and skipping what was "
            "already sent");
    }
    for (auto& r : rotated) queue_.push_back(r);
    queue_.push_back(file_);
    next_source();
  }

  void open_plain(const std::string& path, bool live, uint64_t offset) {
    cur_ = Source{};
    cur_.path = path;
    cur_.live = live;
    if (path.size() > 3 && path.compare(path.size() - 3, 3, ".gz") == 0) {
      cur_.gz = true;
      return;
    }
    cur_.fd.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!cur_.fd) {
      if (live) return;  // not written yet: looked at again
      throw FatalError(errno_text("cannot read " + path, errno));
    }
    struct stat st {};
    fstat(cur_.fd.get(), &st);
    cur_.ino = static_cast<uint64_t>(st.st_ino);
    cur_.offset = offset <= static_cast<uint64_t>(st.st_size) ? offset : 0;  // cut back: from the start
  }

  void next_source() {
    if (queue_.empty()) return;
    std::string p = queue_.front();
    queue_.pop_front();
    open_plain(p, queue_.empty() && p == file_, 0);
  }

  bool caught_up() const { return queue_.empty() && cur_.live && carry_.empty(); }

  // Reads what is there now into the batch; false when nothing more is.
  bool read_some() {
    if (cur_.gz) {
      if (!cur_.gz_done) {
        std::string text = read_gz(cur_.path);
        cur_.gz_done = true;
        take_lines(text, /*whole=*/true);
        return true;
      }
      if (auto st = stat_of(cur_.path)) done_ino_ = static_cast<uint64_t>(st->st_ino);
      next_source();
      return true;
    }
    if (!cur_.fd) {  // the live file was not there yet
      if (!cur_.live || !stat_of(file_)) return false;
      follow_rotation();
      return true;
    }
    char buf[1 << 20];
    ssize_t n = ::pread(cur_.fd.get(), buf, sizeof buf, static_cast<off_t>(cur_.offset + carry_.size()));
    if (n > 0) {
      carry_.append(buf, static_cast<size_t>(n));
      take_lines(carry_, false);
      if (carry_.size() > kMaxLine) {  // no line of ours is this long: not a log
        say(cur_.path + ": " + std::to_string(carry_.size()) + " bytes without a newline, skipped");
        bad_lines_++;
        cur_.offset += carry_.size();
        carry_.clear();
      }
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
      if (static_cast<uint64_t>(mine.st_size) < cur_.offset) {  // truncated in place (no rotated copies kept)
        cur_.offset = 0;
        carry_.clear();
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

  // The live file was rotated away (or was not there): what follows the
  // last file read is every rotated copy newer than it, then FILE. If that
  // file is no longer among them (removed, compressed), all of them: sent
  // twice rather than not at all (the store counts a record once).
  void follow_rotation() {
    std::vector<std::string> rotated = rotated_files(file_);
    size_t from = 0;
    for (size_t i = 0; done_ino_ && i < rotated.size(); i++) {
      auto rs = stat_of(rotated[i]);
      if (rs && static_cast<uint64_t>(rs->st_ino) == done_ino_) from = i + 1;
    }
    for (size_t j = from; j < rotated.size(); j++) queue_.push_back(rotated[j]);
    queue_.push_back(file_);
    next_source();
  }

  void drop_partial() {
    bad_lines_++;
    say(cur_.path + ": an unfinished last line, skipped");
    cur_.offset += carry_.size();
    carry_.clear();
  }

  // Complete lines of text into rows; for a plain file, text is carry_ and
  // what is consumed leaves it (the offset moves past it).
  void take_lines(std::string& text, bool whole) {
    size_t pos = 0;
    while (true) {
      size_t nl = text.find('\n', pos);
      if (nl == std::string::npos) break;
      std::string_view line(text.data() + pos, nl - pos);
      pos = nl + 1;
      if (!line.empty()) add_line(line);
      if (!whole) {
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
    while (queued_ && !failure_ && !stop_) cv_.wait_for(lk, std::chrono::milliseconds(100));
    if (failure_) std::rethrow_exception(failure_);
    if (stop_) return false;
    queued_ = std::move(b);
    cv_.notify_all();
    return true;
  }

  // Waits until every handed batch is taken (or the sender gave up).
  void drain() {
    std::unique_lock lk(m_);
    while ((queued_ || sending_) && !failure_ && !stop_) cv_.wait_for(lk, std::chrono::milliseconds(100));
  }

  void close_sender() {
    {
      std::lock_guard lk(m_);
      closing_ = true;
    }
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
      if (stop_) return false;
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
    for (const auto& q : queue_)
      if (auto st = stat_of(q)) n += static_cast<uint64_t>(st->st_size);
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
  std::deque<std::string> queue_;
  Source cur_;
  std::string carry_;  // read from cur_ past offset, not yet a whole line
  std::string rows_;
  uint64_t records_ = 0, shipped_now_ = 0, bad_lines_ = 0;
  RecordIdentity batch_last_;
  std::pair<uint64_t, uint64_t> batch_end_{0, 0};
  bool batch_end_valid_ = false;
  bool skipping_ = false;
  RecordIdentity skip_through_;  // while skipping: the last record the state says was sent
  uint64_t done_ino_ = 0;        // the last file read to its end
  LegacySession legacy_;
  Clock::time_point last_report_, batch_started_;
  // the sender and what it shares with the reader
  std::thread sender_;
  std::mutex m_, say_m_;
  std::condition_variable cv_;
  std::optional<Batch> queued_;
  bool sending_ = false, closing_ = false;
  std::exception_ptr failure_;
  std::atomic<bool> failing_{false};
};

}  // namespace

std::optional<ShipPosition> load_ship_state(const std::string& path) {
  std::ifstream f(path);
  if (!f) return std::nullopt;
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ShipPosition p;
  if (parser.parse(text).get(doc) != simdjson::SUCCESS || doc["ino"].get_uint64().get(p.ino) ||
      doc["offset"].get_uint64().get(p.offset) || doc["shipped"].get_uint64().get(p.shipped))
    throw FatalError("the ship state " + path + " is not readable: remove it to send the whole log again");
  p.has_last = doc["run"].get_uint64().get(p.last.run) == simdjson::SUCCESS &&
               doc["seq"].get_uint64().get(p.last.seq) == simdjson::SUCCESS;
  return p;
}

void save_ship_state(const std::string& path, const ShipPosition& p) {
  std::string text = "{\"ino\":" + std::to_string(p.ino) + ",\"offset\":" + std::to_string(p.offset) +
                     ",\"shipped\":" + std::to_string(p.shipped);
  if (p.has_last) text += ",\"run\":" + std::to_string(p.last.run) + ",\"seq\":" + std::to_string(p.last.seq);
  text += "}\n";
  std::string tmp = path + ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) throw FatalError(errno_text("cannot write the ship state " + tmp, errno));
  if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()) || fsync(fd.get()) != 0)
    throw FatalError(errno_text("cannot write the ship state " + tmp, errno));
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) throw FatalError(errno_text("cannot replace " + path, errno));
  UniqueFd dir(::open(dir_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir) fsync(dir.get());
}

int run_ship(const ShipOptions& o, const std::atomic<bool>& stop, std::ostream& err) {
  Shipper s(o, stop, err);
  return s.run();
}

}  // namespace portghost
