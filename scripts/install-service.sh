#!/usr/bin/env bash
# Builds portghost and installs it as a systemd service that always runs:
#   /usr/local/bin/portghost, /etc/systemd/system/portghost.service,
#   log in /var/log/portghost/events.jsonl (rotated by portghost itself).
# Idempotent. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "install-service: run as root" >&2; exit 1; }
./scripts/build.sh >/dev/null
install -D -m 0755 build/portghost /usr/local/bin/portghost
install -D -m 0644 dist/portghost.service /etc/systemd/system/portghost.service
install -D -m 0644 README.md /usr/local/share/doc/portghost/README.md
install -d -m 0750 /var/log/portghost
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable --now portghost.service
  systemctl restart portghost.service
  echo "portghost.service is running; log: /var/log/portghost/events.jsonl"
else
  echo "installed; systemd is not running here, so the service was not started" >&2
fi
