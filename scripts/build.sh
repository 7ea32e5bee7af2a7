#!/usr/bin/env bash
# Configure (once) and build into build/. Quiet and fast when up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
"$PWD/scripts/deps.sh"
if [ ! -f build/CMakeCache.txt ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build build -j"$(nproc)" -- --no-print-directory >&2
