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
artifacts=${KILN_FUZZ_ARTIFACTS:-$build/artifacts}
mkdir -p "$artifacts"
for target in "${targets[@]}"; do
  corpus_name=${target%_fuzz}
  # Inputs that once crashed a target are replayed first: fixed bugs stay fixed.
  if [ -d "$root/tests/fuzz/regressions/$corpus_name" ]; then
    "$build/bin/$target" -runs=0 "$root/tests/fuzz/regressions/$corpus_name"/* >/dev/null 2>&1 ||
      { echo "fuzz: $target crashes on a saved regression input again" >&2; exit 1; }
  fi
  scratch=$(mktemp -d)
  echo "fuzz: $target for ${seconds}s"
  # -rss_limit_mb bounds a single input's memory; any crash, leak or timeout fails the run and
  # leaves the input in $artifacts.
  if ! "$build/bin/$target" -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=10 -print_final_stats=1 \
      -artifact_prefix="$artifacts/" "$scratch" "$root/tests/fuzz/corpus/$corpus_name" >"$scratch.log" 2>&1; then
    tail -n 60 "$scratch.log" >&2
    echo "fuzz: $target failed; the input that did it is in $artifacts" >&2
    rm -rf "$scratch" "$scratch.log"
    exit 1
  fi
  grep -E "stat::(number_of_executed_units|new_units_added)" "$scratch.log" | sed "s/^/  /"
  rm -rf "$scratch" "$scratch.log"
done
