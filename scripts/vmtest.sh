#!/usr/bin/env bash
# The root integration suite inside a qemu guest running Debian's stock
# kernel (the image linux-image-amd64 depends on, its -unsigned variant):
# a second kernel, with kprobes and fentry, next to the host's.
#
#   scripts/vmtest.sh [GTEST_FILTER]
#
# The package is fetched with apt-get download and unpacked with dpkg -x
# into the cache (PG_VMTEST_CACHE, default /var/cache/portghost/vmtest),
# never installed. The guest boots the uncompressed vmlinux (faster under
# TCG) with an initramfs of busybox, the test binaries at their build paths
# and the shared libraries they need; it mounts proc, sys, cgroup2, bpffs and
# tracefs, brings up lo and runs build/tests/integration_tests twice: with
# the fentry/fexit hooks this kernel allows, and forced to the syscall-exit
# fallback (--no-fentry). Its console
# is the serial port; the last line says the result. Exit 0 only when the
# suite ran and passed. Runs as root (dpkg -x keeps ownership).
set -euo pipefail
cd "$(dirname "$0")/.."
filter=${1:-*}
./scripts/deps.sh vmtest
./scripts/build.sh >/dev/null
cache=${PG_VMTEST_CACHE:-/var/cache/portghost/vmtest}
mkdir -p "$cache"
log() { echo "vmtest: $*" >&2; }

# ---- the kernel ----
image=$( (apt-cache depends linux-image-amd64 2>/dev/null || true) |
        sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -1)
[ -n "$image" ] || { log "cannot tell which kernel linux-image-amd64 depends on (apt-get update?)"; exit 1; }
pkg=$image-unsigned
kdir=$cache/$pkg
if [ ! -f "$kdir/vmlinux" ]; then
  deb=$(ls "$cache/${pkg}"_*.deb 2>/dev/null | head -1 || true)
  if [ -z "$deb" ]; then
    log "downloading $pkg"
    (cd "$cache" && apt-get download -q "$pkg" 2>&1 | grep -v "unsandboxed" >&2 || true)
    deb=$(ls "$cache/${pkg}"_*.deb 2>/dev/null | head -1 || true)
    [ -n "$deb" ] || { log "apt-get download $pkg failed"; exit 1; }
  fi
  rm -rf "$kdir.tmp" && mkdir -p "$kdir.tmp"
  dpkg -x "$deb" "$kdir.tmp/root"
  vmlinuz=$( (ls "$kdir.tmp"/root/boot/vmlinuz-* 2>/dev/null || true) | head -1)
  [ -n "$vmlinuz" ] || { log "no vmlinuz in $deb"; exit 1; }
  # the bzImage wraps an xz stream: the uncompressed ELF boots faster
  # (its magic is FD '7zXZ' 00: the first '7zXZ' is one byte into it)
  off=$( (LC_ALL=C grep -obUa '7zXZ' "$vmlinuz" || true) | head -1 | cut -d: -f1)
  [ -n "$off" ] || { log "no xz stream in $vmlinuz"; exit 1; }
  # the stream is followed by other data: read exactly one, and insist on it
  # (xz stops reading there, so tail may die of SIGPIPE: judge xz alone)
  set +o pipefail
  if ! tail -c +"$off" "$vmlinuz" | xz -dcq --single-stream >"$kdir.tmp/vmlinux"; then
    log "cannot decompress the kernel in $vmlinuz"
    exit 1
  fi
  set -o pipefail
  file_magic=$(head -c 4 "$kdir.tmp/vmlinux" | od -An -c | tr -d ' ')
  [ "$file_magic" = '177ELF' ] || { log "no ELF vmlinux inside $vmlinuz"; exit 1; }
  cp "$vmlinuz" "$kdir.tmp/vmlinuz"
  rm -rf "$kdir.tmp/root"
  rm -rf "$kdir" && mv "$kdir.tmp" "$kdir"
fi
kver=${image#linux-image-}
# the modules a vxlan device needs (the reconciliation test makes one) and
# SCTP (with the crc32c it checksums with), taken out of the same package;
# they are loaded in the guest at boot, in this order
mods=(kernel/net/ipv4/udp_tunnel.ko kernel/net/ipv6/ip6_udp_tunnel.ko kernel/drivers/net/vxlan/vxlan.ko
      kernel/crypto/crc32c_generic.ko kernel/lib/libcrc32c.ko kernel/net/sctp/sctp.ko)
have_mods=1
for m in "${mods[@]}"; do [ -f "$kdir/modules/$(basename "$m")" ] || have_mods=0; done
if [ $have_mods -eq 0 ]; then
  deb=$(ls "$cache/${pkg}"_*.deb 2>/dev/null | head -1 || true)
  [ -n "$deb" ] || { log "no $pkg package in $cache to take modules from"; exit 1; }
  rm -rf "$kdir/modules.tmp" && mkdir -p "$kdir/modules.tmp"
  paths=()
  for m in "${mods[@]}"; do paths+=("./lib/modules/$kver/$m"); done
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$kdir/modules.tmp" "${paths[@]}" ||
    { log "cannot take the modules out of $deb"; exit 1; }
  mkdir -p "$kdir/modules"
  for m in "${mods[@]}"; do mv "$kdir/modules.tmp/lib/modules/$kver/$m" "$kdir/modules/"; done
  rm -rf "$kdir/modules.tmp"
fi

# ---- the initramfs ----
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,run,root}
cp /bin/busybox "$root/bin/busybox"
mkdir -p "$root/modules"
for m in "${mods[@]}"; do cp "$kdir/modules/$(basename "$m")" "$root/modules/"; done
for a in sh mount umount mkdir ip poweroff cat echo rm ls sleep true id chmod ln mv cp grep sed env uname insmod; do
  ln -sf busybox "$root/bin/$a"
