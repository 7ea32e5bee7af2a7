#!/usr/bin/env bash
# Install what is missing, build, check the style (clang-format), and run
# every test (unit, and as root the integration tests that load the real BPF
# programs).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
./scripts/lint.sh
if [ "$(id -u)" -ne 0 ]; then
  echo "test.sh: not root: the integration tests will be reported as skipped" >&2
fi
cd build
ctest --output-on-failure "$@"
