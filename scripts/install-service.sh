#!/usr/bin/env bash
# Builds portghost and installs it as a systemd service that always runs:
#   /usr/local/bin/portghost, /etc/systemd/system/portghost.service,
#   log in /var/log/portghost/events.jsonl (rotated by portghost itself).
# With --ship clickhouse://HOST[:PORT]/DB, also portghost-ship.service, which
# sends that log to ClickHouse (credentials: /etc/portghost/clickhouse.conf);
# clickhouses:// for TLS, with --ca-file FILE when a private CA signed the
# server's certificate.
# Idempotent. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: install-service.sh [--ship clickhouse[s]://HOST[:PORT]/DATABASE [--ca-file /ABSOLUTE/CA.pem]]"
ship="" ca=""
while [ $# -gt 0 ]; do
  case "$1" in
    --ship) ship="${2:?--ship needs clickhouse://HOST[:PORT]/DATABASE}"; shift 2 ;;
    --ca-file) ca="${2:?--ca-file needs a file}"; shift 2 ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "install-service: run as root" >&2; exit 1; }
if [ -n "$ca" ]; then
  case "$ship" in
    clickhouses://*) ;;
    *) echo "install-service: --ca-file is for --ship clickhouses://..." >&2; exit 2 ;;
  esac
  case "$ca" in
    /*[[:space:]\|]*|[!/]*) echo "install-service: --ca-file takes an absolute path without spaces" >&2; exit 2 ;;
  esac
  [ -f "$ca" ] || { echo "install-service: no CA file $ca" >&2; exit 1; }
fi
if [ -n "$ship" ]; then
  case "$ship" in
    clickhouse://*@*|clickhouses://*@*) echo "install-service: no credentials in the URL: put them in /etc/portghost/clickhouse.conf" >&2; exit 2 ;;
    clickhouse://*|clickhouses://*) ;;
    *) echo "install-service: --ship takes clickhouse://HOST[:PORT]/DATABASE (or clickhouses:// for TLS)" >&2; exit 2 ;;
  esac
  [ -f /etc/portghost/clickhouse.conf ] || {
    echo "install-service: write /etc/portghost/clickhouse.conf first (lines user=NAME and password=SECRET, mode 0600)" >&2
    exit 1
  }
fi
./scripts/build.sh >/dev/null
install -D -m 0755 build/portghost /usr/local/bin/portghost
install -D -m 0644 dist/portghost.service /etc/systemd/system/portghost.service
install -D -m 0644 README.md /usr/local/share/doc/portghost/README.md
install -D -m 0644 docs/clickhouse.md /usr/local/share/doc/portghost/clickhouse.md
if [ -n "$ship" ]; then
  sed "s|CLICKHOUSE_URL|$ship${ca:+ --ca-file $ca}|" dist/portghost-ship.service > /etc/systemd/system/portghost-ship.service
  chmod 0644 /etc/systemd/system/portghost-ship.service
fi
install -d -m 0750 /var/log/portghost
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable --now portghost.service
  systemctl restart portghost.service
  echo "portghost.service is running; log: /var/log/portghost/events.jsonl"
  if [ -n "$ship" ]; then
    systemctl enable --now portghost-ship.service
    systemctl restart portghost-ship.service
    echo "portghost-ship.service is running: the log goes to $ship"
  fi
else
  echo "installed; systemd is not running here, so the service was not started" >&2
fi
