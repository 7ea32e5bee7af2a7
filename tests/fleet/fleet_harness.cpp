#include "fleet_harness.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace pgfleet {

namespace {

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

pid_t spawn(const std::vector<std::string>& args, const std::string& out_file, const std::string& err_file) {
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    int o = open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int e = open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (o < 0 || e < 0) _exit(126);
    dup2(o, 1);
    dup2(e, 2);
    std::vector<char*> argv;
    std::string bin = PORTGHOST_BIN;
    argv.push_back(bin.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

}  // namespace

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "pg-fleet-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

RunResult run_portghost(const std::vector<std::string>& args, int timeout_s) {
  TempDir io;
  pid_t pid = spawn(args, io / "out", io / "err");
  RunResult r;
  int status = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  while (true) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      r.err = "timed out\n";
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = slurp(io / "out");
  r.err += slurp(io / "err");
  return r;
}

pid_t portghost_bg(const std::vector<std::string>& args, const std::string& err_file) {
  return spawn(args, "/dev/null", err_file);
}

int stop_bg(pid_t pid, int sig) {
  kill(pid, sig);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void create_records_table(const ClickHouseServer& s, const std::string& db) {
  // as README tells an operator to: the server's HTTP port, no client program
  TempDir dir;
  RunResult r =
      run_portghost({"schema", "clickhouse", "--apply", store_url(s, db), "--credentials", credentials_file(s, dir)});
  if (r.rc != 0) throw std::runtime_error("portghost schema --apply failed: " + r.err);
}

std::string store_url(const ClickHouseServer& s, const std::string& db) { return s.url() + db; }

uint16_t port_of_url(const std::string& url) {
  size_t colon = url.rfind(':');
  return static_cast<uint16_t>(std::stoi(url.substr(colon + 1)));
}

std::string credentials_file(const ClickHouseServer& s, const TempDir& dir) {
  std::string p = dir / "clickhouse.conf";
  {
    std::ofstream f(p);
    f << "# for the fleet tests\nuser=" << s.user() << "\npassword=" << s.password() << "\n";
  }
  chmod(p.c_str(), 0600);  // a secret others can read is refused
  return p;
}

std::map<std::pair<std::string, std::string>, uint64_t> store_counts(const ClickHouseServer& s, const std::string& db) {
  std::string text = s.query("SELECT host, type, uniqExact(run, seq) FROM " + db +
                             ".records GROUP BY host, type ORDER BY host, type FORMAT TSV");
  std::map<std::pair<std::string, std::string>, uint64_t> m;
  std::istringstream in(text);
  std::string host, type;
  uint64_t n;
  while (in >> host >> type >> n) m[{host, type}] = n;
  return m;
}

uint64_t store_rows(const ClickHouseServer& s, const std::string& db) {
  return std::stoull(s.query("SELECT count() FROM " + db + ".records"));
}

}  // namespace pgfleet
