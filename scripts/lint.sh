#!/usr/bin/env bash
# Style checks: clang-format on every source (.clang-format at the top for
# C++, bpf/.clang-format for the kernel side); with --tidy, clang-tidy
# (.clang-tidy) on the userspace sources too, against build/'s compile
# commands. --fix rewrites the files instead of failing.
set -euo pipefail
cd "$(dirname "$0")/.."
tidy=0 fix=0
for a in "$@"; do
  case $a in
    --tidy) tidy=1 ;;
    --fix) fix=1 ;;
    *) echo "usage: lint.sh [--tidy] [--fix]" >&2; exit 2 ;;
  esac
done
# every source of the project (find, not git: a release tarball has no .git)
mapfile -t sources < <(find userspace tests bpf -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.c' -o -name '*.h' \) \
                         -not -path 'tests/fuzz/corpus/*' | sort)
if [ $fix -eq 1 ]; then
  clang-format -i "${sources[@]}"
else
  clang-format --dry-run --Werror "${sources[@]}"
fi
echo "lint: clang-format clean (${#sources[@]} files)"
# the userspace stages include only the ones below them (docs/architecture.md)
stages=(common kernel trace sinks logs fleet app)
upward=0
for i in "${!stages[@]}"; do
  for j in "${!stages[@]}"; do
    [ "$j" -gt "$i" ] || continue
    if grep -n "#include \"${stages[$j]}/" userspace/"${stages[$i]}"/* >&2; then
      echo "lint: userspace/${stages[$i]} includes userspace/${stages[$j]}, a later stage" >&2
      upward=1
    fi
  done
done
[ $upward -eq 0 ] || exit 1
echo "lint: no stage includes a later one"
if [ $tidy -eq 1 ]; then
  [ -f build/compile_commands.json ] || { echo "lint: no build/compile_commands.json (run scripts/build.sh)" >&2; exit 1; }
  mapfile -t units < <(find userspace -name '*.cpp' | sort)
  args=(-p build --quiet --extra-arg=-Wno-unknown-warning-option)
  [ $fix -eq 1 ] && args+=(--fix)
  # two at a time: clang-tidy is slow and the machine has few cores
  printf '%s\n' "${units[@]}" | xargs -P "$(nproc)" -n 4 clang-tidy "${args[@]}"
  echo "lint: clang-tidy clean (${#units[@]} files)"
fi
