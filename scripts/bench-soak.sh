#!/usr/bin/env bash
# Soak: portghost traces a steady, moderate workload for a long time; its
# memory and the kernel maps that grow with the workload must stay flat.
#
#   scripts/bench-soak.sh [--minutes M] [--rate OPS] [--out DIR]
#
# The workload: TCP connect+close and UDP autobind at OPS/2 operations per
# second each, plus a short-lived process started about every 20 ms (the
# process cache must forget them). Every 10 s it samples the tracer's RSS and
# CPU time, the sockets and processes it keeps in memory (its -v line, once a
# minute), and the entries of its BPF hash maps. Writes DIR/soak.tsv and a
# summary on stdout. Not part of the tests; runs as root. Default: 10
# minutes at 2,000 operations per second (4,000 records per second).
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=10 rate=2000 out=build/bench
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes=$2; shift ;;
    --rate) rate=$2; shift ;;
    --out) out=$2; shift ;;
    *) echo "bench-soak.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
if [ "$(id -u)" -ne 0 ]; then echo "bench-soak.sh: must run as root (it loads BPF programs)" >&2; exit 1; fi
if pgrep -x portghost >/dev/null; then echo "bench-soak.sh: portghost is already running: stop it first" >&2; exit 1; fi
./scripts/deps.sh bench
./scripts/build.sh >/dev/null
PG=$PWD/build/portghost
CHURN=$PWD/build/tests/pg_churn
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
hz=$(getconf CLK_TCK)
secs=$((minutes * 60))

"$PG" trace --format json -o "$work/events.jsonl" -v 2>"$work/stderr" &
pg=$!
for _ in $(seq 100); do grep -q '"type":"start"' "$work/events.jsonl" 2>/dev/null && break; sleep 0.1; done
grep -q '"type":"start"' "$work/events.jsonl" || { cat "$work/stderr" >&2; exit 1; }

"$CHURN" tcp --threads 1 --seconds "$secs" --rate $((rate / 2)) >"$work/tcp.out" &
tcp=$!
"$CHURN" udp --threads 1 --seconds "$secs" --rate $((rate / 2)) >"$work/udp.out" &
udp=$!
( end=$((SECONDS + secs)); while [ $SECONDS -lt $end ]; do /bin/true; sleep 0.02; done ) &
procs=$!

# BPF maps of the tracer: "NAME ENTRIES" for each hash map it holds
maps() {
  for id in $( (sed -n 's/^map_id:\s*//p' /proc/$pg/fdinfo/* 2>/dev/null || true) | sort -un); do
    local show name
    show=$(bpftool map show id "$id" 2>/dev/null | head -1 || true)
    case "$show" in *hash*) ;; *) continue ;; esac
    name=$(sed -n 's/.* name \([^ ]*\).*/\1/p' <<<"$show")
    # one raw "key":[...] per element, with or without BTF formatting
    echo "$name=$( (bpftool -j map dump id "$id" 2>/dev/null || true) | grep -o '"key":\[' | wc -l)"
  done | sort | tr '\n' ' '
}

printf 'seconds\trss_kib\tcpu_s\trecords\tsockets\tprocesses\tmaps\n' >"$out/soak.tsv"
t0=$SECONDS
while kill -0 $tcp 2>/dev/null || kill -0 $udp 2>/dev/null; do
  sleep 10
  if ! kill -0 $pg 2>/dev/null; then
    echo "bench-soak.sh: portghost ended early:" >&2
    cat "$work/stderr" >&2
    exit 1
  fi
  rss=$(awk '/^VmRSS/ { print $2 }' /proc/$pg/status)
  cpu=$(awk -v hz="$hz" '{ printf "%.1f", ($14 + $15) / hz }' /proc/$pg/stat)
  recs=$(wc -l <"$work/events.jsonl")
  mem=$( (grep 'in memory' "$work/stderr" || true) | tail -1 |
        sed -n 's/.*in memory: \([0-9]*\) sockets, \([0-9]*\) processes.*/\1\t\2/p')
  [ -n "$mem" ] || mem=$'-\t-'
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' $((SECONDS - t0)) "$rss" "$cpu" "$recs" "$mem" "$(maps)" | tee -a "$out/soak.tsv"
done
wait $tcp $udp
kill $procs 2>/dev/null || true
kill -INT $pg
wait $pg || { echo "bench-soak.sh: portghost exited with an error:" >&2; cat "$work/stderr" >&2; exit 1; }
stop=$(grep '"type":"stop"' "$work/events.jsonl" || echo "none")
ops=$(( $(sed -n 's/.*ops=\([0-9]*\).*/\1/p' "$work/tcp.out") + $(sed -n 's/.*ops=\([0-9]*\).*/\1/p' "$work/udp.out") ))

# RSS from the end of the first minute (caches warm) to the end
first=$(awk -F'\t' 'NR > 1 && $1 >= 60 { print $2; exit }' "$out/soak.tsv")
last=$(awk -F'\t' 'END { print $2 }' "$out/soak.tsv")
max=$(awk -F'\t' 'NR > 1 && $2 > m { m = $2 } END { print m }' "$out/soak.tsv")
echo
echo "soak: ${minutes} min, $ops operations, $(wc -l <"$work/events.jsonl") records"
echo "soak: RSS $first KiB at 1 min, $last KiB at the end (max $max KiB): grew $((last - first)) KiB"
echo "soak: portghost CPU $(awk -F'\t' 'END { print $3 }' "$out/soak.tsv") s of $((minutes * 60)) s"
echo "soak: stop record: $stop"
