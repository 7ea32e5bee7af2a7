#!/usr/bin/env bash
# The fleet path, measured: `portghost ship` sending a log to ClickHouse, and
# `portghost who --from clickhouse://` asking it as the table grows.
#
#   scripts/bench-fleet.sh [--records N] [--rows-target M] [--reps R]
#                          [--queries Q] [--batch B] [--out DIR]
#   scripts/bench-fleet.sh --smoke    20k records, 100k rows, 1 rep, 5 queries:
#                                     fails if shipping or who fails, or if who
#                                     answers from the store otherwise than from
#                                     the file (77 without clickhouse-server)
#
# Starts a ClickHouse server of its own (Debian's clickhouse-server, on
# loopback, free ports, a temporary directory), writes a synthetic log of N
# assigns (default 1,000,000: about 2N lines, with their releases), ships it
# R times (default 3) into fresh databases, then grows the last one
# server-side to about M rows (default 10,000,000: copies of the log under
# other host names) and times Q `who` queries (default 20) at each size.
# Writes DIR/fleet.md (default build/bench-fleet) and the raw measurements
# beside it, and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=0 records=1000000 rows_target=10000000 reps=3 queries=20 batch="" out=build/bench-fleet
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=1 records=20000 rows_target=100000 reps=1 queries=5 ;;
    --records) records=$2; shift ;;
    --rows-target) rows_target=$2; shift ;;
    --reps) reps=$2; shift ;;
    --queries) queries=$2; shift ;;
    --batch) batch=$2; shift ;;
    --out) out=$2; shift ;;
    *) echo "usage: bench-fleet.sh [--records N] [--rows-target M] [--reps R] [--queries Q] [--batch B] [--out DIR] [--smoke]" >&2
       exit 2 ;;
  esac
  shift
done
for v in "$records" "$rows_target" "$reps" "$queries" ${batch:+"$batch"}; do
  [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "bench-fleet.sh: $v: a positive number expected" >&2; exit 2; }
done
SERVER=/usr/sbin/clickhouse-server
if [ ! -x "$SERVER" ]; then
  echo "bench-fleet.sh: $SERVER is not installed" >&2
  exit "$([ $smoke -eq 1 ] && echo 77 || echo 1)"  # 77: ctest's "skipped"
fi

./scripts/build.sh >/dev/null
PG=$PWD/build/portghost
MKLOG=$PWD/build/tests/pg_mklog
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
CH_PID=""
stop_server() {
  [ -n "$CH_PID" ] || return 0
  kill -TERM "$CH_PID" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$CH_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$CH_PID" 2>/dev/null || true
  wait "$CH_PID" 2>/dev/null || true
  CH_PID=""
}
trap 'stop_server; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM HUP
hz=$(getconf CLK_TCK)

log() { echo "bench-fleet: $*" >&2; }
now_ns() { date +%s%N; }
# kv KEY LINE: the value of KEY=... in a key=value line
kv() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2"; }
# CPU clock ticks a process has used so far (all threads)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# nearest-rank percentile P of the numbers on stdin
pct() { sort -g | awk -v p="$1" '{ v[NR] = $1 } END { if (NR == 0) { print "nan"; exit } k = int(NR * p / 100); if (k < NR * p / 100) k++; if (k < 1) k = 1; print v[k] }'; }
# a time in ns as unix seconds with nine decimals (what --at reads)
secs() { printf '%d.%09d' $(($1 / 1000000000)) $(($1 % 1000000000)); }

