#!/usr/bin/env bash
# Our workplace's device tool sends the working tree to the GPU machine, at most 64 MiB of it, and
# the fixtures alone are 130 MB. `slim` leaves the diffusers copy of the fixture model (35 MB of
# weights) and the inpainting fixture's weights (52 MB) behind by untracking and ignoring it in this checkout only; `restore` undoes that.
# Never commit while slim: the commit would delete the fixture. `status` tells which state it is in.
#   installers/gpu/slim-tree.sh slim|restore|status
set -euo pipefail
cd "$(dirname "$0")/../.."
weights=(tests/fixtures/sd15-tiny/diffusers/unet/diffusion_pytorch_model.safetensors
         tests/fixtures/sd15-tiny/diffusers/text_encoder/model.safetensors
         tests/fixtures/sd15-tiny/diffusers/vae/diffusion_pytorch_model.safetensors
         tests/fixtures/sd15-inpaint-tiny/model.safetensors
         tests/fixtures/sd15-inpaint-tiny/diffusers/unet/diffusion_pytorch_model.safetensors)
exclude=.git/info/exclude
marker="# kiln slim-tree (installers/gpu/slim-tree.sh restore removes these)"
case "${1:-status}" in
  slim)
    git rm -q --cached -- "${weights[@]}"
    grep -qF "$marker" "$exclude" 2>/dev/null || { echo "$marker"; printf '/%s\n' "${weights[@]}"; } >>"$exclude"
    echo "slim-tree: ${#weights[@]} fixture files untracked here (the files stay on disk); run 'restore' before committing"
    ;;
  restore)
    git reset -q -- "${weights[@]}"
    if [ -f "$exclude" ]; then
      grep -vF -e "$marker" $(printf -- '-e /%s ' "${weights[@]}") "$exclude" >"$exclude.tmp" || true
      mv "$exclude.tmp" "$exclude"
    fi
    echo "slim-tree: restored"
    ;;
  status)
    if git diff --cached --name-only -- "${weights[@]}" | grep -q .; then echo slim; else echo full; fi
    ;;
  *) echo "usage: $0 slim|restore|status" >&2; exit 2 ;;
esac
