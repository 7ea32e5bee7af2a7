#!/usr/bin/env bash
# The root integration suite inside qemu guests running Debian's stock
# kernels (the image each suite's linux-image-amd64 depends on, its
# -unsigned variant): bullseye's 5.10 (the floor), bookworm's 6.1 and
# trixie's 6.12, next to the host's own kernel (scripts/test.sh).
#
#   scripts/vmtest.sh [--kernels "bullseye bookworm trixie"] [GTEST_FILTER]
#   PG_VMTEST_CMD='build/portghost trace --probe-report' scripts/vmtest.sh --kernels bullseye
#                 runs that shell command in each guest instead of the suite
#
# The packages are fetched with apt-get download from a private sources
# list and lists directory (the host's apt configuration is never read or
# changed) and unpacked with dpkg -x into the cache (PG_VMTEST_CACHE,
# default /var/cache/portghost/vmtest), never installed. A guest boots the
# uncompressed vmlinux (faster under TCG) with an initramfs of busybox, the
# test binaries at their build paths and the shared libraries they need; it
# mounts proc, sys, cgroup2, bpffs and tracefs, brings up lo and runs
# build/tests/integration_tests in each world its kernel allows: with the
# fentry/fexit hooks where they load, and forced without them
# (--no-fentry). Its console is the serial port. One line per kernel sums it
# up (vmtest: 6.1.0-57-amd64: fexit 77/77, socket 75/77 (2 skipped)); the
# script exits 0 only when every kernel's suite ran and passed. A kernel
# that cannot be fetched fails the run. Runs as root (dpkg -x keeps
# ownership).
set -euo pipefail
cd "$(dirname "$0")/.."
suites="bullseye bookworm trixie"
filter='*'
while [ $# -gt 0 ]; do
  case $1 in
    --kernels) suites=$2; shift ;;
    -*) echo "vmtest: unknown option $1" >&2; exit 2 ;;
    *) filter=$1 ;;
  esac
  shift
done
./scripts/deps.sh vmtest
./scripts/build.sh >/dev/null
cache=${PG_VMTEST_CACHE:-/var/cache/portghost/vmtest}
mkdir -p "$cache"
log() { echo "vmtest: $*" >&2; }

# ---- the kernels ----
# apt with a sources list and lists of its own, one per suite
apt_for() {  # SUITE: prints the apt options of that suite's private tree
  local d=$cache/apt/$1
  echo "-o Dir::Etc::sourcelist=$d/sources.list -o Dir::Etc::sourceparts=- -o Dir::State::Lists=$d/lists" \
       "-o Dir::Cache=$d/cache -o Debug::NoLocking=1"
}
apt_update() {  # SUITE
  local d=$cache/apt/$1
  mkdir -p "$d/lists/partial" "$d/cache/archives/partial"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $1 main" \
    >"$d/sources.list"
  # a day old at most: the image a suite's meta-package names moves on
  if [ -z "$(find "$d/lists" -maxdepth 1 -name '*_Packages' -mmin -1440 2>/dev/null | head -1)" ]; then
    # shellcheck disable=SC2046
    apt-get $(apt_for "$1") -q update >"$d/update.log" 2>&1 ||
      { log "$1: apt-get update failed (see $d/update.log)"; return 1; }
  fi
}

# unpack_vmlinux BZIMAGE OUT: the ELF inside a bzImage
unpack_vmlinux() {
  local magic fmt off
  for fmt in 'xz:\xfd7zXZ' 'zstd:\x28\xb5\x2f\xfd'; do
    printf "${fmt#*:}" >"$cache/magic"
    off=$( (LC_ALL=C grep -obUaF -f "$cache/magic" "$1" || true) | head -1 | cut -d: -f1)
    [ -n "$off" ] || continue
    (tail -c +"$((off + 1))" "$1" | "${fmt%%:*}" -dcq 2>/dev/null >"$2") || true
    magic=$(head -c 4 "$2" | od -An -c | tr -d ' ')
    [ "$magic" = '177ELF' ] && return 0
  done
  return 1
}

