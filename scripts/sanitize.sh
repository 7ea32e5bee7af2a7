#!/usr/bin/env bash
# The whole test suite built with clang under AddressSanitizer and
# UndefinedBehaviorSanitizer (any finding fails), then every libFuzzer target
# for SECONDS on its checked-in corpus (tests/fuzz/corpus/TARGET).
#   scripts/sanitize.sh [SECONDS]     (default 20)
# A crash leaves its input in build-asan/ as crash-*; turn it into a
# regression test and add it to the corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
./scripts/deps.sh
flags="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
if [ ! -f build-asan/CMakeCache.txt ]; then
  CC=clang CXX=clang++ cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPG_FUZZ=ON \
    -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags -fsanitize=fuzzer-no-link" \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
fi
cmake --build build-asan -j"$(nproc)" -- --no-print-directory >&2
# the benchmark smoke run measures speed: not under a sanitizer
(cd build-asan && PG_SANITIZED=1 ctest --output-on-failure -LE bench)
for t in fuzz_decode fuzz_log_reader fuzz_parsers; do
  work=$(mktemp -d)
  echo "sanitize.sh: fuzzing $t for ${secs}s" >&2
  if ! ./build-asan/tests/$t -max_total_time="$secs" -max_len=8192 -print_final_stats=0 \
       -artifact_prefix=build-asan/ "$work" "tests/fuzz/corpus/$t" 2>"$work.log"; then
    tail -40 "$work.log" >&2
    echo "sanitize.sh: $t found a crash (input saved in build-asan/)" >&2
    rm -rf "$work" "$work.log"
    exit 1
  fi
  grep -E '^#[0-9]+.*DONE' "$work.log" >&2 || tail -1 "$work.log" >&2
  rm -rf "$work" "$work.log"
done
