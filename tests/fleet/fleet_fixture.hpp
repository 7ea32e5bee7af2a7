// The fixture of the tests that ship into a real ClickHouse server: one
// server for the suite, a database and a log directory per test, and who
// and stats compared between the files and the store.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.hpp"
#include "fleet_harness.hpp"
#include "log_maker.hpp"

namespace pgfleet {

using Counts = std::map<std::pair<std::string, std::string>, uint64_t>;

inline Counts expected_counts(const std::string& host, const std::map<std::string, uint64_t>& written) {
  Counts c;
  for (const auto& [type, n] : written) c[{host, type}] = n;
  return c;
}

inline std::string at(uint64_t ns) { return portghost::format_rfc3339(ns); }

inline std::string text_of(const std::string& path) {
  std::ifstream f(path);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

class Fleet : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_TRUE(ClickHouseServer::available())
        << "clickhouse-server is not installed (scripts/deps.sh installs it): the fleet tests need a real server";
    server_ = new ClickHouseServer();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    db_ = std::string("t_") + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    create_records_table(*server_, db_);
    cred_ = credentials_file(*server_, dir_);
    // the default state's place, as systemd's StateDirectory= gives it
    setenv("STATE_DIRECTORY", (dir_ / "states").c_str(), 1);
  }
  void TearDown() override { unsetenv("STATE_DIRECTORY"); }
  std::vector<std::string> ship_args(const std::string& log, const std::string& url) {
    return {"ship",  log, "--to", url, "--credentials", cred_, "--state", dir_ / ("state-" + std::to_string(states_++)),
            "--once"};
  }
  // who and stats on the files and on the store: the same text.
  void expect_parity(const std::vector<std::string>& logs, const std::vector<std::string>& query,
                     const std::string& url = "", const std::string& cred = "") {
    std::vector<std::string> files = query, store = query;
    for (const auto& l : logs) files.push_back(l);
    store.insert(store.end(), {"--from", url.empty() ? store_url(*server_, db_) : url, "--credentials",
                               cred.empty() ? cred_ : cred});
    RunResult a = run_portghost(files), b = run_portghost(store);
    std::string q;
    for (const auto& s : query) q += s + " ";
    EXPECT_EQ(a.rc, 0) << q << a.err;
    EXPECT_EQ(b.rc, 0) << q << b.err;
    EXPECT_FALSE(a.out.empty()) << q;
    EXPECT_EQ(a.out, b.out) << q;
    holdings_ += count(a.out, "\"type\":\"holding\"");
    gaps_ += count(a.out, "\"type\":\"not_covered\"");
    lost_ += count(a.out, "\"type\":\"lost\"");
  }
  static size_t count(const std::string& text, const std::string& what) {
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) n++;
    return n;
  }
  void expect_who_parity(const std::vector<std::string>& logs, const LogShape& shape,
                         const std::vector<std::string>& extra = {}, const std::string& url = "",
                         const std::string& cred = "") {
    for (uint16_t port : {shape.first_port, static_cast<uint16_t>(shape.first_port + 1),
                          static_cast<uint16_t>(shape.first_port + shape.ports / 2)}) {
      for (uint64_t t : probe_instants(shape)) {
        std::vector<std::string> q = {"who", std::to_string(port), "--at", at(t), "--format", "json"};
        q.insert(q.end(), extra.begin(), extra.end());
        expect_parity(logs, q, url, cred);
      }
      std::vector<std::string> w = {"who",     std::to_string(port),
                                    "--since", at(shape.t0_ns - 1'000'000'000),
                                    "--until", at(shape.t0_ns + 3'600'000'000'000ULL)};
      w.insert(w.end(), extra.begin(), extra.end());
      expect_parity(logs, w, url, cred);  // the table, as people read it
      w.insert(w.end(), {"--format", "json"});
      expect_parity(logs, w, url, cred);
    }
    // the answers compared were not empty ones: holders, gaps and losses
    EXPECT_GT(holdings_, 20u);
    EXPECT_GT(gaps_, 2u);
    EXPECT_GT(lost_, 0u);
  }
  bool wait_for_counts(const Counts& want, int seconds) {
    for (int i = 0; i < seconds * 10; i++) {
      try {
        if (store_counts(*server_, db_) == want) return true;
      } catch (const std::exception&) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  inline static ClickHouseServer* server_ = nullptr;
  size_t holdings_ = 0, gaps_ = 0, lost_ = 0;
  TempDir dir_;
  std::string db_, cred_;
  int states_ = 0;
};

}  // namespace pgfleet