# fetch_kernel SUITE: sets kdir (vmlinux and modules) and kver
fetch_kernel() {
  local suite=$1 image pkg deb vmlinuz off file_magic
  apt_update "$suite" || return 1
  # shellcheck disable=SC2046
  image=$( (apt-cache $(apt_for "$suite") depends linux-image-amd64 2>/dev/null || true) |
          sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -1)
  [ -n "$image" ] || { log "$suite: cannot tell which kernel linux-image-amd64 depends on"; return 1; }
  pkg=$image-unsigned
  kdir=$cache/$pkg
  kver=${image#linux-image-}
  if [ ! -f "$kdir/vmlinux" ]; then
    deb=$(ls "$cache/${pkg}"_*.deb 2>/dev/null | head -1 || true)
    if [ -z "$deb" ]; then
      log "$suite: downloading $pkg"
      # shellcheck disable=SC2046
      (cd "$cache" && apt-get $(apt_for "$suite") download -q "$pkg" 2>&1 | grep -v "unsandboxed" >&2 || true)
      deb=$(ls "$cache/${pkg}"_*.deb 2>/dev/null | head -1 || true)
      [ -n "$deb" ] || { log "$suite: apt-get download $pkg failed"; return 1; }
    fi
    rm -rf "$kdir.tmp" && mkdir -p "$kdir.tmp"
    dpkg -x "$deb" "$kdir.tmp/root"
    vmlinuz=$( (ls "$kdir.tmp"/root/boot/vmlinuz-* 2>/dev/null || true) | head -1)
    [ -n "$vmlinuz" ] || { log "no vmlinuz in $deb"; return 1; }
    # the bzImage wraps a compressed ELF (xz up to bookworm, zstd since
    # trixie): the uncompressed one boots faster. The stream is followed by
    # other data: read one, and judge by what comes out (the decompressor may
    # complain of the rest, and tail may die of SIGPIPE).
    if ! unpack_vmlinux "$vmlinuz" "$kdir.tmp/vmlinux"; then
      log "no xz or zstd stream in $vmlinuz"
      return 1
    fi
    file_magic=$(head -c 4 "$kdir.tmp/vmlinux" | od -An -c | tr -d ' ')
    [ "$file_magic" = '177ELF' ] || { log "no ELF vmlinux inside $vmlinuz"; return 1; }
    rm -rf "$kdir.tmp/root"
    rm -rf "$kdir" && mv "$kdir.tmp" "$kdir"
  fi
  # the modules the guest loads at boot (see mods below), each after the
  # ones it depends on, taken out of the same package
  local m have
  have=$(cat "$kdir/modules/.wanted" 2>/dev/null || true)
  if [ "$have" != "${mods[*]}" ] || [ ! -f "$kdir/modules/.order" ]; then
    deb=$(ls "$cache/${pkg}"_*.deb 2>/dev/null | head -1 || true)
    [ -n "$deb" ] || { log "no $pkg package in $cache to take modules from"; return 1; }
    rm -rf "$kdir/modules" && mkdir -p "$kdir/modules"
    mod_listing=$(dpkg-deb --fsys-tarfile "$deb" | tar -t)
    mod_builtin=$(dpkg-deb --fsys-tarfile "$deb" | tar -xO --wildcards "*/lib/modules/$kver/modules.builtin" \
                  2>/dev/null || true)
    mod_deb=$deb mod_order=()
    for m in "${mods[@]}"; do take_module "$m" || return 1; done
    printf '%s\n' "${mod_order[@]}" >"$kdir/modules/.order"
    echo "${mods[*]}" >"$kdir/modules/.wanted"
  fi
}

# take_module NAME: NAME.ko out of $mod_deb into $kdir/modules, after the
# modules its .modinfo says it depends on; appends to mod_order (load order).
# A module built into the kernel is skipped; one that is neither fails.
take_module() {
  local name=$1 p f dep deps kre pat
  for f in "${mod_order[@]}"; do [ "$f" = "$name.ko" ] && return 0; done
  pat=${name//[-_]/[-_]}
  kre=$(sed 's/[.+]/\\&/g' <<<"$kver")
  p=$(grep -E "/lib/modules/$kre/.*/$pat\.ko(\.xz|\.zst)?\$" <<<"$mod_listing" | head -1 || true)
  if [ -z "$p" ]; then
    grep -qE "/$pat\.ko\$" <<<"$mod_builtin" && return 0
    log "$kver: no module $name (and it is not built in)"
    return 1
  fi
  rm -rf "$kdir/modules.tmp" && mkdir -p "$kdir/modules.tmp"
  dpkg-deb --fsys-tarfile "$mod_deb" | tar -x -C "$kdir/modules.tmp" "$p" ||
    { log "cannot take $p out of $mod_deb"; return 1; }
  f=$kdir/modules/$name.ko
  case $p in
    *.xz) xz -dc "$kdir/modules.tmp/$p" >"$f" ;;
    *.zst) zstd -dcq "$kdir/modules.tmp/$p" >"$f" ;;
    *) mv "$kdir/modules.tmp/$p" "$f" ;;
  esac
  rm -rf "$kdir/modules.tmp"
  deps=$(tr '\0' '\n' <"$f" | sed -n 's/^depends=//p' | head -1)
  for dep in ${deps//,/ }; do take_module "$dep" || return 1; done
  mod_order+=("$name.ko")
}
# What the guest loads, by module name (dependencies are found): a vxlan
# device (the reconciliation test makes one); SCTP and the crc32c it
# checksums with; sock_diag for inet sockets (where the iterators cannot
# make cookies, the tracer has sock_diag make them: Linux < 5.12); and the
# NAT test's namespaces: veth, a bridge, nftables' SNAT and masquerade, and
# conntrack's netlink events.
mods=(udp_tunnel ip6_udp_tunnel vxlan crc32c_generic libcrc32c sctp inet_diag tcp_diag udp_diag
      veth bridge nf_tables nft_chain_nat nft_nat nft_masq nf_conntrack_netlink)

