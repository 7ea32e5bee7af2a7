#!/usr/bin/env bash
# What following NAT translations costs: connections per second from a
# "container" namespace to a "server" namespace through a "host" namespace
# that masquerades them (tests/integration/nat_topology.sh; every address in
# 198.18.0.0/15, inside namespaces made here), with no tracer, with
# portghost told not to follow NAT (--no-nat), and with portghost joining
# every translation (the default). Interleaved repetitions, medians.
#
#   scripts/bench-nat.sh [--reps N] [--seconds S] [--rate CONN_PER_S] [--out DIR]
#   scripts/bench-nat.sh --smoke    one short repetition, loose checks
#
# Writes DIR/results.md (default build/bench-nat). Runs as root.
set -euo pipefail
cd "$(dirname "$0")/.."

reps=5 secs=3 out=build/bench-nat smoke=0 rate=
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) reps=$2; shift ;;
    --seconds) secs=$2; shift ;;
    --out) out=$2; shift ;;
    --rate) rate=$2; shift ;;
    --smoke) smoke=1 reps=1 secs=1 ;;
    *) echo "bench-nat.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
if [ "$(id -u)" -ne 0 ]; then
  echo "bench-nat.sh: must run as root (namespaces, NAT, BPF)" >&2
  exit $([ $smoke -eq 1 ] && echo 77 || echo 1)
fi
if pgrep -x portghost >/dev/null; then
  echo "bench-nat.sh: portghost is already running: stop it first" >&2
  exit 1
fi
if [ $smoke -eq 0 ]; then ./scripts/deps.sh bench; fi  # conntrack(8), to flush the table between runs
./scripts/build.sh >/dev/null 2>&1
PG=$PWD/build/portghost CHURN=$PWD/build/tests/pg_churn TOPO=$PWD/tests/integration/nat_topology.sh
name=pgbn$$
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
server=""
trap 'kill $(jobs -p) $server 2>/dev/null || true; "$TOPO" down $name; rm -rf "$work"' EXIT
"$TOPO" up $name
ns() { nsenter --net=/run/netns/$name-$1 "${@:2}"; }
log() { echo "bench-nat: $*" >&2; }
kv() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2"; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR ? (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) : "nan") }'; }
hz=$(getconf CLK_TCK)
cpu_of() { awk -v hz="$hz" '{ print ($14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# the server, for the whole run
nsenter --net=/run/netns/$name-srv "$CHURN" serve --port 7000 --seconds 3600 >/dev/null &
server=$!
sleep 0.3
raw=$work/raw.txt
tools=(none no-nat nat)
for rep in $(seq "$reps"); do
  # the order rotates from one repetition to the next
  for k in 0 1 2; do
    tool=${tools[$(( (k + rep) % 3 ))]}
    # the last run's translations gone (RST: 10 s in conntrack otherwise)
    ns host conntrack -F 2>/dev/null || true
    pid="" f=$work/$tool.$rep.jsonl
    if [ "$tool" != none ]; then
      extra=()
      [ "$tool" = no-nat ] && extra=(--no-nat)
      # not through ns(): $! must be the tracer itself (nsenter execs it)
      nsenter --net=/run/netns/$name-host "$PG" trace -o "$f" --no-existing "${extra[@]}" 2>"$f.err" &
      pid=$!
      for _ in $(seq 300); do grep -q '"type":"start"' "$f" 2>/dev/null && break; sleep 0.05; done
    fi
    c0=$([ -n "$pid" ] && cpu_of "$pid" || echo 0)
    line=$(ns ctr "$CHURN" tcp-rst --to 198.19.0.2:7000 --threads 2 --seconds "$secs" ${rate:+--rate "$rate"})
    c1=$([ -n "$pid" ] && cpu_of "$pid" || echo 0)
    nats=- unjoined=-
    if [ -n "$pid" ]; then
      kill -TERM "$pid"  # (a background job ignores SIGINT)
      wait "$pid" || true
      nats=$(grep -c '"type":"nat"' "$f" || true)
      unjoined=$(tail -n1 "$f" | grep -o '"nat_unjoined":[0-9]*' | cut -d: -f2 || true)
      unjoined=${unjoined:--}
    fi
    tcpu=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.2f", b - a }')
    echo "$tool $rep $(kv ops_per_s "$line") $(kv cpu_ns_per_op "$line") $tcpu $(kv ops "$line") $nats $unjoined" >>"$raw"
    log "$tool rep $rep: $(kv ops_per_s "$line") conn/s, tracer CPU ${tcpu}s, nat records $nats, unjoined $unjoined"
  done
done

base=$(awk '$1 == "none" { print $3 }' "$raw" | median)
res=$out/results.md
{
  echo "## NAT: connections per second through MASQUERADE ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, Linux $(uname -r))"
  echo
  echo "Command: \`scripts/bench-nat.sh --reps $reps --seconds $secs${rate:+ --rate $rate}\`: \`pg_churn tcp-rst --to\` with 2 threads from the container namespace${rate:+, paced to $rate connections/s}, medians of $reps interleaved runs"
  echo
  echo "| tracer | conn/s | vs none | CPU ns/op (workload) | tracer CPU s | tracer CPU ns/conn | nat records / connections | unjoined |"
  echo "|---|---|---|---|---|---|---|---|"
  for tool in "${tools[@]}"; do
    ops=$(awk -v t="$tool" '$1 == t { print $3 }' "$raw" | median)
    cpu=$(awk -v t="$tool" '$1 == t { print $4 }' "$raw" | median)
    tcpu=$(awk -v t="$tool" '$1 == t { print $5 }' "$raw" | median)
    conns=$(awk -v t="$tool" '$1 == t { print $6 }' "$raw" | median)
    nats=$(awk -v t="$tool" '$1 == t && $7 != "-" { print $7 }' "$raw" | median)
    unj=$(awk -v t="$tool" '$1 == t && $8 != "-" { print $8 }' "$raw" | median)
    slow=$(awk -v a="$ops" -v b="$base" 'BEGIN { printf "%+.1f%%", (a / b - 1) * 100 }')
    per=$(awk -v t="$tool" '$1 == t && $6 > 0 { print $5 * 1e9 / $6 }' "$raw" | median)
    echo "| $tool | $ops | $slow | $cpu | $tcpu | ${per%.*} | $nats / $conns | $unj |"
  done
  echo
  echo "Raw: tool rep conn/s cpu_ns_per_op tracer_cpu_s connections nat_records unjoined"
  echo '```'
  cat "$raw"
  echo '```'
} >"$res"
cat "$res"
if [ $smoke -eq 1 ]; then
  # loose: the join works at all (each connection's translation written)
  nat_run=$(awk '$1 == "nat" { print $6, $7 }' "$raw" | head -1)
  set -- $nat_run
  [ "${2:-0}" -ge $(( ${1:-1} * 9 / 10 )) ] || { echo "bench-nat.sh: only ${2:-0} nat records for ${1:-?} connections" >&2; exit 1; }
fi
