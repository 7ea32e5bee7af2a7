#!/usr/bin/env bash
# Install portghost's build and test dependencies (Debian/Ubuntu). Idempotent:
# does nothing, and asks no package server, when everything is present.
#   scripts/deps.sh          build and test
#   scripts/deps.sh bench    also what scripts/bench.sh compares and plots with
#   scripts/deps.sh vmtest   also what scripts/vmtest.sh boots a guest kernel with
set -euo pipefail
PKGS=(clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev libcli11-dev libspdlog-dev
      libfmt-dev libsimdjson-dev libcurl4-openssl-dev libssl-dev libdeflate-dev libnetfilter-conntrack-dev libgtest-dev nlohmann-json3-dev liburing-dev cmake make g++ pkg-config
      libclang-rt-dev iproute2 clang-format clang-tidy git clickhouse-server nftables openssl)
if [ "${1:-}" = bench ]; then
  PKGS+=(libbpf-tools bpftrace gnuplot-nox iproute2 valgrind procps redis-server redis-tools conntrack)
fi
if [ "${1:-}" = vmtest ]; then
  PKGS+=(qemu-system-x86 busybox-static cpio xz-utils zstd apt iproute2)
fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "portghost: missing packages: ${missing[*]} (run as root to install them)" >&2
  exit 1
fi
echo "portghost: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