# ---- the initramfs (its modules are each kernel's) ----
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,run,root}
cp /bin/busybox "$root/bin/busybox"
# (ip is iproute2's, below: busybox's lacks netns, veth and bridges)
for a in sh mount umount mkdir poweroff cat echo rm ls sleep true id chmod ln mv cp grep sed env uname insmod \
         sysctl; do
  ln -sf busybox "$root/bin/$a"
done
# scripts name their interpreter through /usr/bin/env; ip(8) keeps its
# namespaces under /var/run/netns
mkdir -p "$root/usr/bin" "$root/var"
ln -sf ../../bin/busybox "$root/usr/bin/env"
ln -sf ../run "$root/var/run"
bins=("$PWD/build/portghost" "$PWD/build/tests/integration_tests" "$PWD/build/tests/pg_fire")
# for a command of one's own in the guest (PG_VMTEST_CMD): bpftool feature probe
[ -n "${PG_VMTEST_CMD:-}" ] && [ -x /usr/sbin/bpftool ] && bins+=(/usr/sbin/bpftool)
# the capability-set test runs the tracer under setpriv (util-linux)
[ -x /usr/bin/setpriv ] && bins+=(/usr/bin/setpriv)
# the guest's init, the reconciliation test (a vxlan device) and the NAT
# test (namespaces, veth, a bridge) use ip(8) from iproute2
ipbin=
for b in /usr/bin/ip /usr/sbin/ip /sbin/ip /bin/ip; do
  if [ -x "$b" ]; then ipbin=$b; break; fi
done
[ -n "$ipbin" ] || { log "no ip(8) from iproute2 on this machine"; exit 1; }
bins+=("$ipbin")
# the NAT test builds its namespaces with bash, ip(8), sysctl and nft, from
# a script at its place in the tree
for b in bash nft; do
  command -v "$b" >/dev/null || { log "no $b on this machine (scripts/deps.sh installs it)"; exit 1; }
  bins+=("$(command -v "$b")")
done
mkdir -p "$root$PWD/tests/integration"
cp tests/integration/nat_topology.sh "$root$PWD/tests/integration/"
for f in /etc/protocols /etc/services; do [ -f "$f" ] && cp "$f" "$root$f"; done
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

# The worlds each kernel must choose, each a run of the suite: WORLD (with
# fentry/fexit allowed) or WORLD:--no-fentry (forced without). 6.1 has no
# tp_btf/sock_send_length, so without fexit it falls back to the syscall exits.
worlds_of() {  # SUITE
  case $1 in
    bullseye) echo "cgroup" ;;
    bookworm) echo "fexit syscall:--no-fentry" ;;
    *) echo "fexit socket:--no-fentry" ;;
  esac
}

