#!/usr/bin/env bash
# Scan speed of `portghost who` over a large synthetic log.
#   scripts/bench-who.sh [MB]      (default 512)
# Writes a log of realistic assign/release lines (many processes and ports,
# a few sessions), then times `who` for one port over the whole of it.
set -euo pipefail
cd "$(dirname "$0")/.."
mb=${1:-512}
./scripts/build.sh >/dev/null
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
python3 - "$dir/events.jsonl" "$mb" <<'PY'
import sys, random
path, mb = sys.argv[1], int(sys.argv[2])
random.seed(1)
t = 1795307725_000000000
out = open(path, "w", buffering=1 << 20)
size = 0
sock = 1
start = '{"type":"start","ts":"2026-11-22T00:35:25.000000000Z","ts_ns":%d,"version":"0.1.0","kernel":"6.1.0","host":"web-1","machine_id":"m","boot_id":"b","hooks":[],"uncaught":[],"port_range":[32768,60999],"ring_buffer_bytes":8388608,"filters":{}}\n'
assign = '{"type":"assign","ts":"2026-11-22T00:35:25.%09dZ","ts_ns":%d,"sock":%d,"proto":"%s","family":"ipv4","laddr":"10.0.0.5","lport":%d,"raddr":"10.1.2.3","rport":443,"how":"connect","ephemeral":true,"pid":%d,"tid":%d,"ppid":1,"uid":1000,"comm":"curl","thread":"curl","exe":"/usr/bin/curl","cmdline":"curl -s https://api.internal.example/v1/items?page=%d","netns":4026531833,"cgroup_id":4242,"container":null,"kernel":false,"host":"web-1"}\n'
release = '{"type":"release","ts":"2026-11-22T00:35:25.%09dZ","ts_ns":%d,"sock":%d,"proto":"%s","family":"ipv4","laddr":"10.0.0.5","lport":%d,"raddr":"10.1.2.3","rport":443,"duration_ns":%d,"pid":%d,"comm":"curl","timewait":true,"host":"web-1"}\n'
out.write(start % t)
while size < mb * 1_000_000:
    lines = []
    for _ in range(1000):
        t += random.randint(1000, 200000)
        port = random.randint(32768, 60999)
        pid = random.randint(1000, 99999)
        proto = "tcp" if random.random() < 0.7 else "udp"
        d = random.randint(100000, 50000000)
        lines.append(assign % (t % 10**9, t, sock, proto, port, pid, pid, sock))
        lines.append(release % ((t + d) % 10**9, t + d, sock, proto, port, d, pid))
        sock += 1
    chunk = "".join(lines)
    out.write(chunk)
    size += len(chunk)
out.close()
PY
bytes=$(stat -c %s "$dir/events.jsonl")
cat "$dir/events.jsonl" > /dev/null  # warm the page cache: measure parsing, not the disk
t0=$(date +%s%N)
./build/portghost who 40000 --since 0 --format json "$dir/events.jsonl" > "$dir/answer.jsonl"
t1=$(date +%s%N)
ns=$((t1 - t0))
echo "log: $((bytes / 1000000)) MB, $(wc -l < "$dir/events.jsonl") records; holders of port 40000 found: $(grep -c '"holding"' "$dir/answer.jsonl" || true)"
echo "who: $((ns / 1000000)) ms, $((bytes * 1000 / ns)) MB/s on one core"
