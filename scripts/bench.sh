#!/usr/bin/env bash
# portghost's benchmark suite: overhead next to its peers, the zero-loss
# rate, cost per record, delivery latency, idle wakeups, memory, start time
# and capture rate. Not part of the tests: the full run takes about 15 minutes.
#
#   scripts/bench.sh [--reps N] [--seconds S] [--loss-seconds S] [--out DIR]
#   scripts/bench.sh --smoke     seconds, baseline and portghost only, loose
#                                bounds checked (the CI keeps the suite alive)
#   --masquerade       on a host whose conntrack is active: a masquerade rule
#                      in the root namespace for a subnet nothing here uses,
#                      as container runtimes leave one (removed at the end).
#                      Without it, a full run (no --smoke, no --tools) runs
#                      the redis loops a second time with that rule
#                      (loops "redis-k0-masq", ...: baseline, control,
#                      portghost and portghost-nonat), so that one run
#                      shows both kinds of host
#   --overhead-only    the overhead table alone
#   --loops "L ..."    these workload loops; --tools "T ...": these tools,
#                      among them portghost-nonat (--no-nat) and portghost-b
#                      (the binary $PG_B: two builds side by side)
#
# Writes DIR/results.md (default build/bench) with every table, the raw
# measurements beside it, and DIR/overhead.png. Runs as root (BPF).
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=0 reps=5 secs=5 loss_secs=60 out=build/bench masq=0 only=0 want_loops="" want_tools=""
while [ $# -gt 0 ]; do
  case "$1" in
    --masquerade) masq=1 ;;
    --overhead-only) only=1 ;;
    --loops) want_loops=$2; shift ;;
    --tools) want_tools=$2; shift ;;
    --smoke) smoke=1 reps=1 secs=1 loss_secs=2 ;;
    --reps) reps=$2; shift ;;
    --seconds) secs=$2; shift ;;
    --loss-seconds) loss_secs=$2; shift ;;
    --out) out=$2; shift ;;
    *) echo "bench.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
if [ "$(id -u)" -ne 0 ]; then
  echo "bench.sh: must run as root (it loads BPF programs)" >&2
  exit $([ $smoke -eq 1 ] && echo 77 || echo 1)  # 77: ctest's "skipped"
fi

for t in portghost tcplife bpftrace; do
  if pgrep -x "$t" >/dev/null; then
    echo "bench.sh: $t is already running (pid $(pgrep -x "$t" | tr '\n' ' ')): stop it first" >&2
    exit 1
  fi
done
if [ $smoke -eq 0 ]; then ./scripts/deps.sh bench; fi
./scripts/build.sh >/dev/null
PG=$PWD/build/portghost
CHURN=$PWD/build/tests/pg_churn
REPLAY=$PWD/build/tests/pg_replay
LATENCY=$PWD/build/tests/pg_latency
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; sysctl -qw kernel.bpf_stats_enabled="$stats0" 2>/dev/null || true; masq_off; rm -rf "$work"' EXIT
# what `podman pod create` or dockerd leave: NAT for a bridge's subnet. It
# translates nothing here, but with a NAT hook registered conntrack tracks
# every flow of the namespace, loopback included
masq_on() {
  nft -f - <<'NFT'
table ip portghost_bench {
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr 10.254.254.0/24 oifname != "lo" masquerade
  }
}
NFT
}
masq_off() { nft delete table ip portghost_bench 2>/dev/null || true; }
[ $masq -eq 1 ] && masq_on
hz=$(getconf CLK_TCK)

# control: a second run with no tracer, the A/A noise of the same run
if [ $smoke -eq 1 ]; then
  tools=(baseline portghost) loops=(udp tcp rw exec)
else
  tools=(baseline control portghost tcplife bpftrace) loops=(rw tcp tcp-rst udp bind exec redis-k0 redis-k1)
fi
[ -n "$want_loops" ] && read -r -a loops <<<"$want_loops"
[ -n "$want_tools" ] && read -r -a tools <<<"$want_tools"
if printf '%s\n' "${tools[@]}" | grep -qx portghost-b && [ ! -x "${PG_B:-}" ]; then
  echo "bench.sh: portghost-b needs PG_B=/path/to/another/portghost" >&2
  exit 2
fi

# BPF run-time statistics cost every program two clock reads: off during the
# run (every tracer measured pays the same), restored on exit
stats0=$(sysctl -n kernel.bpf_stats_enabled 2>/dev/null || echo 0)
sysctl -qw kernel.bpf_stats_enabled=0 2>/dev/null || true

