#include "fleet/ship_state.hpp"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <simdjson.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/errors.hpp"
#include "common/unique_fd.hpp"

namespace portghost {

namespace {

std::string dir_of(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}

std::string name_of(const std::string& path) { return path.substr(path.rfind('/') + 1); }

// Root's or the shipper's own: nobody else can have put it there.
bool trusted_owner(const struct stat& st) { return st.st_uid == 0 || st.st_uid == geteuid(); }

// The state's directory, opened once: every name in it is then taken
// relative to this fd, so that the directory checked is the one used.
UniqueFd open_state_dir(const std::string& path) {
  std::string dir = dir_of(path);
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return fd;
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) return UniqueFd();
  // another user who can write there could plant a state (a forged
  // position: records never sent) or links at its names
  if (!trusted_owner(st) || (st.st_mode & (S_IWGRP | S_IWOTH)))
    throw FatalError("the ship state's directory " + dir + " is " +
                     (trusted_owner(st) ? "writable by others" : "owned by uid " + std::to_string(st.st_uid)) +
                     ": another user could forge the position there; give --state a path in a directory of root's "
                     "or uid " +
                     std::to_string(geteuid()) + "'s that nobody else can write");
  return fd;
}

// FNV-1a, 64 bits: a short, stable name for a path.
uint64_t fnv1a(const std::string& s) {
  uint64_t h = 14695981039346656037ULL;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  return h;
}

}  // namespace

std::optional<ShipPosition> load_ship_state(const std::string& path) {
  UniqueFd dir = open_state_dir(path);
  if (!dir && errno == ENOENT) return std::nullopt;
  if (!dir) throw FatalError(errno_text("cannot open the ship state's directory " + dir_of(path), errno));
  // never through a link, never a FIFO left to block on
  UniqueFd fd(::openat(dir.get(), name_of(path).c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd && errno == ENOENT) return std::nullopt;
  struct stat st {};
  if (!fd || fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (1 << 16))
    throw FatalError("the ship state " + path + " is not a small regular file: remove it to send the whole log again");
  if (!trusted_owner(st))
    throw FatalError("the ship state " + path + " is owned by uid " + std::to_string(st.st_uid) +
                     ", not root or this shipper: remove it to send the whole log again");
  std::string text(static_cast<size_t>(st.st_size), '\0');
  if (::read(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
    throw FatalError(errno_text("cannot read the ship state " + path, errno));
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
  // Written beside it and renamed over it, relative to the directory. The
  // temporary name is removed first (a link is removed, never followed) and
  // created exclusively, without following links; the rename replaces
  // whatever stands at the name.
  std::string name = name_of(path), tmp = name + ".tmp";
  UniqueFd dir = open_state_dir(path);
  if (!dir) throw FatalError(errno_text("cannot open the ship state's directory " + dir_of(path), errno));
  if (::unlinkat(dir.get(), tmp.c_str(), 0) != 0 && errno != ENOENT)
    throw FatalError(errno_text("cannot remove the stale " + path + ".tmp", errno));
  UniqueFd fd(::openat(dir.get(), tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) throw FatalError(errno_text("cannot write the ship state " + path + ".tmp", errno));
  if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()) || fsync(fd.get()) != 0)
    throw FatalError(errno_text("cannot write the ship state " + path + ".tmp", errno));
  fd.reset();
  if (::renameat(dir.get(), tmp.c_str(), dir.get(), name.c_str()) != 0)
    throw FatalError(errno_text("cannot replace " + path, errno));
  fsync(dir.get());
}

std::string default_ship_state(const std::string& log_file) {
  // the log's absolute path names the state (the file itself may not exist)
  std::string abs = log_file;
  char buf[PATH_MAX];
  if (realpath(dir_of(log_file).c_str(), buf)) abs = std::string(buf) + "/" + name_of(log_file);
  char hex[17];
  snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(fnv1a(abs)));
  // the log's name, cut so that the state's and its temporary name fit in
  // NAME_MAX (the hash tells logs apart)
  std::string name = name_of(abs).substr(0, 200) + "-" + hex + ".state";
  std::string dir;
  if (const char* sd = std::getenv("STATE_DIRECTORY"); sd && *sd) {
    dir = sd;
    dir = dir.substr(0, dir.find(':'));  // the first, when the unit names several
  } else if (geteuid() == 0) {
    dir = "/var/lib/portghost-ship";
  } else if (const char* xdg = std::getenv("XDG_STATE_HOME"); xdg && *xdg == '/') {
    dir = std::string(xdg) + "/portghost-ship";
  } else {
    const char* home = std::getenv("HOME");
    if (!home || *home != '/') {
      const passwd* pw = getpwuid(geteuid());
      home = pw ? pw->pw_dir : "/";
    }
    dir = std::string(home) + "/.local/state/portghost-ship";
  }
  return dir + "/" + name;
}

std::string legacy_ship_state(const std::string& log_file) { return dir_of(log_file) + "/.portghost-ship.state"; }

}  // namespace portghost
