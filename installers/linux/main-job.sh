#!/usr/bin/env bash
# Kiln's main job, end to end, with the programs in build/bin: starts kilnd (if it is not running),
# builds a dataset from the product layers in installers/sample-data/product, trains a LoRA on it
# with the `product` preset, draws the validation grid and prints where everything is.
#
# By default it trains on the tiny random-weight SD1.5 model that ships with Kiln's tests, so it
# runs in a few minutes on any CPU — and its images carry no meaning (noise-like colour fields).
# Point the same job at a real checkpoint with KILN_BASE_MODEL:
#   KILN_BASE_MODEL=~/models/v1-5-pruned-emaonly.safetensors ./installers/linux/main-job.sh
# Uses the normal per-user socket and data dir unless KILN_SOCKET / KILN_DATA_DIR say otherwise.
# Installed from the package, the same script is /usr/share/kiln/demo/main-job.sh and uses the
# installed kiln with the tiny model and layers beside it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ -f "$here/../../CMakeLists.txt" ]; then  # the source tree
  root=$(cd "$here/../.." && pwd)
  bin=${KILN_BUILD_DIR:-$root/build}/bin
  kiln="$bin/kiln"
  export KILN_DAEMON="$bin/kilnd"
  tiny="$root/tests/fixtures/sd15-tiny/model.safetensors"
  layers="$root/installers/sample-data/product"
else  # the package
  kiln=$(command -v kiln) || { echo "main-job: kiln is not on PATH; install Kiln's package" >&2; exit 1; }
  tiny="$here/tiny-sd15.safetensors"
  layers="$here/product"
fi

base=${KILN_BASE_MODEL:-$tiny}
name=${KILN_LORA_NAME:-sample-bottle}
if [ -z "${KILN_BASE_MODEL:-}" ]; then
  # The tiny model works at 64×64; a few epochs show the whole flow in minutes.
  size=(--resolution 64 --repeats 5)
  train_set=(--set resolution=64 --set min_bucket_reso=64 --set max_bucket_reso=128 --set max_train_epochs=4
             --set learning_rate=1e-3 --set sample_every_n_epochs=1)
  grid_set=(--strengths 0.25,0.5,0.75,1 --steps 10)
else
  size=(--resolution 512)
  train_set=()
  grid_set=()
fi

echo "== starting the daemon"
"$kiln" daemon start
"$kiln" status
echo
echo "== the base model: $base"
"$kiln" models add "$base" --name "$name-base" >/dev/null 2>&1 || true
echo
echo "== a dataset from the sample product layers (composited on white, centred, checked)"
"$kiln" dataset rm "$name" >/dev/null 2>&1 || true
"$kiln" dataset create "$name" --from "$layers" --preset product \
  --trigger kilnbottle --background white "${size[@]}"
echo
echo "== training '$name' with the product preset (one LoRA file per epoch, samples, loss curve)"
"$kiln" loras remove "$name" >/dev/null 2>&1 || true
"$kiln" train --base "$name-base" --dataset "$name" --name "$name" --preset product "${train_set[@]}"
echo
echo "== the validation grid: epochs × strengths, one seed"
"$kiln" grid --lora "$name" --prompt "kilnbottle, on a wooden table" "${grid_set[@]}"
echo
data_dir=$("$kiln" status --json | sed -n 's/.*"data_dir": *"\([^"]*\)".*/\1/p' | head -1)
echo "Everything is in ${data_dir:-the data dir}/loras/$name/ (epoch files, final file, loss.png, samples/, grid.png)."
if [ -z "${KILN_BASE_MODEL:-}" ]; then
  echo "This ran on a tiny random-weight model: its images carry no meaning. For real results:"
  echo "  KILN_BASE_MODEL=/path/to/v1-5-pruned-emaonly.safetensors $0"
fi
echo "The daemon keeps running for your plugins; stop it with: $kiln daemon stop"