# make_init RUN...: the guest's init, one suite run per RUN
make_init() {
  local run world extra
  {
    cat <<INIT
#!/bin/sh
export PATH=/sbin:/usr/sbin:/bin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t bpf bpf /sys/fs/bpf
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
chmod 1777 /tmp
ip link set lo up
for m in \$(cat /modules/.order); do insmod /modules/\$m || echo "vmtest: insmod \$m failed"; done
hostname vmtest 2>/dev/null
echo "vmtest: kernel \$(uname -r)"
cd /tmp
r=0
INIT
    if [ -n "${PG_VMTEST_CMD:-}" ]; then
      printf 'cd %s\n%s\necho "vmtest: command exit $?"\ncd /tmp\n' "$PWD" "$PG_VMTEST_CMD"
      set --
    fi
    for run in "$@"; do
      world=${run%%:*} extra=
      [ "$run" = "$world" ] || extra=${run#*:}
      cat <<INIT
echo "vmtest: world $world begins $extra"
PG_EXPECT_WORLD=$world PG_TRACE_EXTRA='$extra' $PWD/build/tests/integration_tests --gtest_filter='$filter' --gtest_color=no
x=\$?
echo "vmtest: world $world exit \$x"
r=\$((r | x))
INIT
    done
    cat <<INIT
echo "vmtest: result \$r"
poweroff -f
INIT
  } >"$root/init"
  chmod +x "$root/init"
}

# ---- the guests ----
# Single-threaded TCG: with one host thread per vCPU, a vCPU kept running
# code that another had just patched (the attach of an fexit program), and
# the guest locked up at the patched instruction; one thread runs the vCPUs
# in turn and sees every patch at once.
# A soft lockup panics the guest at once (it ends qemu) instead of hanging
# until the timeout; each console is kept in build/vmtest-KERNEL.log.
boot() {
  timeout 1800 qemu-system-x86_64 -accel tcg,thread=single -cpu max -smp 2 -m 1024 -nographic -no-reboot \
    -kernel "$kdir/vmlinux" -initrd "$work/initrd.gz" \
    -append "console=ttyS0 quiet panic=-1 softlockup_panic=1 rdinit=/init" \
    -serial stdio -monitor none -display none \
    </dev/null | tee "$out" | sed -u 's/\r$//' | grep --line-buffered -v '^\[ *[0-9.]*\]' || true
  sed -i 's/\r$//' "$out"
  result=$(sed -n 's/^vmtest: result \([0-9]*\).*/\1/p' "$out" | tail -1)
}

# One world's gtest summary from a console: "fexit 77/77" or
# "syscall 75/77 (2 skipped: A.b, C.d)" or "socket 70/77 (1 FAILED: ...)".
summary() {  # CONSOLE WORLD
  awk -v w="$2" '
    $0 ~ "^vmtest: world " w " begins" { on = 1; next }
    $0 ~ "^vmtest: world " w " exit" { on = 0 }
    !on { next }
    /^\[==========\] [0-9]+ tests? from .* ran/ { total = $2 }
    /^\[  PASSED  \] [0-9]+ test/ { passed = $4 }
    # a skip prints "FILE:LINE: Skipped", then its reason
    skip_next { reason = $0; skip_next = 0 }
    / Skipped$/ { skip_next = 1 }
    # each test is named twice (as it ends, and in the summary)
    /^\[  SKIPPED \] [A-Za-z]/ && !seen[$4]++ {
      skipped = skipped (ns++ ? "; " : "") $4 (reason != "" ? ": " reason : ""); reason = ""
    }
    /^\[  FAILED  \] [A-Za-z]/ && !seen[$4]++ { failed = failed (nf++ ? ", " : "") $4 }
    END {
      if (total == "") { printf "%s: no result", w; exit }
      printf "%s %d/%d", w, passed, total
      if (ns) printf " (%d skipped: %s)", ns, skipped
      if (nf) printf " (%d FAILED: %s)", nf, failed
    }' "$1"
}

lines=() status=0
for suite in $suites; do
  if ! fetch_kernel "$suite"; then
    lines+=("$suite: kernel not fetched")
    status=1
    continue
  fi
  rm -rf "$root/modules" && mkdir -p "$root/modules"
  cp "$kdir/modules/"*.ko "$kdir/modules/.order" "$root/modules/"
  read -r -a runs <<<"$(worlds_of "$suite")"
  make_init "${runs[@]}"
  (cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initrd.gz"
  out=build/vmtest-$kver.log
  log "booting $kver ($suite) under qemu (TCG), running the integration suite"
  boot
  if [ -z "$result" ]; then
    # The guest died or hung before the suite ended (not a test failure:
    # those report a result and are never retried). Say so loudly, keep its
    # console, and boot once more.
    log "the guest ended without a result: $(grep -a -m1 -o 'BUG: [^[]*\|Kernel panic.*' "$out" || echo 'no kernel message')"
    cp "$out" "build/vmtest-$kver.failed.log"
    log "its console is in build/vmtest-$kver.failed.log; booting once more"
    boot
  fi
  if [ -z "$result" ]; then
    lines+=("$kver: the guest ended without a result twice (boot failure, hang or timeout; see $out)")
    status=1
    continue
  fi
  line=
  for run in "${runs[@]}"; do line+="${line:+, }$(summary "$out" "${run%%:*}")"; done
  lines+=("$kver: $line")
  [ "$result" = 0 ] || status=1
done
for l in "${lines[@]}"; do echo "vmtest: $l"; done
exit $status