log() { echo "bench: $*" >&2; }
# kv KEY LINE: the value of KEY=... in a key=value line
kv() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2"; }
# CPU seconds a process has used so far (all threads)
cpu_of() { awk -v hz="$hz" '{ print ($14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# waits until FILE holds PATTERN (at most 30 s)
wait_for() {
  for _ in $(seq 3000); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.01
  done
  log "timed out waiting for '$2' in $1"; cat "$1.err" >&2 2>/dev/null || true; return 1
}
# the value of "KEY":N in the last line of a portghost log (its stop record)
stop_field() { tail -n1 "$1" | grep -o "\"$2\":[0-9]*" | head -1 | cut -d: -f2; }

TOOL_PID=""
start_tool() {  # NAME OUTFILE
  local name=$1 f=$2
  : >"$f"
  case $name in
    baseline|control) TOOL_PID="" ; return ;;
    portghost) "$PG" trace -o "$f" --no-existing "${@:3}" 2>"$f.err" & TOOL_PID=$!; wait_for "$f" '"type":"start"' ;;
    portghost-nonat) "$PG" trace -o "$f" --no-existing --no-nat 2>"$f.err" & TOOL_PID=$!; wait_for "$f" '"type":"start"' ;;
    portghost-b) "$PG_B" trace -o "$f" --no-existing 2>"$f.err" & TOOL_PID=$!; wait_for "$f" '"type":"start"' ;;
    # line-buffered: their first line says they are attached
    tcplife) stdbuf -oL tcplife >"$f" 2>"$f.err" & TOOL_PID=$!; wait_for "$f" 'PID' ;;
    bpftrace) bpftrace -B line scripts/bench/peer.bt >"$f" 2>"$f.err" & TOOL_PID=$!; wait_for "$f" '^ready' ;;
  esac
}
stop_tool() {
  [ -n "$TOOL_PID" ] || return 0
  kill -INT "$TOOL_PID" 2>/dev/null || true
  wait "$TOOL_PID" 2>/dev/null || true
  TOOL_PID=""
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# redis: a server on a free loopback port of its own, for the redis-* loops
REDIS_PORT="" REDIS_PID=""
if printf '%s\n' "${loops[@]}" | grep -q '^redis-'; then
  REDIS_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
    --daemonize no --logfile "$work/redis.log" & REDIS_PID=$!
  for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break; sleep 0.05; done
fi
# run_loop LOOP: one key=value line, ops_per_s and cpu_ns_per_op
run_loop() {
  case $1 in
    redis-k0|redis-k1)
      # a new connection per request (-k 0) or keep-alive (-k 1); about
      # $secs seconds of requests; CPU: the server's and the client's
      local k=${1#redis-k} n c0 out
      n=$((secs * (k == 1 ? 60000 : 12000)))
      c0=$(cpu_of "$REDIS_PID")
      out=$( { redis-benchmark -p "$REDIS_PORT" -t ping -c 20 -n "$n" -k "$k" --csv; times; } 2>/dev/null)
      awk -F'"' -v n="$n" -v s0="$c0" -v s1="$(cpu_of "$REDIS_PID")" '
        /^"PING/ { rps += $4; tests++ }
        /^[0-9]+m[0-9.]+s [0-9]+m[0-9.]+s$/ { lines++; if (lines == 2) { split($0, a, /[ms ]+/); cli = a[1] * 60 + a[2] + a[3] * 60 + a[4] } }
        END { if (!tests) exit 1; printf "ops_per_s=%.0f cpu_ns_per_op=%.0f\n", rps / tests, (s1 - s0 + cli) * 1e9 / (n * tests) }' <<<"$out"
      ;;
    *) "$CHURN" "$1" --seconds "$secs" ;;
  esac
}

