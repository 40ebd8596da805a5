#!/usr/bin/env bash
# Builds the engine, its tests and its benchmarks against the LibTorch of this machine (a CUDA
# LibTorch 2.x from PyTorch's package, say) and runs them:
#   1. kiln_engine_tests: every engine test on the CPU, and Devices/DeviceParity on the GPU in
#      fp32 (the fixtures' tolerances), fp16 and bf16;
#   2. bench_generate: the tiny fixture model and a full-size SD1.5 (random weights) at 512², fp16
#      and bf16, batch 1: seconds per step, it/s, peak GPU memory;
#   3. bench_train: LoRA training steps of the full-size SD1.5 at 512² on the GPU.
# Results go to the output folder: summary.md (paste into the README), the JSON, the logs and the
# tests' XML. Exit status: 0 when the build and every test passed.
#
#   --torch DIR    LibTorch's CMake prefix (default: python3's torch.utils.cmake_prefix_path)
#   --deps FILE    the archive from installers/gpu/pack-deps.sh (default: .gpu/deps.tar.xz when it
#                  exists; without one, the system's packages are used)
#   --out DIR      where results go (default: $OUT when set, else build-gpu/results)
#   --build DIR    the build folder (default: build-gpu)
#   --quick        fewer benchmark steps (a smoke run)
set -uo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
torch_prefix="" deps="" out="${OUT:-}" build="$repo/build-gpu" quick=0
while [ $# -gt 0 ]; do
  case "$1" in
    --torch) torch_prefix="$2"; shift 2 ;;
    --deps) deps="$(realpath -m "$2")"; shift 2 ;;
    --out) out="$(realpath -m "$2")"; shift 2 ;;
    --build) build="$(realpath -m "$2")"; shift 2 ;;
    --quick) quick=1; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "engine-checks.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
done
[ -n "$out" ] || out="$build/results"
mkdir -p "$out"
say() { echo "engine-checks: $*" | tee -a "$out/steps.log"; }
fail() { say "FAILED: $*"; exit 1; }

# --- LibTorch -------------------------------------------------------------------------------------
py="$(command -v python3 || true)"
if [ -z "$torch_prefix" ]; then
  [ -n "$py" ] || fail "no python3 to ask where LibTorch is; pass --torch DIR"
  torch_prefix="$("$py" -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null)" ||
    fail "python3 has no torch; pass --torch DIR (the folder holding Torch/TorchConfig.cmake)"
fi
[ -f "$torch_prefix/Torch/TorchConfig.cmake" ] || [ -f "$torch_prefix/TorchConfig.cmake" ] ||
  fail "no TorchConfig.cmake under $torch_prefix"
say "LibTorch from $torch_prefix"
with_cuda=OFF
if [ -n "$py" ] && "$py" -c 'import torch, sys; sys.exit(0 if torch.version.cuda else 1)' 2>/dev/null; then
  with_cuda=ON
fi

# --- the other dependencies -----------------------------------------------------------------------
[ -n "$deps" ] || { [ -f "$repo/.gpu/deps.tar.xz" ] && deps="$repo/.gpu/deps.tar.xz"; }
cmake_deps=()
if [ -n "$deps" ]; then
  [ -f "$deps" ] || fail "no archive $deps (make it with installers/gpu/pack-deps.sh)"
  root="${TMPDIR:-/tmp}/kiln-gpu-deps"
  rm -rf "$root" && mkdir -p "$root" && tar -C "$root" -xJf "$deps" || fail "cannot unpack $deps"
  usr="$root/deps/usr"
  lib="$usr/lib/x86_64-linux-gnu"
  say "dependencies from $deps: $(paste -sd, "$root/deps/MANIFEST")"
  cmake_deps=(
    "-DCMAKE_PREFIX_PATH=$lib/cmake;$usr/share/cmake;$usr;$torch_prefix"
    "-DICU_ROOT=$usr" "-DICU_INCLUDE_DIR=$usr/include"
    "-DICU_UC_LIBRARY_RELEASE=$lib/libicuuc.so" "-DICU_I18N_LIBRARY_RELEASE=$lib/libicui18n.so"
    "-DICU_DATA_LIBRARY_RELEASE=$lib/libicudata.so"
    "-DZLIB_INCLUDE_DIR=$usr/include" "-DZLIB_LIBRARY=$lib/libz.a")
else
  cmake_deps=("-DCMAKE_PREFIX_PATH=$torch_prefix")
fi

# --- build ----------------------------------------------------------------------------------------
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
jobs="$(nproc)"
say "configuring in $build (CUDA $with_cuda)"
cmake -S "$repo" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DKILN_ENGINE_ONLY=ON \
  -DKILN_PLUGINS=OFF -DKILN_FUZZ=OFF -DKILN_CUDA="$with_cuda" "${cmake_deps[@]}" >"$out/configure.log" 2>&1 ||
  { tail -40 "$out/configure.log"; fail "cmake could not configure (see configure.log)"; }
grep -E "^-- kiln:" "$out/configure.log" | tee -a "$out/steps.log"
say "building with $jobs jobs"
start=$SECONDS
cmake --build "$build" -j "$jobs" --target kiln_engine_tests bench_generate bench_train >"$out/build.log" 2>&1 ||
  { grep -E -A5 "error|FAILED" "$out/build.log" | head -60; fail "the build failed (see build.log)"; }
build_seconds=$((SECONDS - start))
say "built in ${build_seconds} s"
bin="$build/bin"

