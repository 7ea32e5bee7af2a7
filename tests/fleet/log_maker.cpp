#include "log_maker.hpp"

#include <deque>
#include <string_view>

namespace pgfleet {

using namespace portghost;

namespace {

struct Open {
  uint64_t sock;
  uint16_t port;
  uint64_t ts;
  uint32_t pid;
  bool udp;
  std::string raddr = {};
  uint16_t rport = 0;
};

// The sink's clock: the records' own time, so that a socket released within
// the hold is a life line, as the tracer writes it.
uint64_t g_now = 0;
uint64_t log_clock() { return g_now; }

// Forwards to out and counts the lines written by type (the JSON sink
// writes a line per call).
class CountingOutput : public Output {
 public:
  explicit CountingOutput(Output& out) : out_(out) {}
  void write(std::string_view text) override {
    size_t at = std::string_view("{\"type\":\"").size();
    n_[std::string(text.substr(at, text.find('"', at) - at))]++;
    out_.write(text);
  }
  void flush() override { out_.flush(); }
  const std::map<std::string, uint64_t>& counts() const { return n_; }

 private:
  Output& out_;
  std::map<std::string, uint64_t> n_;
};

}  // namespace

std::map<std::string, uint64_t> make_log(const std::string& file, const LogShape& shape) {
  FileOutput file_out(file, RotateConfig{shape.rotate_bytes, shape.keep});
  CountingOutput out(file_out);
  LifeLines life;
  life.hold_ns = 100'000'000;
  life.clock = &log_clock;
  g_now = shape.t0_ns;
  JsonSink sink(out, shape.host, 0, life);
  std::mt19937_64 rng(std::hash<std::string>{}(shape.host) ^ shape.t0_ns);
  uint64_t t = shape.t0_ns;
  uint64_t sock = 1000;
  static const char* kComms[] = {"curl", "nginx", "dig", "python3", "redis-server"};
  for (unsigned s = 0; s < shape.sessions; s++) {
    StartRecord st;
    st.ts_ns = t;
    st.version = "0.1.0";
    st.kernel = "6.18.0-test";
    st.hostname = shape.host;
    st.boot_id = "00000000-0000-0000-0000-000000000001";
    st.world = "socket";
    st.port_lo = 32768;
    st.port_hi = 60999;
    sink.start(st);
    std::deque<Open> open;
    // a socket held since before the start
    {
      PortRecord e;
      e.type = PortRecord::Type::Existing;
      e.ts_ns = t + 1;
      e.sock = sock++;
      e.proto = Proto::Tcp;
      e.laddr = "0.0.0.0";
      e.lport = shape.first_port;  // a listener on the first port
      e.pid = 1;
      e.comm = "sshd";
      e.state = "LISTEN";
      sink.port(e);
      open.push_back({e.sock, e.lport, e.ts_ns, 1, false});
    }
    uint64_t lost_total = 0;
    for (unsigned i = 0; i < shape.records_per_session; i++) {
      t += shape.step_ns;
      Open o{sock++, static_cast<uint16_t>(shape.first_port + 1 + rng() % (shape.ports - 1)), t,
             static_cast<uint32_t>(2000 + rng() % 50), rng() % 3 == 0};
      PortRecord a;
      a.type = PortRecord::Type::Assign;
      a.ts_ns = t;
      a.sock = o.sock;
      a.proto = o.udp ? Proto::Udp : Proto::Tcp;
      a.laddr = "10.0.0.5";
      a.lport = o.port;
      std::string peer = "10.0.0." + std::to_string(9 + rng() % 3);
      if (!o.udp || rng() % 2) {
        a.raddr = peer;
        a.rport = o.udp ? 53 : 443;
        o.raddr = peer;
        o.rport = *a.rport;
      }
      a.how = o.udp ? (a.raddr ? How::Connect : How::Sendmsg) : How::Connect;
      a.ephemeral = true;
      a.pid = o.pid;
      a.tid = o.pid;
      a.uid = 1000;
      a.comm = kComms[o.pid % 5];
      a.thread = a.comm;
      std::string exe = std::string("/usr/bin/") + kComms[o.pid % 5];
      a.exe = exe;
      a.cmdline = exe;
      a.netns = 4026531840u;
      a.cgroup_id = 1;
      sink.port(a);
      open.push_back(o);
      // most sockets live a few records; some stay open to the end
      while (open.size() > 6 || (open.size() > 1 && rng() % 2)) {
        Open c = open.front();
        open.pop_front();
        if (c.pid == 1) continue;  // the listener stays
        t += shape.step_ns / 2;
        PortRecord r;
        r.type = PortRecord::Type::Release;
        r.ts_ns = t;
        r.sock = c.sock;
        r.proto = c.udp ? Proto::Udp : Proto::Tcp;
        r.laddr = "10.0.0.5";
        r.lport = c.port;
        r.duration_ns = t - c.ts;
        if (c.rport) {
          r.raddr = c.raddr;
          r.rport = c.rport;
        }
        r.pid = c.pid;
        r.comm = kComms[c.pid % 5];
        sink.port(r);
      }
      g_now = t;
      sink.flush();
      if (i % 500 == 250) {
        LostRecord l;
        l.ts_ns = t;
        l.count = 7;
        lost_total += 7;
        l.total = lost_total;
        l.by_reason = {{"ring_buffer_full", 7}};
        sink.lost(l);
      }
      if (i % 700 == 350) {
        PortRecord x;
        x.type = PortRecord::Type::Exhausted;
        x.ts_ns = t;
        x.proto = Proto::Udp;
        x.how = How::Sendmsg;
        x.pid = 3000;
        x.comm = "dig";
        x.held = 28232;
        sink.port(x);
        WarningRecord w;
        w.ts_ns = t;
        w.netns = 4026531840u;
        w.proto = Proto::Udp;
        w.held = 28232;
        w.range_lo = 32768;
        w.range_hi = 60999;
        w.threshold = 90;
        sink.warning(w);
      }
    }
    t += shape.step_ns;
    if (s + 1 < shape.sessions) {
      StopRecord sp;
      sp.ts_ns = t;
      sp.reason = "signal";
      sp.lost = lost_total;
      sink.stop(sp);
    }
    t += shape.gap_ns;
  }
  g_now = t;
  sink.flush();  // the last session has no stop: its held assigns are written
  return out.counts();
}

std::vector<uint64_t> probe_instants(const LogShape& shape) {
  std::vector<uint64_t> v;
  uint64_t session_len = shape.records_per_session * shape.step_ns * 2;
  v.push_back(shape.t0_ns - 5'000'000'000ULL);  // before everything
  for (unsigned s = 0; s < shape.sessions; s++) {
    uint64_t begin = shape.t0_ns + s * (shape.gap_ns + session_len);
    v.push_back(begin + shape.step_ns * 17);
    v.push_back(begin + shape.step_ns * shape.records_per_session / 2 + 333);
    v.push_back(begin + session_len + shape.gap_ns / 2);  // between sessions
  }
  return v;
}

}  // namespace pgfleet
