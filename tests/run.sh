#!/usr/bin/env bash
# Builds Kiln (if needed) and runs every test suite under CTest, then the fuzz targets briefly.
#   KILN_BUILD_DIR   build folder (default build/)
#   KILN_FUZZ_SECONDS  seconds per fuzz target (default 20; 0 skips fuzzing)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${KILN_BUILD_DIR:-$root/build}
start=$(date +%s)

"$root/installers/linux/build.sh"
# CTest runs test programs side by side; LibTorch's OpenMP threads then sleep when idle instead of
# spinning on cores another test needs (results are the same, the run is much faster).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
ctest --test-dir "$build" --output-on-failure -j "$(nproc)" --timeout 900

fuzz_seconds=${KILN_FUZZ_SECONDS:-20}
if [ "$fuzz_seconds" -gt 0 ]; then
  "$root/tests/fuzz/run.sh" "$fuzz_seconds"
fi
echo "tests: all passed in $(( $(date +%s) - start )) s"
