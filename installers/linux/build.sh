#!/usr/bin/env bash
# Configures and builds Kiln with CMake + Ninja (+ ccache) into build/ (or $KILN_BUILD_DIR).
# Extra arguments go to CMake, e.g. -DKILN_BENCH=OFF. Re-running only rebuilds what changed.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${KILN_BUILD_DIR:-$root/build}
jobs=${KILN_JOBS:-$(nproc)}
# LibTorch translation units need ~1.5 GB each: keep parallel jobs within memory.
mem_jobs=$(( $(awk '/MemAvailable/ {print $2}' /proc/meminfo) / 1500000 ))
[ "$mem_jobs" -ge 1 ] && [ "$mem_jobs" -lt "$jobs" ] && jobs=$mem_jobs

if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
elif [ "$#" -gt 0 ]; then
  cmake "$build" "$@"
fi
cmake --build "$build" -j "$jobs"
echo "build: programs are in $build/bin"
