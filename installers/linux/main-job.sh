#!/usr/bin/env bash
# Kiln's main job, end to end, with the programs in build/bin: starts kilnd (if it is not running),
# builds a dataset from the product photos in installers/sample-data/product, trains a LoRA on it
# with the `product` preset, draws the validation grid and prints where everything is.
#
# By default it trains on Kiln Mini (mini/kiln-mini.safetensors), the small 64×64 base model Kiln
# trained itself on generated scenes, so it runs in minutes on any CPU. The sample product (a teal
# hexagonal tin with a yellow star, trigger "kilntin") was held out of Kiln Mini's training, and its
# photos show it on tables, a concrete floor and a studio sweep only: the grid asks for it where it
# was never photographed (on the beach, on sand), epoch by epoch, where strength 0 shows whatever the
# base model makes of the unknown word (a can of one of its own colours).
# Point the same job at a real checkpoint with KILN_BASE_MODEL:
#   KILN_BASE_MODEL=~/models/v1-5-pruned-emaonly.safetensors ./installers/linux/main-job.sh
# Uses the normal per-user socket and data dir unless KILN_SOCKET / KILN_DATA_DIR say otherwise.
# Installed from the package, the same script is /usr/share/kiln/demo/main-job.sh and uses the
# installed kiln with Kiln Mini and the photos beside it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ -f "$here/../../CMakeLists.txt" ]; then  # the source tree
  root=$(cd "$here/../.." && pwd)
  bin=${KILN_BUILD_DIR:-$root/build}/bin
  kiln="$bin/kiln"
  export KILN_DAEMON="$bin/kilnd"
  mini="$root/mini/kiln-mini.safetensors"
  layers="$root/installers/sample-data/product"
else  # the package
  kiln=$(command -v kiln) || { echo "main-job: kiln is not on PATH; install Kiln's package" >&2; exit 1; }
  mini="$here/kiln-mini.safetensors"
  layers="$here/product"
fi

base=${KILN_BASE_MODEL:-$mini}
name=${KILN_LORA_NAME:-sample-tin}
trigger=kilntin
if [ -z "${KILN_BASE_MODEL:-}" ]; then
  # Kiln Mini works at 64×64 and was sampled with Euler at CFG 5 in its training. 500 steps at
  # 1e-3 for both halves: the loss on held-out photos of the tin still falls at the last epoch
  # (twice as many steps overfit: it rose again after the second, measured on the step-4,632 model);
  # the text encoder has to learn a word Kiln Mini never read, so it gets the U-Net's rate rather
  # than the usual tenth.
  size=(--resolution 64 --repeats 20)
  train_set=(--set resolution=64 --set min_bucket_reso=64 --set max_bucket_reso=128 --set max_train_epochs=5
             --set learning_rate=1e-3 --set text_encoder_lr=1e-3 --set seed=1 --set sample_every_n_epochs=1 --set sample_sampler=euler
             --set "sample_prompts=a photo of a $trigger can on the beach, sunlight --l 5 --s 20")
  grid_set=(--strengths 0,0.5,1 --steps 20 --cfg 5 --sampler Euler --prompt2 "a $trigger can on sand")
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
echo "== a dataset from the sample product photos (whole photos, captions beside them, checked)"
"$kiln" dataset rm "$name" >/dev/null 2>&1 || true
"$kiln" dataset create "$name" --from "$layers" --preset product \
  --trigger "$trigger" --crop center --no-center-subject "${size[@]}"
echo
echo "== training '$name' with the product preset (one LoRA file per epoch, samples, loss curve)"
if [ -z "${KILN_BASE_MODEL:-}" ]; then
  echo "   (500 steps: on Kiln Mini more overfit the twenty photos; the step warning below is for full-size models)"
fi
"$kiln" loras remove "$name" >/dev/null 2>&1 || true
"$kiln" train --base "$name-base" --dataset "$name" --name "$name" --preset product "${train_set[@]}"
echo
echo "== the validation grid: epochs × strengths, one seed"
"$kiln" grid --lora "$name" --prompt "a photo of a $trigger can on the beach, sunlight" "${grid_set[@]}"
echo
data_dir=$("$kiln" status --json | sed -n 's/.*"data_dir": *"\([^"]*\)".*/\1/p' | head -1)
echo "Everything is in ${data_dir:-the data dir}/loras/$name/ (epoch files, final file, loss.png, samples/, grid.png)."
if [ -z "${KILN_BASE_MODEL:-}" ]; then
  echo "This ran on Kiln Mini, a 64×64 model of simple product scenes. Try it yourself, e.g.:"
  echo "  $kiln generate --model $name-base --prompt \"a red glass bottle on a wooden table\" --sampler Euler --cfg 5 --out bottle.png"
  echo "  $kiln generate --model $name-base --prompt \"a $trigger can on sand\" --lora $name --sampler Euler --cfg 5 --batch 4 --out tin.png"
  echo "For real results at 512², a real checkpoint: KILN_BASE_MODEL=/path/to/v1-5-pruned-emaonly.safetensors $0"
fi
echo "The daemon keeps running for your plugins; stop it with: $kiln daemon stop"