# --- tests ----------------------------------------------------------------------------------------
# The device tool of our workplace carries at most 64 MiB, so the diffusers copy of the fixture
# model may be left behind (installers/gpu/slim-tree.sh); then the tests that read it are skipped.
filter="*"
# The inpainting fixture (52 MB) is left behind the same way; its suite is skipped then.
inpaint_filter=""
if [ ! -f "$repo/tests/fixtures/sd15-inpaint-tiny/model.safetensors" ]; then
  inpaint_filter="*InpaintingModel*"
  say "the inpainting fixture is not here: skipping its tests"
fi
if [ ! -f "$repo/tests/fixtures/sd15-tiny/diffusers/unet/diffusion_pytorch_model.safetensors" ]; then
  filter="-KeyMap.EveryFixtureUnetNameMapsToTheSingleFileAndBack:KeyMap.KohyaLoraModulesResolveToSingleFileModules"
  filter+=":Checkpoint.OpensTheDiffusersFixtureAndItsModelIndex:Checkpoint.BothLayoutsGiveTheSameNamesShapesAndBits"
  filter+=":Checkpoint.AcceptsFp16VariantsAndShardedComponents:Checkpoint.MissingPiecesAreNotFound"
  filter+=":ModelLoadingTest.DiffusersFolderLoadsTheSameWeights"
  say "the diffusers fixture weights are not here: skipping the 7 tests that read them"
fi
if [ -n "$inpaint_filter" ]; then
  if [ "$filter" = "*" ]; then filter="-$inpaint_filter"; else filter+=":$inpaint_filter"; fi
fi
say "running the engine tests"
start=$SECONDS
OMP_WAIT_POLICY=PASSIVE "$bin/kiln_engine_tests" --gtest_filter="$filter" --gtest_output="xml:$out/engine-tests.xml" \
  >"$out/engine-tests.log" 2>&1
tests_rc=$?
test_seconds=$((SECONDS - start))
tests_line="$(grep -E '^\[==========\] .* ran' "$out/engine-tests.log" | tail -1)"
passed="$(grep -E '^\[  PASSED  \]' "$out/engine-tests.log" | tail -1)"
skipped="$(grep -cE '^\[  SKIPPED \] [A-Za-z]' "$out/engine-tests.log")"
failed="$(grep -E '^\[  FAILED  \] [A-Za-z]' "$out/engine-tests.log" | sort -u)"
say "tests: ${tests_line:-none ran} ${passed} (${skipped} skipped) in ${test_seconds} s"
[ -z "$failed" ] || say "failing tests:"$'\n'"$failed"
grep '^\[parity\]' "$out/engine-tests.log" >"$out/parity.txt" || true

# --- benchmarks -----------------------------------------------------------------------------------
gen_steps=20 train_steps=10
[ "$quick" = 1 ] && gen_steps=4 train_steps=2
device=cpu
[ "$with_cuda" = ON ] && "$py" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' && device=cuda
say "benchmarks on $device"
if [ "$device" = cuda ]; then
  for precision in fp16 bf16; do
    "$bin/bench_generate" --device cuda --precision "$precision" --full-steps "$gen_steps" --size 512 \
      >"$out/bench-generate-$precision.json" 2>>"$out/bench.log" || say "bench_generate $precision failed (see bench.log)"
  done
  "$bin/bench_train" --device cuda --no-tiny --steps "$train_steps" --size 512 \
    >"$out/bench-train.json" 2>>"$out/bench.log" || say "bench_train failed (see bench.log)"
else
  "$bin/bench_generate" --device cpu --full-steps 2 --size 512 >"$out/bench-generate-fp32.json" 2>>"$out/bench.log" ||
    say "bench_generate failed (see bench.log)"
fi

# --- summary --------------------------------------------------------------------------------------
{
  echo "## Engine on $(command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1 || echo "$device")"
  echo
  echo "- $(date -u +%Y-%m-%d), commit $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- $(grep -E '^-- kiln:' "$out/configure.log" | sed 's/^-- kiln: //')"
  echo "- build of kiln_engine_tests, bench_generate, bench_train: ${build_seconds} s on $jobs cores"
  echo "- engine tests: ${tests_line#\[==========\] } ${passed#\[  PASSED  \] }, ${skipped} skipped, ${test_seconds} s$([ -n "$failed" ] && echo ", FAILED: $(echo "$failed" | sed 's/^\[  FAILED  \] //' | paste -sd' ')")"
  echo
  if [ -s "$out/parity.txt" ]; then
    echo "Reference cases per device and precision (largest errors):"
    echo
    echo '```'
    sed 's/^\[parity\] //' "$out/parity.txt"
    echo '```'
    echo
  fi
  for f in "$out"/bench-generate-*.json "$out/bench-train.json"; do
    [ -s "$f" ] || continue
    "$py" - "$f" <<'PY' 2>/dev/null || echo "(could not read $f)"
import json, sys
rows = json.load(open(sys.argv[1]))
for r in rows:
    if "error" in r:
        print(f"- {r.get('model')}: error: {r['error']}"); continue
    mem = f", peak GPU {r['peak_device_mib']:.0f} MiB" if "peak_device_mib" in r else f", peak RSS {r['peak_rss_mib']:.0f} MiB"
    if "lora_parameters" in r:
        what = f"train rank {r['rank']} batch {r['batch_size']}, {'cached latents' if r['cache_latents'] else 'VAE each step'}, {'gradient checkpointing' if r['gradient_checkpointing'] else 'no checkpointing'}"
    else:
        what = f"generate {r['sampler']} batch {r['batch_size']}"
    print(f"- {r['model']} {r['width']}x{r['height']} on {r['device']}: {what}: "
          f"{r['mean_step_seconds']*1000:.1f} ms/step ({1/r['mean_step_seconds']:.2f} it/s){mem}")
PY
  done
} >"$out/summary.md"
cat "$out/summary.md"
[ "$tests_rc" = 0 ] || fail "engine tests failed"
say "all passed"