# ---- the server: its own directory, user and ports ----
ch=$work/clickhouse
mkdir -p "$ch/data" "$ch/tmp" "$ch/user_files"
password=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
printf 'user=bench\npassword=%s\n' "$password" >"$work/credentials"
printf 'user = "bench:%s"\n' "$password" >"$work/curl.conf"  # the secret off the command line
chmod 600 "$work/credentials" "$work/curl.conf"
write_config() {  # HTTP_PORT TCP_PORT
  cat >"$ch/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>$ch/server.log</log><errorlog>$ch/server.err.log</errorlog><console>0</console></logger>
  <http_port>$1</http_port>
  <tcp_port>$2</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>$ch/data/</path>
  <tmp_path>$ch/tmp/</tmp_path>
  <user_files_path>$ch/user_files/</user_files_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>536870912</mark_cache_size>
  <mlock_executable>false</mlock_executable>
</yandex>
XML
  # log_queries: what each SQL statement of who read and how long it took
  local access="<networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota>"
  cat >"$ch/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage><log_queries>1</log_queries></default></profiles>
  <users>
    <default><password></password>$access</default>
    <bench><password>$password</password>$access</bench>
  </users>
  <quotas><default></default></quotas>
</yandex>
XML
}
HTTP=""
# The ports were free when picked, but another process may take one before
# the server binds it: then the server exits, and we try others. Ready when
# it answers our user (a server that is not ours does not know it).
start_server() {
  local tcp
  for _ in 1 2 3; do
    read -r HTTP tcp < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')
    write_config "$HTTP" "$tcp"
    (cd "$ch" && exec "$SERVER" --config-file="$ch/config.xml" >"$ch/out.log" 2>&1) &
    CH_PID=$!
    for _ in $(seq 600); do
      kill -0 "$CH_PID" 2>/dev/null || break
      [ "$(curl -s -K "$work/curl.conf" "http://127.0.0.1:$HTTP/?query=SELECT%201" 2>/dev/null)" = 1 ] && return 0
      sleep 0.05
    done
    kill -KILL "$CH_PID" 2>/dev/null || true
    wait "$CH_PID" 2>/dev/null || true
    CH_PID=""
  done
  log "ClickHouse did not start"
  tail -n 20 "$ch"/*.log >&2 || true
  return 1
}
# chq SQL: the server's answer; fails (the script stops) on an error answer
chq() {
  local code
  code=$(curl -sS -K "$work/curl.conf" -o "$work/answer" -w '%{http_code}' --data-binary @- \
           "http://127.0.0.1:$HTTP/" <<<"$1") || { log "no answer to: ${1:0:300}"; return 1; }
  if [ "$code" != 200 ]; then
    log "ClickHouse answered HTTP $code to: ${1:0:300}"
    head -c 2000 "$work/answer" >&2
    return 1
  fi
  cat "$work/answer"
}
# the table, as `portghost schema clickhouse` writes it, one statement a request
create_schema() {  # DB
  local s stmt
  s="$("$PG" schema clickhouse --database "$1")"$'\n'
  while [[ $s == *$';\n'* ]]; do
    stmt=${s%%$';\n'*}
    s=${s#*$';\n'}
    chq "$stmt" >/dev/null
  done
}
# waits until no merge runs on DB, and none did for a second (at most 10 min)
settle() {
  local quiet=0
  for _ in $(seq 600); do
    if [ "$(chq "SELECT count() FROM system.merges WHERE database = '$1'")" = 0 ]; then
      quiet=$((quiet + 1))
      [ $quiet -ge 2 ] && return 0
    else
      quiet=0
    fi
    sleep 1
  done
  log "merges still running on $1 after 10 minutes"
}
parts_col=bytes_on_disk
start_server
[ "$(chq "SELECT count() FROM system.columns WHERE database = 'system' AND table = 'parts' AND name = 'bytes_on_disk'")" = 1 ] ||
  parts_col=bytes
# stored: "bytes rows parts line_bytes" of DB's table (active parts; the
# line column's compressed bytes)
stored() {
  local p l
  p=$(chq "SELECT sum($parts_col), sum(rows), count() FROM system.parts WHERE active AND database = '$1' AND table = 'records' FORMAT TSV")
  l=$(chq "SELECT sum(data_compressed_bytes) FROM system.columns WHERE database = '$1' AND table = 'records' AND name = 'line'")
  echo "$p $l" | tr '\t' ' '
}
ch_version=$(chq "SELECT version()")
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
log "ClickHouse $ch_version on 127.0.0.1:$HTTP (pid $CH_PID); load average $load_start"

# ---- the log ----
mkdir -p "$work/log"
LOG=$work/log/events.jsonl
gen=$("$MKLOG" "$LOG" "$records")
lines=$(kv lines "$gen")
log_bytes=$(stat -c %s "$LOG")
ts_of() { grep -o '"ts_ns":[0-9]*' | head -1 | cut -d: -f2; }
first_ns=$(head -n1 "$LOG" | ts_of)
last_ns=$(tail -n1 "$LOG" | ts_of)
span_ns=$((last_ns - first_ns))
log "log: $lines lines ($gen), $log_bytes bytes, $((span_ns / 1000000000)) s of records"

fail=0
# ---- 1. ship: the whole log into a fresh database, R times ----
shipraw=$out/ship.txt
echo "# rep lines sent stored wall_ms shipper_user_s shipper_sys_s server_cpu_s" >"$shipraw"
batch_args=()
[ -n "$batch" ] && batch_args=(--batch "$batch")
db=""
for rep in $(seq "$reps"); do
  [ -n "$db" ] && chq "DROP DATABASE $db" >/dev/null  # its merges would compete with this run
  db=bench_$rep
  create_schema "$db"
  rm -f "$work/ship.state"
  cat "$LOG" >/dev/null  # warm the page cache: measure shipping, not the disk
  c0=$(cpu_ticks "$CH_PID")
  t0=$(now_ns)
  rc=0
  # `times` in the subshell: the shipper's user and system time
  ( set +e
    "$PG" ship "$LOG" --to "clickhouse://127.0.0.1:$HTTP/$db" --credentials "$work/credentials" --once \
      --state "$work/ship.state" "${batch_args[@]}" 2>"$work/ship.err"
    r=$?
    times >"$work/ship.times"
    exit $r ) || rc=$?
  t1=$(now_ns)
  c1=$(cpu_ticks "$CH_PID")
  sent=$(sed -n 's/^portghost ship: \([0-9]*\) records sent.*/\1/p' "$work/ship.err" | tail -n1)
  rows=$(chq "SELECT count() FROM $db.records")
  if [ $rc -ne 0 ] || [ "${sent:-0}" != "$lines" ] || [ "$rows" != "$lines" ]; then
    log "FAIL: ship exited $rc, sent ${sent:-nothing} of $lines lines, the table holds $rows"
    cat "$work/ship.err" >&2
    fail=1
  fi
  # times: the shell's line, then its children's: "0m1.234s 0m0.056s"
  read -r u s < <(sed -n 2p "$work/ship.times" | awk '{ split($1, a, /[ms]/); split($2, b, /[ms]/); print a[1] * 60 + a[2], b[1] * 60 + b[2] }')
  wall_ms=$(((t1 - t0) / 1000000))
  server_s=$(awk -v a="$c0" -v b="$c1" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz }')
  echo "$rep $lines ${sent:-0} $rows $wall_ms $u $s $server_s" >>"$shipraw"
  log "ship rep $rep: ${sent:-0} records in $wall_ms ms ($(awk -v n="${sent:-0}" -v ms="$wall_ms" 'BEGIN { printf "%.0f", n * 1000 / ms }') records/s), shipper ${u}s user ${s}s sys, server ${server_s}s CPU"
done

# ---- 1b. the shipper alone: a sink that acknowledges every batch ----
# What the shipper sends when ClickHouse runs elsewhere (as in a fleet): the
# same log, the same shipper, a stand-in server that only reads and says 200.
sinkraw=$out/ship-sink.txt
echo "# rep lines sent wall_ms shipper_user_s shipper_sys_s" >"$sinkraw"
sink_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$PG" schema clickhouse --database sinkdb >"$work/schema.sql"
python3 "$(dirname "$0")/bench/fleet_sink.py" "$sink_port" "$work/schema.sql" &
sink_pid=$!
for _ in $(seq 100); do curl -s "http://127.0.0.1:$sink_port/" >/dev/null && break; sleep 0.1; done
for rep in $(seq "$reps"); do
  rm -f "$work/sink.state"
  t0=$(now_ns)
  rc=0
  ( set +e
    "$PG" ship "$LOG" --to "clickhouse://127.0.0.1:$sink_port/sinkdb" --credentials "$work/credentials" --once \
      --state "$work/sink.state" "${batch_args[@]}" 2>"$work/sink.err"
    r=$?
    times >"$work/sink.times"
    exit $r ) || rc=$?
  t1=$(now_ns)
  sent=$(sed -n 's/^portghost ship: \([0-9]*\) records sent.*/\1/p' "$work/sink.err" | tail -n1)
  if [ $rc -ne 0 ] || [ "${sent:-0}" != "$lines" ]; then
    log "FAIL: ship to the sink exited $rc, sent ${sent:-nothing} of $lines lines"
    cat "$work/sink.err" >&2
    fail=1
  fi
  read -r u s < <(sed -n 2p "$work/sink.times" | awk '{ split($1, a, /[ms]/); split($2, b, /[ms]/); print a[1] * 60 + a[2], b[1] * 60 + b[2] }')
  wall_ms=$(((t1 - t0) / 1000000))
  echo "$rep $lines ${sent:-0} $wall_ms $u $s" >>"$sinkraw"
  log "ship to a sink, rep $rep: ${sent:-0} records in $wall_ms ms ($(awk -v n="${sent:-0}" -v ms="$wall_ms" 'BEGIN { printf "%.0f", n * 1000 / ms }') records/s), shipper ${u}s user ${s}s sys"
done
kill "$sink_pid" 2>/dev/null || true
wait "$sink_pid" 2>/dev/null || true

# ---- 2. bytes stored per record, as shipped and after OPTIMIZE FINAL ----
settle "$db"
read -r b_ship r_ship p_ship l_ship <<<"$(stored "$db")"
t0=$(now_ns)
chq "OPTIMIZE TABLE $db.records FINAL" >/dev/null
optimize_ms=$((($(now_ns) - t0) / 1000000))
settle "$db"
read -r b_opt r_opt p_opt l_opt <<<"$(stored "$db")"
log "stored: $b_ship bytes in $p_ship parts as shipped (merges settled), $b_opt bytes in $p_opt after OPTIMIZE FINAL ($optimize_ms ms), $r_opt rows"

# ---- 3. who, as the table grows ----
# The table grows by copies of the shipped rows under other host names
# (bench-1, bench-2, ...: host and the host in line), every other column as
# it is; `who` is timed at several sizes.
base=$r_opt
mult=$(((rows_target + base / 2) / base))
[ $mult -ge 1 ] || mult=1
if [ $mult -le 6 ]; then
  points=$(seq 1 "$mult")
else
  points=$(printf '%s\n' 1 $((mult / 4)) $((mult / 2)) $((mult * 3 / 4)) "$mult" | sort -nu)
fi
cols=$(chq "SELECT name FROM system.columns WHERE database = '$db' AND table = 'records' AND default_kind != 'MATERIALIZED' FORMAT TSV" | tr '\n' ' ')
cols=${cols% }
copy_sql() {  # K: the shipped rows once more, as host bench-K
  local k=$1 sel="" c e
  for c in $cols; do
    case $c in
      host) e="concat('bench-', toString($k))" ;;
      line) e="replaceOne(line, '\"host\":\"web-1\"', concat('\"host\":\"bench-', toString($k), '\"'))" ;;
      *) e=$c ;;
    esac
    sel+="${sel:+, }$e"
  done
  echo "INSERT INTO $db.records (${cols// /, }) SELECT $sel FROM $db.records WHERE host = 'web-1'"
}
whoraw=$out/who.txt
copyraw=$out/copies.txt
sqlraw=$out/who-sql.txt
echo "# rows parts shape port instant host wall_ms rc answer_lines" >"$whoraw"
echo "# copy rows_after wall_ms" >"$copyraw"
echo "# rows statement runs median_ms median_read_rows median_read_bytes" >"$sqlraw"
shapes=(at+host at window+host)
RANDOM=42
for k in $(seq 1 "$mult"); do
  if [ "$k" -gt 1 ]; then
    t0=$(now_ns)
    chq "$(copy_sql $((k - 1)))" >/dev/null
    ms=$((($(now_ns) - t0) / 1000000))
    echo "$((k - 1)) $(chq "SELECT count() FROM $db.records") $ms" >>"$copyraw"
  fi
  grep -qx "$k" <<<"$points" || continue
  settle "$db"
  read -r _ rows parts _ <<<"$(stored "$db")"
  log "who at $rows rows ($parts parts): $queries queries"
  chq "SYSTEM FLUSH LOGS" >/dev/null
  mark=$(chq "SELECT toUnixTimestamp(now())")
  sleep 1  # the query log's times are in whole seconds: this size's statements only
  for i in $(seq 0 $((queries - 1))); do
    shape=${shapes[$((i % 3))]}
    port=$((40001 + RANDOM % 1999))
    at=$((first_ns + ((RANDOM << 30) | (RANDOM << 15) | RANDOM) % span_ns))
    j=$((RANDOM % k))
    host=web-1
    [ $j -gt 0 ] && host=bench-$j
    case $shape in
      at+host) args=(--at "$(secs $at)" --host "$host") ;;
      at) args=(--at "$(secs $at)"); host=- ;;
      window+host) args=(--since "$(secs $((at - 30000000000)))" --until "$(secs $((at + 30000000000)))" --host "$host") ;;
    esac
    t0=$(now_ns)
    rc=0
    "$PG" who "$port" "${args[@]}" --from "clickhouse://127.0.0.1:$HTTP/$db" --credentials "$work/credentials" \
      --format json >"$work/who.out" 2>"$work/who.err" || rc=$?
    t1=$(now_ns)
    ms=$(awk -v ns=$((t1 - t0)) 'BEGIN { printf "%.1f", ns / 1e6 }')
    echo "$rows $parts $shape $port $at $host $ms $rc $(wc -l <"$work/who.out")" >>"$whoraw"
    if [ $rc -ne 0 ]; then
      log "FAIL: who $port ${args[*]} exited $rc"
      cat "$work/who.err" >&2
      fail=1
    fi
  done
  # what each statement cost the server (who sends two: the sessions' last
  # times, then the records)
  chq "SYSTEM FLUSH LOGS" >/dev/null
  chq "SELECT concat(if(query LIKE '%max(ts_ns)%', 'sessions-last-times', 'records'),
                if(position(query, 'host = ') > 0, '/one-host', '/every-host')) AS statement, count(),
         quantileExact(0.5)(query_duration_ms), quantileExact(0.5)(read_rows), quantileExact(0.5)(read_bytes)
       FROM system.query_log
       WHERE type = 2 AND user = 'bench' AND event_time >= toDateTime($mark) AND query LIKE 'SELECT run, host, %'
       GROUP BY statement ORDER BY statement FORMAT TSV" | sed "s/^/$rows\t/" | tr '\t' ' ' >>"$sqlraw"
  if [ "$k" -eq 1 ]; then
    # the store answers as the file does
    p=$((40001 + RANDOM % 1999))
    a=$(secs $((first_ns + ((RANDOM << 30) | (RANDOM << 15) | RANDOM) % span_ns)))
    if ! cmp -s <("$PG" who "$p" --at "$a" --host web-1 --format json "$LOG" 2>&1) \
                <("$PG" who "$p" --at "$a" --host web-1 --format json --from "clickhouse://127.0.0.1:$HTTP/$db" \
                    --credentials "$work/credentials" 2>&1); then
      log "FAIL: who $p --at $a answers differently from the file and from the store"
      fail=1
    fi
  fi
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- results ----
res=$out/fleet.md
col() { awk -v c="$1" '!/^#/ { print $c }' "$shipraw"; }
ship_rps=$(awk '!/^#/ { print $3 * 1000 / $5 }' "$shipraw" | median)
ship_ms=$(col 5 | median)
ship_ns=$(awk '!/^#/ { print ($6 + $7) * 1e9 / $3 }' "$shipraw" | median)
server_ns=$(awk '!/^#/ { print $8 * 1e9 / $3 }' "$shipraw" | median)
cmd="scripts/bench-fleet.sh"
if [ $smoke -eq 1 ]; then cmd+=" --smoke"; else cmd+=" --records $records --rows-target $rows_target --reps $reps --queries $queries"; fi
[ -n "$batch" ] && cmd+=" --batch $batch"
{
  echo "## Fleet results ($(date -u +%Y-%m-%dT%H:%MZ))"
  echo
  echo "Command: \`$cmd\`"
  echo
  echo "Machine: $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)), Linux $(uname -r), ClickHouse $ch_version on loopback."
  echo "Load average at the start: $load_start; at the end: $load_end."
  echo
  echo "Log: $lines lines (${gen#lines=$lines }), $log_bytes bytes ($(awk -v b="$log_bytes" -v n="$lines" 'BEGIN { printf "%.0f", b / n }') bytes a line), $((span_ns / 1000000000)) s of records on ports 40000-41999."
  echo
  echo "### Shipping (\`portghost ship LOG --to clickhouse://... --once${batch:+ --batch $batch}\`, a fresh database each time, the log in the page cache)"
  echo
  echo "| rep | lines sent | wall ms | records/s | shipper CPU s (user + sys) | shipper CPU ns/record | server CPU s | server CPU ns/record |"
  echo "|---|---|---|---|---|---|---|---|"
  awk '!/^#/ { printf "| %s | %s | %s | %.0f | %.2f + %.2f | %.0f | %.2f | %.0f |\n", $1, $3, $5, $3 * 1000 / $5, $6, $7, ($6 + $7) * 1e9 / $3, $8, $8 * 1e9 / $3 }' "$shipraw"
  echo "| **median** | | $ship_ms | **$(printf '%.0f' "$ship_rps")** | | **$(printf '%.0f' "$ship_ns")** | | $(printf '%.0f' "$server_ns") |"
  echo
  echo "### The shipper alone (\`ship --once\` to a stand-in server that acknowledges every batch and does nothing else: ClickHouse on another machine)"
  echo
  echo "| rep | lines sent | wall ms | records/s | shipper CPU s (user + sys) | shipper CPU ns/record |"
  echo "|---|---|---|---|---|---|"
  awk '!/^#/ { printf "| %s | %s | %s | %.0f | %.2f + %.2f | %.0f |\n", $1, $3, $4, $3 * 1000 / $4, $5, $6, ($5 + $6) * 1e9 / $3 }' "$sinkraw"
  echo
  echo "### Bytes per record"
  echo
  echo "| where | bytes | rows | parts | bytes/record | of which the line column |"
  echo "|---|---|---|---|---|---|"
  echo "| the log (JSON Lines) | $log_bytes | $lines | | $(awk -v b="$log_bytes" -v n="$lines" 'BEGIN { printf "%.1f", b / n }') | |"
  echo "| ClickHouse, as shipped (merges settled) | $b_ship | $r_ship | $p_ship | $(awk -v b="$b_ship" -v n="$r_ship" 'BEGIN { printf "%.1f", b / n }') | $(awk -v b="$l_ship" -v n="$r_ship" 'BEGIN { printf "%.1f", b / n }') |"
  echo "| ClickHouse, after OPTIMIZE FINAL ($optimize_ms ms) | $b_opt | $r_opt | $p_opt | $(awk -v b="$b_opt" -v n="$r_opt" 'BEGIN { printf "%.1f", b / n }') | $(awk -v b="$l_opt" -v n="$r_opt" 'BEGIN { printf "%.1f", b / n }') |"
  echo
  echo "### Growing the table (INSERT ... SELECT of the shipped rows under another host name)"
  echo
  echo "| copy | rows after | ms |"
  echo "|---|---|---|"
  awk '!/^#/ { printf "| %s | %s | %s |\n", $1, $2, $3 }' "$copyraw"
  echo
  echo "### \`portghost who --from clickhouse://\` latency (wall time of the process; $queries queries a size, shapes in turn: \`--at T --host H\`, \`--at T\`, \`--since T-30s --until T+30s --host H\`; merges settled)"
  echo
  echo "| rows | parts | hosts | p50 ms | p90 ms | max ms | p50 at+host | p50 at (every host) | p50 window+host | failed |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  for rows in $(awk '!/^#/ { print $1 }' "$whoraw" | sort -nu); do
    sel() { awk -v r="$rows" -v s="$1" '!/^#/ && $1 == r && (s == "" || $3 == s) { print $7 }' "$whoraw"; }
    parts=$(awk -v r="$rows" '!/^#/ && $1 == r { print $2; exit }' "$whoraw")
    failed=$(awk -v r="$rows" '!/^#/ && $1 == r && $8 != 0 { n++ } END { print n + 0 }' "$whoraw")
    echo "| $rows | $parts | $(((rows + base / 2) / base)) | $(sel "" | median) | $(sel "" | pct 90) | $(sel "" | pct 100) | $(sel at+host | median) | $(sel at | median) | $(sel window+host | median) | $failed |"
  done
  echo
  echo "Per SQL statement \`who\` sends, with \`--host\` (one-host) or without (every-host) (server side, from system.query_log; medians):"
  echo
  echo "| rows | statement | runs | ms | rows read | bytes read |"
  echo "|---|---|---|---|---|---|"
  awk '!/^#/ { printf "| %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6 }' "$sqlraw"
} >"$res"
log "results in $res"
cat "$res"
if [ $fail -ne 0 ]; then log "FAIL: see above"; fi
exit $fail
