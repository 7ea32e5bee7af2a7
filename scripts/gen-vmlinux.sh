#!/usr/bin/env bash
# Regenerate the pinned vmlinux.h from this machine's kernel BTF.
# The build never does this: it uses the checked-in header, so building needs
# no BTF on the build host, and CO-RE relocates to the running kernel at load.
set -euo pipefail
cd "$(dirname "$0")/.."
arch=$(uname -m)
btf=${1:-/sys/kernel/btf/vmlinux}
[ -r "$btf" ] || { echo "gen-vmlinux: no BTF at $btf" >&2; exit 1; }
mkdir -p "vmlinux/$arch"
bpftool btf dump file "$btf" format c > "vmlinux/$arch/vmlinux.h.tmp"
mv "vmlinux/$arch/vmlinux.h.tmp" "vmlinux/$arch/vmlinux.h"
echo "wrote vmlinux/$arch/vmlinux.h from $btf ($(uname -r))"
