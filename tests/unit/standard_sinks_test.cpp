// --format ecs and --format ocsf, held to the published field definitions
// (ECS 9.4.0's ecs_flat.yml and OCSF 1.2.0's Network Activity class and its
// objects, the parts used kept in tests/data with their source): every
// field a document has is defined there, with its type, its allowed values,
// and every required attribute present.
#include <arpa/inet.h>

#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "sink_fixture.hpp"
#include "sinks/standard_sinks.hpp"

using nlohmann::json;

namespace {

json load(const char* name) {
  std::ifstream f(std::string(PG_TEST_DATA_DIR) + "/" + name);
  EXPECT_TRUE(f) << name;
  return json::parse(f);
}

bool is_ip(const json& v) {
  if (!v.is_string()) return false;
  unsigned char b[16];
  std::string s = v;
  return inet_pton(AF_INET, s.c_str(), b) == 1 || inet_pton(AF_INET6, s.c_str(), b) == 1;
}

// Every record type, as the tracer would hand them over.
template <class S>
std::vector<json> documents() {
  StringOutput out;
  S sink(out, "web-1", 0);
  StartRecord st;
  st.ts_ns = kTs;
  st.version = "0.1.0";
  st.hostname = "web-1";
  st.machine_id = "3d1219c7c4c5404aaa1f6d2a48adfda4";
  st.boot_id = "dd6562ce-2c92-4e5e-80e4-fd673f1ba1d6";
  st.hooks = {"sockops"};
  st.ring_buffer_bytes = 8u << 20;
  st.kernel_maps_bytes = 21268240;
  st.nat_mode = "watch";
  sink.start(st);
  sink.port(assign_record());
  PortRecord listen = assign_record();
  listen.raddr.reset();
  listen.rport.reset();
  listen.how = How::Listen;
  listen.family = Family::Ipv6;
  listen.laddr = "::";
  sink.port(listen);
  PortRecord existing = listen;
  existing.type = PortRecord::Type::Existing;
  existing.state = "LISTEN";
  existing.how.reset();
  sink.port(existing);
  PortRecord rel = release_record();
  rel.closer_pid = 5151;
  rel.closer_comm = "sshd";
  sink.port(rel);
  PortRecord ex;
  ex.type = PortRecord::Type::Exhausted;
  ex.ts_ns = kTs;
  ex.proto = Proto::Udp;
  ex.how = How::Sendmsg;
  ex.pid = 7;
  ex.comm = "dig";
  ex.held = 28232;
  sink.port(ex);
  NatRecord n;
  n.ts_ns = kTs;
  n.sock = 12345;
  n.laddr = "10.88.0.5";
  n.lport = 49152;
  n.raddr = "203.0.113.7";
  n.rport = 443;
  n.nat_laddr = "192.0.2.1";
  n.nat_lport = 61234;
  n.nat_raddr = "203.0.113.7";
  n.nat_rport = 443;
  n.ct_id = 99;
  n.pid = 4242;
  n.comm = CommText("curl");
  n.netns = 4026532174u;
  sink.nat(n);
  n.type = NatRecord::Type::NatEnd;
  n.duration_ns = 30'000'000'000ULL;
  n.nat_raddr = "10.96.0.10";  // the destination rewritten too (DNAT)
  n.nat_rport = 8443;
  sink.nat(n);
  LostRecord l;
  l.ts_ns = kTs;
  l.count = 3;
  l.total = 3;
  l.by_reason = {{"ring_buffer_full", 3}};
  sink.lost(l);
  WarningRecord w;
  w.ts_ns = kTs;
  w.netns = 1;
  w.held = 9;
  w.range_lo = 1;
  w.range_hi = 10;
  w.threshold = 80;
  sink.warning(w);
  StopRecord sp;
  sp.ts_ns = kTs;
  sp.reason = "signal";
  sp.nat_unjoined = 2;
  sp.nat_subscriptions = 1;
  sink.stop(sp);
  sink.flush();
  std::vector<json> docs;
  for (const auto& line : pgtest::split_lines(out.text())) docs.push_back(json::parse(line));
  EXPECT_EQ(docs.size(), 11u);
  return docs;
}

void flatten(const json& v, const std::string& prefix, std::map<std::string, json>& out) {
  if (v.is_object()) {
    for (auto it = v.begin(); it != v.end(); ++it)
      flatten(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
  } else {
    out[prefix] = v;
  }
}

}  // namespace

TEST(EcsFormat, EveryFieldIsEcs940sWithItsTypeAndAllowedValues) {
  json ecs = load("ecs_9.4.0_fields.json");
  ASSERT_EQ(ecs["version"], kEcsVersion);
  const json& fields = ecs["fields"];
  size_t checked = 0;
  for (const json& doc : documents<EcsSink>()) {
    std::map<std::string, json> flat;
    flatten(doc, "", flat);
    EXPECT_EQ(doc["ecs"]["version"], "9.4.0");
    for (const auto& kv : flat) {
      const std::string& path = kv.first;  // named, not bound: lambdas below capture them
      const json& value = kv.second;
      if (path.rfind("portghost.", 0) == 0) continue;  // ours, by ECS's custom-field convention
      ASSERT_TRUE(fields.contains(path)) << path << " is not an ECS 9.4.0 field: " << doc.dump();
      const json& f = fields[path];
      std::string type = f["type"];
      auto each = [&](const std::function<void(const json&)>& check) {
        if (value.is_array())
          for (const auto& x : value) check(x);
        else
          check(value);
      };
      each([&](const json& x) {
        if (type == "keyword" || type == "wildcard" || type == "match_only_text" || type == "date")
          EXPECT_TRUE(x.is_string()) << path << " " << doc.dump();
        else if (type == "long")
          EXPECT_TRUE(x.is_number_integer()) << path << " " << doc.dump();
        else if (type == "ip")
          EXPECT_TRUE(is_ip(x)) << path << " " << doc.dump();
        else
          ADD_FAILURE() << path << ": a type this test does not know: " << type;
        if (f.contains("allowed")) {
          const auto& allowed = f["allowed"];
          EXPECT_NE(std::find(allowed.begin(), allowed.end(), x), allowed.end()) << path << " = " << x;
        }
      });
      if (f.contains("normalize") && f["normalize"].dump().find("array") != std::string::npos) {
        EXPECT_TRUE(value.is_array()) << path << " is an array in ECS";
      }
      checked++;
    }
    for (const char* required : {"@timestamp", "event.kind", "event.category", "event.type", "host.name"})
      EXPECT_TRUE(flat.count(required)) << required << " " << doc.dump();
  }
  EXPECT_GT(checked, 100u);
}

TEST(EcsFormat, TheHostsPointOfView) {
  auto docs = documents<EcsSink>();
  const json& assign = docs[1];
  EXPECT_EQ(assign["source"]["ip"], "10.0.0.5");
  EXPECT_EQ(assign["source"]["port"], 49152);
  EXPECT_EQ(assign["destination"]["ip"], "93.184.216.34");
  EXPECT_EQ(assign["network"]["transport"], "tcp");
  EXPECT_EQ(assign["network"]["iana_number"], "6");
  EXPECT_EQ(assign["network"]["community_id"], "1:WFu5YQGJptNO6IrtaHnl24qBbd0=");
  EXPECT_EQ(assign["process"]["executable"], "/usr/bin/curl");
  EXPECT_EQ(assign["container"]["id"], "abc");
  EXPECT_EQ(assign["portghost"]["sock"], 12345);
  const json& rel = docs[4];
  EXPECT_EQ(rel["event"]["duration"], 1'500'000);
  EXPECT_EQ(rel["portghost"]["closer"]["pid"], 5151);
  EXPECT_EQ(docs[5]["event"]["outcome"], "failure");
  // the start's own keys under portghost, the kernel's memory among them
  EXPECT_EQ(docs[0]["portghost"]["ring_buffer_bytes"], 8u << 20);
  EXPECT_EQ(docs[0]["portghost"]["kernel_maps_bytes"], 21268240);
  EXPECT_EQ(docs[0]["portghost"]["nat_mode"], "watch");
  // the stop's NAT counts, those it has
  EXPECT_EQ(docs.back()["portghost"]["nat_unjoined"], 2);
  EXPECT_EQ(docs.back()["portghost"]["nat_subscriptions"], 1);
  EXPECT_FALSE(docs.back()["portghost"].contains("nat_looks"));
}

TEST(OcsfFormat, NetworkActivityAsOcsf120DefinesIt) {
  json ocsf = load("ocsf_1.2.0_network_activity.json");
  ASSERT_EQ(ocsf["version"], kOcsfVersion);
  const json& cls = ocsf["class"];
  const json& objects = ocsf["objects"];
  std::function<void(const json&, const json&, const std::string&, const json&)> check_object;
  auto check_value = [&](const json& attr, const json& v, const std::string& path, const json& doc) {
    std::string t = attr["type"];
    if (objects.contains(t)) {
      ASSERT_TRUE(v.is_object()) << path;
      check_object(objects[t], v, path, doc);
    } else if (t == "string_t") {
      EXPECT_TRUE(v.is_string()) << path;
    } else if (t == "integer_t" || t == "long_t" || t == "port_t" || t == "timestamp_t") {
      EXPECT_TRUE(v.is_number_integer()) << path;
    } else if (t == "ip_t") {
      EXPECT_TRUE(is_ip(v)) << path;
    } else if (t == "object") {
      EXPECT_TRUE(v.is_object()) << path;
    } else if (!attr.value("array", false)) {
      ADD_FAILURE() << path << ": a type this test does not know: " << t;
    }
    // class_uid, category_uid, type_uid: the dictionary lists every class's;
    // this class's own are checked below
    bool derived = path == ".class_uid" || path == ".category_uid" || path == ".type_uid";
    if (attr.contains("enum") && !derived) {
      const auto& en = attr["enum"];
      bool in = std::find(en.begin(), en.end(), v) != en.end() || v == 0 || v == 99;  // Unknown, Other: always
      EXPECT_TRUE(in) << path << " = " << v;
    }
  };
  check_object = [&](const json& def, const json& v, const std::string& path, const json& doc) {
    for (auto it = v.begin(); it != v.end(); ++it) {
      std::string p = path + "." + it.key();
      ASSERT_TRUE(def.contains(it.key())) << p << " is not defined in OCSF 1.2.0: " << doc.dump();
      if (def[it.key()].value("array", false)) {
        EXPECT_TRUE(it.value().is_array()) << p;
        continue;
      }
      check_value(def[it.key()], it.value(), p, doc);
    }
    for (auto it = def.begin(); it != def.end(); ++it)
      if (it.value()["requirement"] == "required") {
        EXPECT_TRUE(v.contains(it.key())) << path << "." << it.key();
      }
  };
  size_t network = 0;
  for (const json& doc : documents<OcsfSink>()) {
    EXPECT_EQ(doc["type_uid"], doc["class_uid"].get<int>() * 100 + doc["activity_id"].get<int>());
    EXPECT_EQ(doc["metadata"]["version"], "1.2.0");
    if (doc["class_uid"] != 4001) {
      // the session's own records: OCSF's Base Event, everything in unmapped
      EXPECT_EQ(doc["class_uid"], 0);
      for (const char* k : {"activity_id", "category_uid", "class_uid", "type_uid", "time", "metadata", "severity_id"})
        EXPECT_TRUE(doc.contains(k)) << k;
      EXPECT_TRUE(doc["unmapped"].contains("type"));
      continue;
    }
    network++;
    EXPECT_EQ(doc["category_uid"], ocsf["category_uid"]);
    EXPECT_EQ(doc["class_uid"], ocsf["class_uid"]);
    check_object(cls, doc, "", doc);
  }
  EXPECT_EQ(network, 7u);
}

// A translation: the socket's end as the source, what the world saw as its
// NAT (ECS source.nat, destination.nat when that end was rewritten too;
// OCSF 1.2.0 has no such field: under unmapped).
TEST(EcsFormat, ANatTranslationIsTheSourcesNat) {
  auto docs = documents<EcsSink>();
  const json& n = docs[6];
  EXPECT_EQ(n["event"]["action"], "nat-translation");
  EXPECT_EQ(n["source"]["ip"], "10.88.0.5");
  EXPECT_EQ(n["source"]["nat"]["ip"], "192.0.2.1");
  EXPECT_EQ(n["source"]["nat"]["port"], 61234);
  EXPECT_FALSE(n["destination"].contains("nat"));
  EXPECT_EQ(n["process"]["pid"], 4242);
  const json& e = docs[7];
  EXPECT_EQ(e["event"]["action"], "nat-translation-ended");
  EXPECT_EQ(e["event"]["duration"], 30'000'000'000ULL);
  EXPECT_EQ(e["destination"]["nat"]["ip"], "10.96.0.10");
  EXPECT_EQ(e["portghost"]["ct_id"], 99);
  auto o = documents<OcsfSink>();
  EXPECT_EQ(o[6]["activity_id"], 6);
  EXPECT_EQ(o[6]["src_endpoint"]["ip"], "10.88.0.5");
  EXPECT_EQ(o[6]["unmapped"]["nat"]["laddr"], "192.0.2.1");
  EXPECT_EQ(o[7]["unmapped"]["nat"]["rport"], 8443);
}

TEST(OcsfFormat, OpenCloseFailAndTheFlow) {
  auto docs = documents<OcsfSink>();
  EXPECT_EQ(docs[0]["unmapped"]["kernel_maps_bytes"], 21268240);
  EXPECT_EQ(docs[0]["unmapped"]["nat_mode"], "watch");
  EXPECT_EQ(docs.back()["unmapped"]["nat_unjoined"], 2);
  EXPECT_EQ(docs[1]["activity_id"], 1);
  EXPECT_EQ(docs[1]["src_endpoint"]["ip"], "10.0.0.5");
  EXPECT_EQ(docs[1]["dst_endpoint"]["port"], 443);
  EXPECT_EQ(docs[1]["connection_info"]["direction_id"], 2);
  EXPECT_EQ(docs[1]["actor"]["process"]["file"]["path"], "/usr/bin/curl");
  EXPECT_EQ(docs[1]["unmapped"]["community_id"], "1:WFu5YQGJptNO6IrtaHnl24qBbd0=");
  EXPECT_EQ(docs[1]["time"], kTs / 1'000'000);
  EXPECT_EQ(docs[4]["activity_id"], 2);
  EXPECT_EQ(docs[4]["duration"], 1);  // ms
  EXPECT_EQ(docs[5]["activity_id"], 4);
  EXPECT_EQ(docs[5]["status_id"], 2);
  EXPECT_EQ(docs[1]["metadata"]["uid"], "web-1:" + std::to_string(kTs) + ":1");
}
