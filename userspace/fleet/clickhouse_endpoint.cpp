#include "fleet/clickhouse_endpoint.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <sstream>
#include <utility>

#include "common/errors.hpp"
#include "common/text.hpp"
#include "common/unique_fd.hpp"

namespace portghost {

namespace {

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r");
  size_t e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

bool name_ok(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  return true;
}

constexpr off_t kMaxCredentialsBytes = 64 * 1024;

// user=NAME / password=SECRET, # comments. A secret that every user of the
// host can read (or that others can rewrite) is refused, as ssh refuses a
// key: its group may read it (a service's group), nobody else.
void read_credentials(const std::string& path, ClickHouseEndpoint& ep) {
  // the mode of the file read (one descriptor), not of whatever stands at
  // the path a moment later
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (!fd) throw FatalError(errno_text("cannot read the credentials file " + path, errno), kExitUsage);
  struct stat st {};
  if (fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > kMaxCredentialsBytes)
    throw FatalError("refusing the credentials file " + path + ": not a small regular file", kExitUsage);
  if (st.st_mode & (S_IROTH | S_IWOTH | S_IWGRP))
    throw FatalError("refusing the credentials file " + path + ": " +
                         ((st.st_mode & S_IROTH) ? "every user can read it" : "others can write it") +
                         " (chmod 0600 or 0640)",
                     kExitUsage);
  std::string text(static_cast<size_t>(st.st_size), '\0');
  if (::read(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
    throw FatalError(errno_text("cannot read the credentials file " + path, errno), kExitUsage);
  std::istringstream f(text);
  std::string line;
  int n = 0;
  while (std::getline(f, line)) {
    n++;
    std::string t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    size_t eq = t.find('=');
    std::string key = eq == std::string::npos ? "" : trim(t.substr(0, eq));
    std::string val = eq == std::string::npos ? "" : trim(t.substr(eq + 1));
    if (key == "user")
      ep.user = val;
    else if (key == "password")
      ep.password = val;
    else
      throw FatalError(path + ":" + std::to_string(n) + ": expected user=NAME or password=SECRET", kExitUsage);
  }
}

constexpr off_t kMaxCaBytes = 4 << 20;  // Debian's whole bundle is a twentieth of it

// The CAs to verify the server by, read once: a file that cannot serve is a
// mistake on the command line, told before any connection is tried.
void read_ca_file(const std::string& path, ClickHouseEndpoint& ep) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (!fd) throw FatalError(errno_text("--ca-file: cannot read " + path, errno), kExitUsage);
  struct stat st {};
  if (fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > kMaxCaBytes)
    throw FatalError("--ca-file: " + path + " is not a regular file of at most 4 MiB", kExitUsage);
  std::string text(static_cast<size_t>(st.st_size), '\0');
  if (::read(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
    throw FatalError(errno_text("--ca-file: cannot read " + path, errno), kExitUsage);
  if (text.find("-----BEGIN CERTIFICATE-----") == std::string::npos)
    throw FatalError("--ca-file: " + path + " holds no PEM certificate (-----BEGIN CERTIFICATE-----)", kExitUsage);
  ep.ca_pem = std::move(text);
  ep.ca_file = path;
}

// This host, by name or address: what goes there never crosses a network.
bool loopback_host(const std::string& host) {
  if (host == "localhost") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  std::string bare = host.size() > 2 && host.front() == '[' ? host.substr(1, host.size() - 2) : host;
  return inet_pton(AF_INET6, bare.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

}  // namespace

std::string ClickHouseEndpoint::base_url() const {
  return (tls ? "https://" : "http://") + host + ":" + std::to_string(port) + "/";
}

std::string ClickHouseEndpoint::describe() const {
  return host + ":" + std::to_string(port) + "/" + database + "." + table;
}

std::string ClickHouseEndpoint::qualified_table() const { return database + "." + table; }

ClickHouseEndpoint parse_clickhouse_url(const std::string& url, const std::optional<std::string>& credentials_file,
                                        const std::optional<std::string>& ca_file) {
  // what an error quotes: never a password given in the URL
  std::string shown = url;
  size_t auth = shown.find("://");
  size_t at = shown.rfind('@');  // a password may hold '/' and ':' too
  if (auth != std::string::npos && at != std::string::npos && at > auth) shown.replace(auth + 3, at - auth - 3, "...");
  auto bad = [&](const std::string& why) {
    return FatalError("--to/--from '" + printable(shown) + "': " + why +
                          " (expected clickhouse://HOST[:PORT][/DATABASE], or clickhouses:// for TLS)",
                      kExitUsage);
  };
  ClickHouseEndpoint ep;
  // clickhouses:// as ldaps:// or rediss://: the store's own URL, over TLS,
  // and the port ClickHouse serves HTTPS on by convention
  std::string scheme = "clickhouse://";
  if (url.rfind("clickhouses://", 0) == 0) {
    scheme = "clickhouses://";
    ep.tls = true;
    ep.port = 8443;
  }
  if (url.rfind(scheme, 0) != 0) throw bad("not a clickhouse:// or clickhouses:// URL");
  std::string rest = url.substr(scheme.size());
  size_t slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  std::string db = slash == std::string::npos ? "" : rest.substr(slash + 1);
  if (url.find('@', scheme.size()) != std::string::npos)
    throw bad("credentials do not belong on the command line; use --credentials FILE or the environment");
  if (hostport.empty()) throw bad("no host");
  std::string port_text;
  bool has_port = false;
  if (hostport[0] == '[') {  // [v6 address]:port
    size_t close = hostport.find(']');
    if (close == std::string::npos) throw bad("unclosed [");
    ep.host = hostport.substr(0, close + 1);
    std::string tail = hostport.substr(close + 1);
    if (!tail.empty()) {
      if (tail[0] != ':') throw bad("junk after ]");
      port_text = tail.substr(1);
      has_port = true;
    }
  } else {
    size_t colon = hostport.find(':');
    ep.host = hostport.substr(0, colon);
    if (colon != std::string::npos) {
      port_text = hostport.substr(colon + 1);
      has_port = true;
    }
  }
  if (ep.host.empty() || ep.host == "[]") throw bad("no host");
  if (has_port) {
    char* end = nullptr;
    long v = std::strtol(port_text.c_str(), &end, 10);
    if (port_text.empty() || !end || *end || v < 1 || v > 65535) throw bad("bad port '" + printable(port_text) + "'");
    ep.port = static_cast<uint16_t>(v);
  }
  if (!db.empty()) {
    if (db.back() == '/') db.pop_back();
    if (!name_ok(db)) throw bad("bad database name '" + printable(db) + "' (letters, digits, _)");
    ep.database = db;
  }
  if (const char* u = std::getenv("PORTGHOST_CLICKHOUSE_USER")) ep.user = u;
  if (const char* p = std::getenv("PORTGHOST_CLICKHOUSE_PASSWORD")) ep.password = p;
  if (credentials_file) read_credentials(*credentials_file, ep);
  if (ca_file && !ep.tls)
    throw FatalError("--ca-file is for a clickhouses:// URL: clickhouse:// is plain HTTP, which no CA protects",
                     kExitUsage);
  if (ca_file) read_ca_file(*ca_file, ep);
  return ep;
}

ClickHouseEndpoint clickhouse_endpoint(const std::string& url, const std::optional<std::string>& credentials_file,
                                       const std::string& table, const std::optional<std::string>& ca_file) {
  ClickHouseEndpoint ep = parse_clickhouse_url(url, credentials_file, ca_file);
  if (!name_ok(table)) throw FatalError("--table '" + printable(table) + "': letters, digits and _ only", kExitUsage);
  ep.table = table;
  return ep;
}

void warn_if_cleartext(const ClickHouseEndpoint& ep, std::ostream& err) {
  if (ep.tls || ep.password.empty() || loopback_host(ep.host)) return;
  err << "portghost: warning: the password for ClickHouse " << printable(ep.host) << ":" << ep.port
      << " and every record cross the network in clear (clickhouse:// is plain HTTP); use clickhouses:// (TLS)\n";
}

}  // namespace portghost
