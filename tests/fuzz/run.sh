#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (a separate build folder, engine sources only) and runs
# each for a short time on its seed corpus. Usage: tests/fuzz/run.sh [seconds per target]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-20}
build=${KILN_FUZZ_BUILD_DIR:-$root/build-fuzz}
if ! command -v clang++ >/dev/null; then
  echo "fuzz: clang++ is missing (installers/linux/install-deps.sh installs it)" >&2
  exit 1
fi
if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DKILN_FUZZ=ON -DKILN_ENGINE_ONLY=ON -DKILN_BENCH=OFF >/dev/null
fi
targets=(protocol_fuzz safetensors_fuzz prompt_fuzz)
cmake --build "$build" --target "${targets[@]}" -j "$(nproc)"
for target in "${targets[@]}"; do
  corpus_name=${target%_fuzz}
  scratch=$(mktemp -d)
  echo "fuzz: $target for ${seconds}s"
  # -rss_limit_mb bounds a single input's memory; any crash, leak or timeout fails the run.
  "$build/bin/$target" -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=10 -print_final_stats=1 \
    "$scratch" "$root/tests/fuzz/corpus/$corpus_name" 2>&1 | tail -n 4
  rm -rf "$scratch"
done