# ---- 1. overhead: each workload loop under each tool, interleaved reps ----
raw=$out/overhead.txt
echo "# loop tool rep ops_per_s cpu_ns_per_op tool_cpu_s records lost" >"$raw"
# overhead LOOP_NAME_SUFFIX TOOL...: the loops under these tools, appended to $raw
overhead() {
  local suffix=$1 tools=("${@:2}") rep loop n k tool f c0 c1 line records lost a r tcpu
  for rep in $(seq "$reps"); do
  for loop in "${loops[@]}"; do
    [ -n "$suffix" ] && [[ $loop != redis-* ]] && continue
    # rotate the order every repetition: no tool always runs first or last
    n=${#tools[@]}
    for k in $(seq 0 $((n - 1))); do
      tool=${tools[$(((k + rep) % n))]}
      f=$work/$tool.out
      start_tool "$tool" "$f"
      c0=0; [ -n "$TOOL_PID" ] && c0=$(cpu_of "$TOOL_PID")
      line=$(run_loop "$loop")
      c1=0; [ -n "$TOOL_PID" ] && c1=$(cpu_of "$TOOL_PID")
      stop_tool
      records=- lost=-
      if [[ $tool == portghost* ]]; then
        a=$(stop_field "$f" assign); r=$(stop_field "$f" release)
        records=$((a + r)); lost=$(stop_field "$f" lost)
      fi
      tcpu=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.2f", b - a }')
      echo "$loop$suffix $tool $rep $(kv ops_per_s "$line") $(kv cpu_ns_per_op "$line") $tcpu $records $lost" >>"$raw"
      log "overhead rep $rep $loop$suffix $tool: $(kv ops_per_s "$line") ops/s, $(kv cpu_ns_per_op "$line") ns CPU/op, tool ${tcpu}s CPU, lost $lost"
    done
  done
  done
}
overhead "" "${tools[@]}"
# the same host with a container runtime's masquerade rule (conntrack
# active, nothing translated): the redis loops again, NAT followed and not
if [ $masq -eq 0 ] && [ $smoke -eq 0 ] && [ -z "$want_tools" ]; then
  masq_on
  overhead -masq baseline control portghost portghost-nonat
  masq_off
fi

if [ $only -eq 0 ]; then
# ---- 2. zero loss: portghost alone at paced UDP rates (2 records an op) ----
lossraw=$out/loss.txt
echo "# target_events_per_s seconds achieved_ops_per_s records lost tool_cpu_s records_per_s" >"$lossraw"
if [ $smoke -eq 1 ]; then loss_rates=(10000); else loss_rates=(150000 200000 250000 0); fi
for rate in "${loss_rates[@]}"; do
  s=$loss_secs; [ "$rate" != 150000 ] && [ $smoke -eq 0 ] && s=20
  f=$work/loss.jsonl
  start_tool portghost "$f"
  c0=$(cpu_of "$TOOL_PID")
  if [ "$rate" = 0 ]; then line=$("$CHURN" udp --seconds "$s"); else line=$("$CHURN" udp --seconds "$s" --rate "$rate"); fi
  c1=$(cpu_of "$TOOL_PID")
  stop_tool
  a=$(stop_field "$f" assign); r=$(stop_field "$f" release); lost=$(stop_field "$f" lost)
  target=$((rate * 2)); [ "$rate" = 0 ] && target=unpaced
  tcpu=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.2f", b - a }')
  echo "$target $s $(kv ops_per_s "$line") $((a + r)) $lost $tcpu $(((a + r) / s))" >>"$lossraw"
  rm -f "$f"
  log "loss at $target events/s for ${s}s: $(kv ops_per_s "$line") ops/s done, $((a + r)) records, $lost lost"
done

# ---- 3. capture of short-lived ports, everyone watching the same run ----
cap_tools=(portghost); [ $smoke -eq 0 ] && cap_tools=(portghost tcplife bpftrace)
declare -A cap_pid
for t in "${cap_tools[@]}"; do
  start_tool "$t" "$work/cap-$t.out"; cap_pid[$t]=$TOOL_PID
done
( while :; do ss -tanpH 2>/dev/null | grep pg_churn || true; echo "--poll"; sleep 0.1; done ) >"$work/cap-ss.out" &
ss_pid=$!
line=$("$CHURN" tcp --threads 1 --rate 2000 --seconds "$secs" --ports "$work/ports.txt")
churn_pid=$(kv pid "$line")
sleep 0.3
kill "$ss_pid" 2>/dev/null || true; wait "$ss_pid" 2>/dev/null || true
for t in "${cap_tools[@]}"; do TOOL_PID=${cap_pid[$t]}; stop_tool; done
awk '$3 < 1000000 { print $2 }' "$work/ports.txt" | sort -n >"$work/want.txt"
short=$(wc -l <"$work/want.txt")
lived=$(awk '{ s += $3 } END { printf "%.0f", s / NR / 1000 }' "$work/ports.txt")
# ports each tool saw for the workload's pid
grep -E '"type":"(assign|life)"' "$work/cap-portghost.out" | grep "\"pid\":$churn_pid," | grep -o '"lport":[0-9]*' | cut -d: -f2 >"$work/seen-portghost.txt" || true
if [ $smoke -eq 0 ]; then
  awk -v p="$churn_pid" '$1 == p { print $4 }' "$work/cap-tcplife.out" >"$work/seen-tcplife.txt"
  # its connect assigns carry port 0 (not chosen yet at SYN_SENT): count releases
  awk -v p="$churn_pid" '$1 == "release" && $4 == p { print $6 }' "$work/cap-bpftrace.out" >"$work/seen-bpftrace.txt"
  # ss: a port counts once per poll it was seen in
  awk -v p="pid=$churn_pid," '/^--poll/ { delete seen; next } index($0, p) { split($4, a, ":"); port = a[length(a)]; if (!(port in seen)) { seen[port] = 1; print port } }' "$work/cap-ss.out" >"$work/seen-ss.txt"
fi
# caught = sum over ports of min(times the workload used it, times the tool saw it)
caught() { awk 'NR == FNR { want[$1]++; next } { seen[$1]++ } END { for (p in want) n += (seen[p] < want[p] ? seen[p] : want[p]); print n + 0 }' "$work/want.txt" "$1"; }
capraw=$out/capture.txt
echo "# tool caught of_short_lived (workload: $(wc -l <"$work/ports.txt") TCP connections, mean lifetime ${lived} us)" >"$capraw"
for t in portghost tcplife bpftrace ss; do
  [ -f "$work/seen-$t.txt" ] || continue
  echo "$t $(caught "$work/seen-$t.txt") $short" >>"$capraw"
done
log "capture: $(tr '\n' ';' <"$capraw")"

# ---- 4. delivery latency at a modest rate, and wakeups when idle ----
f=$work/lat.jsonl
start_tool portghost "$f"
"$LATENCY" "$f" "$((secs * 2))" >"$work/lat.txt" &
lat_pid=$!
sleep 0.2
"$CHURN" udp --threads 1 --rate 500 --seconds "$((secs * 2 - 1))" >/dev/null
wait "$lat_pid" || true
latency=$(cat "$work/lat.txt")
log "latency: $latency"
switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ { s += $2 } END { print s + 0 }'; }
sleep 1
w0=$(switches "$TOOL_PID"); sleep "$secs"; w1=$(switches "$TOOL_PID")
stop_tool
wakeups=$(awk -v a="$w0" -v b="$w1" -v s="$secs" 'BEGIN { printf "%.1f", (b - a) / s }')
log "idle: $wakeups wakeups/s"

# ---- 5. start time and memory with 100,000 ports held ----
starts=()
for _ in 1 2 3; do
  f=$work/start.jsonl; : >"$f"
  t0=$(date +%s%N)
  "$PG" trace -o "$f" --no-existing 2>/dev/null & TOOL_PID=$!
  wait_for "$f" '"type":"start"'
  starts+=($((($(date +%s%N) - t0) / 1000000)))
  stop_tool
done
start_ms=$(printf '%s\n' "${starts[@]}" | median)
log "start record after ${starts[*]} ms"
hold=100000; [ $smoke -eq 1 ] && hold=5000
f=$work/hold.jsonl
per=$(( (hold + 5) / 6 ))
hold_secs=$((secs + 4))
# the kernel's unreclaimable slab grown by the holders, in kB: measured once
# without the tracer and once with it, the difference is the socket storage
# the tracer adds per held port (outside kernel_maps_bytes)
unreclaim() { awk '/SUnreclaim/ { print $2 }' /proc/meminfo; }
hold_ports() {
  local before; before=$(unreclaim)
  for _ in 1 2 3 4 5 6; do "$CHURN" hold --count "$per" --seconds "$hold_secs" >>"$work/hold.txt" & done
  sleep $((hold_secs - 1))
  HOLD_SLAB_KB=$(($(unreclaim) - before))
}
wait_holders() { wait $(jobs -p | grep -vx -e "${TOOL_PID:-none}" -e "${REDIS_PID:-none}") 2>/dev/null || true; }
TOOL_PID=""; hold_ports; slab_off=$HOLD_SLAB_KB; wait_holders; : >"$work/hold.txt"
start_tool portghost "$f"
hold_ports; slab_on=$HOLD_SLAB_KB
held=$(grep -c '"type":"assign"' "$f" || true)
maps_bytes=$(head -1 "$f" | grep -o '"kernel_maps_bytes":[0-9]*' | cut -d: -f2)
rss_kb=$(awk '/VmRSS/ { print $2 }' "/proc/$TOOL_PID/status")
# the holders only: the tracer and the redis server are jobs too
wait_holders
hwm_kb=$(awk '/VmHWM/ { print $2 }' "/proc/$TOOL_PID/status")
stop_tool
storage_b=$(((slab_on - slab_off) * 1024 / (held > 0 ? held : 1)))
log "memory: $held ports held: RSS $((rss_kb / 1024)) MiB, high-water $((hwm_kb / 1024)) MiB; kernel maps ${maps_bytes} B; socket storage ${storage_b} B a port (slab +${slab_off} kB untraced, +${slab_on} kB traced)"

# ---- 6. userspace cost per record, replayed from a recording ----
f=$work/rec.jsonl
start_tool portghost "$f" --raw-dump "$work/raw.bin"
"$CHURN" udp --threads 1 --rate 20000 --seconds 2 >/dev/null
"$CHURN" tcp --threads 1 --rate 5000 --seconds 1 >/dev/null
stop_tool
replays=()
for _ in 1 2 3 4 5; do
  l=$("$REPLAY" "$work/raw.bin" --out "$work/replay.jsonl" --repeat 3); rm -f "$work/replay.jsonl"
  replays+=("$(kv ns_per_record "$l")")
done
replay_ns=$(printf '%s\n' "${replays[@]}" | median)
records=$(kv records "$l")
instr=-
if [ $smoke -eq 0 ]; then
  instr=$(valgrind --tool=callgrind --toggle-collect='*replay_records*' --callgrind-out-file="$work/cg.out" \
            "$REPLAY" "$work/raw.bin" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p')
  instr=$((instr / (records / 3)))
fi
log "replay: ${replays[*]} ns/record (median $replay_ns), $instr instructions/record"

fi  # only the overhead

# the scalar figures, for the targets' table (scripts/bench/targets.py)
{
  echo "seconds $secs"
  echo "masquerade $masq"
  if [ $only -eq 0 ]; then
    echo "replay_ns $replay_ns"
    echo "latency_p99_ms $(kv p99_ms "$latency")"
    echo "rss_kb $rss_kb"
    echo "held $held"
    echo "kernel_maps_bytes $maps_bytes"
    echo "storage_bytes_per_port $storage_b"
  fi
} >"$out/figures.txt"

# ---- results ----
res=$out/results.md
{
  echo "## Results ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, Linux $(uname -r))"
  echo
  echo "Command: \`scripts/bench.sh$([ $smoke -eq 1 ] && echo " --smoke") --reps $reps --seconds $secs$([ $masq -eq 1 ] && echo " --masquerade")$([ $only -eq 1 ] && echo " --overhead-only")\`"
  echo
  [ $masq -eq 1 ] && echo "Host: conntrack active (a masquerade rule in the root namespace, for a subnet nothing here uses)." && echo
  echo
  echo "### Workload overhead (medians of $reps interleaved runs of ${secs} s, $(nproc) threads)"
  echo
  echo "| loop | tool | ops/s | slowdown | CPU ns/op | CPU/op vs baseline | tool CPU s | records | lost |"
  echo "|---|---|---|---|---|---|---|---|---|"
  # the loops of the run, then those of its pass with a masquerade rule
  for loop in "${loops[@]}" $(awk '$1 ~ /-masq$/ { print $1 }' "$raw" | sort -u); do
    bops=$(awk -v l="$loop" '$1 == l && $2 == "baseline" { print $4 }' "$raw" | median)
    bcpu=$(awk -v l="$loop" '$1 == l && $2 == "baseline" { print $5 }' "$raw" | median)
    for tool in $(printf '%s\n' "${tools[@]}" portghost-nonat | awk '!seen[$0]++'); do
      grep -q "^$loop $tool " "$raw" || continue  # (portghost-nonat: when run)
      ops=$(awk -v l="$loop" -v t="$tool" '$1 == l && $2 == t { print $4 }' "$raw" | median)
      cpu=$(awk -v l="$loop" -v t="$tool" '$1 == l && $2 == t { print $5 }' "$raw" | median)
      tcpu=$(awk -v l="$loop" -v t="$tool" '$1 == l && $2 == t { print $6 }' "$raw" | median)
      recs=$(awk -v l="$loop" -v t="$tool" '$1 == l && $2 == t && $7 != "-" { print $7 }' "$raw" | median)
      lost=$(awk -v l="$loop" -v t="$tool" '$1 == l && $2 == t && $8 != "-" { s += $8; n++ } END { print (n ? s : "-") }' "$raw")
      slow=$(awk -v a="$ops" -v b="$bops" 'BEGIN { printf "%.1f%%", (1 - a / b) * 100 }')
      cpur=$(awk -v a="$cpu" -v b="$bcpu" 'BEGIN { printf "%+.1f%%", (a / b - 1) * 100 }')
      [ "$recs" = nan ] && recs=-
      echo "| $loop | $tool | $ops | $slow | $cpu | $cpur | $tcpu | $recs | $lost |"
      echo "$loop $tool $(awk -v a="$ops" -v b="$bops" 'BEGIN { printf "%.2f", (1 - a / b) * 100 }')" >>"$work/plot.txt"
    done
  done
  if [ $only -eq 0 ]; then
  echo
  echo "### Zero-loss rate (portghost alone, UDP churn paced to a rate; 8 MiB ring buffer)"
  echo
  echo "| events/s asked | seconds | ops/s done | records written | records/s | lost | portghost CPU s |"
  echo "|---|---|---|---|---|---|---|"
  grep -v '^#' "$lossraw" | while read -r t s o r l c rs; do echo "| $t | $s | $o | $r | $rs | $l | $c |"; done
  echo
  echo "### Capture of ports that lived < 1 ms (one run, every tool watching)"
  echo
  head -1 "$capraw" | sed 's/^# tool caught of_short_lived //'
  echo
  echo "| tool | caught | of | rate |"
  echo "|---|---|---|---|"
  grep -v '^#' "$capraw" | while read -r t c n; do echo "| $t | $c | $n | $(awk -v c="$c" -v n="$n" 'BEGIN { printf "%.1f%%", n ? c * 100 / n : 0 }') |"; done
  echo
  echo "### portghost alone"
  echo
  echo "| measure | value |"
  echo "|---|---|"
  echo "| delivery latency, event to line in the file (500 UDP ops/s) | $latency |"
  echo "| wakeups per second, idle | $wakeups |"
  echo "| exec to the start record (median of 3) | ${start_ms} ms |"
  echo "| RSS with $held ports held | $((rss_kb / 1024)) MiB (high-water $((hwm_kb / 1024)) MiB) |"
  echo "| kernel memory of the maps (start record's \`kernel_maps_bytes\`) | $((maps_bytes / 1048576)) MiB ($maps_bytes B) |"
  echo "| kernel socket storage per held port (slab, traced minus untraced hold) | $storage_b B ($(((slab_on - slab_off) / 1024)) MiB for $held ports) |"
  echo "| userspace CPU per record, replay (median of 5) | ${replay_ns} ns |"
  echo "| instructions per record, callgrind replay | $instr |"
  fi
  echo
  python3 scripts/bench/targets.py "$out"
} >"$res"
cp "$work/plot.txt" "$out/plot.txt"
if command -v gnuplot >/dev/null && [ $smoke -eq 0 ]; then
  awk '{ print $1, $2, $3 }' "$out/plot.txt" >"$work/p.dat"
  gnuplot <<GP
set terminal pngcairo size 900,500 font ",11"
set output "$out/overhead.png"
set title "Workload slowdown with each tracer attached ($(nproc) CPUs, medians of $reps runs)"
set ylabel "ops/s lost vs. no tracer (%)"
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set key top left
set grid ytics
set yrange [0:*]
plot for [t in "control portghost tcplife bpftrace"] "< awk '\$2==\"".t."\"' $work/p.dat" using 3:xtic(1) title t
GP
fi
log "results in $res"
cat "$res"

if [ $smoke -eq 1 ]; then
  # loose bounds: the programs ran, nothing was lost at a low rate, every
  # short-lived port was caught
  fail=0
  grep -v '^#' "$raw" | awk '$4 <= 0 { exit 1 }' || { log "FAIL: a loop did no work"; fail=1; }
  awk '!/^#/ && $5 != 0 { exit 1 }' "$lossraw" || { log "FAIL: records lost at a low rate"; fail=1; }
  awk '$1 == "portghost" && $2 != $3 { exit 1 }' "$capraw" || { log "FAIL: portghost missed a short-lived port"; fail=1; }
  [ "$held" -ge "$hold" ] || { log "FAIL: $held of $hold held ports reported"; fail=1; }
  exit $fail
fi