done
bins=("$PWD/build/portghost" "$PWD/build/tests/integration_tests" "$PWD/build/tests/pg_fire")
# the capability-set test runs the tracer under setpriv (util-linux)
[ -x /usr/bin/setpriv ] && bins+=(/usr/bin/setpriv)
# the reconciliation test makes a vxlan device with ip(8) (iproute2)
for ipbin in /usr/bin/ip /usr/sbin/ip /sbin/ip /bin/ip; do
  if [ -x "$ipbin" ]; then bins+=("$ipbin"); break; fi
done
for b in "${bins[@]}"; do
  mkdir -p "$root$(dirname "$b")"
  cp "$b" "$root$b"
  # the shared libraries, at the paths the loader looks for them
  ldd "$b" | awk '/=> \// { print $3 } /^[ \t]*\// { print $1 }' | while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
echo vmtest >"$root/etc/hostname"
cat >"$root/init" <<INIT
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t bpf bpf /sys/fs/bpf
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
chmod 1777 /tmp
ip link set lo up
for m in $(printf '%s ' "${mods[@]}" | sed 's|[^ ]*/||g'); do insmod /modules/\$m || echo "vmtest: insmod \$m failed"; done
hostname vmtest 2>/dev/null
echo "vmtest: kernel \$(uname -r)"
cd /tmp
# this kernel has fentry/fexit: the suite in that world, then forced back
# to the syscall-exit world (6.1 has no sock_send_length)
echo "vmtest: suite in the fexit world"
PG_EXPECT_WORLD=fexit $PWD/build/tests/integration_tests --gtest_filter='$filter' --gtest_color=no
r1=\$?
echo "vmtest: suite in the syscall-exit world (--no-fentry)"
PG_EXPECT_WORLD=syscall PG_TRACE_EXTRA=--no-fentry $PWD/build/tests/integration_tests --gtest_filter='$filter' --gtest_color=no
r2=\$?
echo "vmtest: fexit world exit \$r1, syscall-exit world exit \$r2"
echo "vmtest: result \$((r1 | r2))"
poweroff -f
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initrd.gz"

# ---- the guest ----
# Single-threaded TCG: with one host thread per vCPU, a vCPU kept running
# code that another had just patched (the attach of an fexit program), and
# the guest locked up at the patched instruction; one thread runs the vCPUs
# in turn and sees every patch at once.
# A soft lockup panics the guest at once (it ends qemu) instead of hanging
# until the timeout; the whole console is kept in build/vmtest-console.log.
boot() {
  timeout 1800 qemu-system-x86_64 -accel tcg,thread=single -cpu max -smp 2 -m 1024 -nographic -no-reboot \
    -kernel "$kdir/vmlinux" -initrd "$work/initrd.gz" \
    -append "console=ttyS0 quiet panic=-1 softlockup_panic=1 rdinit=/init" \
    -serial stdio -monitor none -display none \
    </dev/null | tee "$out" | sed -u 's/\r$//' | grep --line-buffered -v '^\[ *[0-9.]*\]' || true
  cp "$out" build/vmtest-console.log
  result=$(sed -n 's/^vmtest: result \([0-9]*\).*/\1/p' "$out" | tr -d '\r' | tail -1)
}
out=$work/console.log
log "booting $kver under qemu (TCG), running the integration suite"
boot
if [ -z "$result" ]; then
  # The guest died or hung before the suite ended (not a test failure: those
  # report a result and are never retried). Say so loudly, keep its console,
  # and boot once more.
  log "the guest ended without a result: $(grep -a -m1 -o 'BUG: [^[]*\|Kernel panic[^\r]*' "$out" || echo 'no kernel message')"
  cp "$out" build/vmtest-console.failed.log
  log "its console is in build/vmtest-console.failed.log; booting once more"
  boot
fi
if [ -z "$result" ]; then
  log "the guest ended without a result twice (boot failure, hang or timeout)"
  exit 1
fi
log "$kver: integration suite exit $result"
exit "$result"
