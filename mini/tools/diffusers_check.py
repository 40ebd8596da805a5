#!/usr/bin/env python3
"""Prove that Kiln Mini's single-file checkpoint is readable by the reference stack (diffusers 0.27.2).

Loads the file the way `from_single_file(..., original_config_file=...)` does (diffusers'
loaders/single_file_utils: LDM config -> diffusers config -> key conversion), with strict loading
and a check that every tensor of the file ends up in a model. Cross-checks the names against the
opposite-direction mapping of diffusers' scripts/convert_diffusers_to_original_stable_diffusion.py,
prints a few numeric sanity checks and samples a grid of images with diffusers' Euler scheduler.

Run from the repository root (needs the refbench reference sources, see shared/refbench/README.md):
  SDREF_ROOT=/tmp/ref PYTHONPATH=/work/shared/refbench OMP_NUM_THREADS=1 nice -n 19 \
      /usr/bin/python3 mini/tools/diffusers_check.py [OUT.png] [--ckpt FILE]
"""
import argparse
import contextlib
import io
import json
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
try:
    from sdref import env
except ImportError:  # refbench sits beside the project checkout (../shared/refbench)
    sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "shared", "refbench"))
    from sdref import env

PROMPTS = [
    "a red glass bottle on a wooden table, studio light",
    "a blue ceramic mug on grass, sunlight",
    "a yellow plastic ball on sand",
    "a green metal can on a marble table",
]

# The diffusers configs documented in mini/README.md ("Compatibility"); only compared, never used.
README_UNET = dict(block_out_channels=[64, 128, 128], layers_per_block=2, cross_attention_dim=128,
                   attention_head_dim=8, sample_size=8,
                   down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
                   up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"])
README_VAE = dict(block_out_channels=[32, 64, 64, 128], layers_per_block=1, latent_channels=4,
                  scaling_factor=0.18215)

UNET_PREFIX, VAE_PREFIX = "model.diffusion_model.", "first_stage_model."
TE_PREFIX = "cond_stage_model.transformer."


def ldm_original_config(kc, ckpt, unet_heads, image_size):
    """The LDM yaml (as a dict) that `from_single_file` would be given for this file: sizes from the
    `kiln.config` metadata, channel counts the metadata does not carry from the tensor shapes."""
    u, v = kc["unet"], kc["vae"]
    proj_in = ckpt[UNET_PREFIX + "input_blocks.%d.1.proj_in.weight" % (1 + (u["num_res_blocks"] + 1) * u["attention"].index(1))]
    return {"model": {"params": {
        "scale_factor": v["scaling_factor"],
        "unet_config": {"params": {
            "image_size": image_size // 2 ** (len(v["channel_mult"]) - 1),
            "in_channels": ckpt[UNET_PREFIX + "input_blocks.0.0.weight"].shape[1],
            "out_channels": ckpt[UNET_PREFIX + "out.2.weight"].shape[0],
            "model_channels": u["model_channels"],
            # LDM counts the downsampling factor: level i runs at 1/2**i of the latent size
            "attention_resolutions": [2 ** i for i, a in enumerate(u["attention"]) if a],
            "num_res_blocks": u["num_res_blocks"],
            "channel_mult": u["channel_mult"],
            "num_heads": unet_heads,  # not recoverable from weights; SD1 uses 8 heads
            "transformer_depth": u["transformer_depth"],
            "context_dim": u["context_dim"],
            "use_linear_in_transformer": proj_in.ndim == 2,  # SD1: 1x1 conv, SD2: linear
        }},
        "first_stage_config": {"params": {"embed_dim": ckpt[VAE_PREFIX + "post_quant_conv.weight"].shape[0],
                                          "ddconfig": {
            "ch": v["channels"], "ch_mult": v["channel_mult"], "num_res_blocks": v["num_res_blocks"],
            "in_channels": ckpt[VAE_PREFIX + "encoder.conv_in.weight"].shape[1],
            "out_ch": ckpt[VAE_PREFIX + "decoder.conv_out.weight"].shape[0],
            "z_channels": ckpt[VAE_PREFIX + "decoder.conv_in.weight"].shape[1],
            "resolution": image_size, "attn_resolutions": [], "double_z": True, "dropout": 0.0,
        }}},
    }}}


def compare_readme(name, cfg, expected):
    bad = {k: (cfg.get(k), want) for k, want in expected.items() if list_or(cfg.get(k)) != list_or(want)}
    print(f"  {name} config vs README: " + ("same" if not bad else f"DIFFERS {bad}"))


def list_or(x):
    return list(x) if isinstance(x, (list, tuple)) else x


def tokenize(tok, text, length=77):
    """SD1's CLIPTokenizer(padding="max_length"): <sot> tokens <eot>, padded with <eot> to 77."""
    sot, eot = tok.encoder["<|startoftext|>"], tok.encoder["<|endoftext|>"]
    ids = [sot] + tok.encode(text)[:length - 2] + [eot]
    return ids + [eot] * (length - len(ids))


def stats(name, t):
    t = t.float()
    print(f"  {name}: shape {tuple(t.shape)} finite {bool(t.isfinite().all())} "
          f"mean {t.mean():+.4f} std {t.std():.4f} min {t.min():+.3f} max {t.max():+.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?", default="/tmp/diffusers-check.png")
    ap.add_argument("--ckpt", default=os.path.join(HERE, "..", "kiln-mini.safetensors"))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--cfg", type=float, default=5.0)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--prompts", nargs="+", default=PROMPTS)
    ap.add_argument("--unet-heads", type=int, default=8, help="attention heads per UNet transformer (SD1: 8)")
    ap.add_argument("--text-heads", type=int, default=2, help="CLIP text heads (Kiln Mini: 2)")
    args = ap.parse_args()
    t_start = time.time()

    env.setup()  # diffusers + pure-python safetensors on sys.path
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from diffusers.loaders import single_file_utils as sfu
    from sdref.clip_hf import CLIPTextModel
    from sdref.tiny import SD15_SCHEDULER_CONFIG
    _, simple_tokenizer = env.import_clip()
    torch.set_grad_enabled(False)

    # ---------------------------------------------------------------- read
    path = os.path.abspath(args.ckpt)
    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
    ckpt = load_file(path)
    kc = json.loads(meta["kiln.config"])
    image_size = int(meta.get("modelspec.resolution", "64x64").split("x")[0])
    print(f"file {path}: {len(ckpt)} tensors, model {meta.get('kiln.model')!r}, "
          f"unet_step {meta.get('kiln.unet_step')}, weights {meta.get('kiln.weights')}, {image_size}px")
    print(f"  kiln.config {meta['kiln.config']}")
    owner = {t.data_ptr(): k for k, t in ckpt.items()}  # which file key a converted tensor came from
    assert len(owner) == len(ckpt), "file tensors share memory; provenance tracking needs distinct tensors"

    # ---------------------------------------------------------------- configs (diffusers' own derivation)
    original = ldm_original_config(kc, ckpt, args.unet_heads, image_size)
    unet_cfg = sfu.create_unet_diffusers_config(original, image_size=image_size)
    vae_cfg = sfu.create_vae_diffusers_config(original, image_size=image_size)
    tok_emb = ckpt[TE_PREFIX + "text_model.embeddings.token_embedding.weight"]
    pos_emb = ckpt[TE_PREFIX + "text_model.embeddings.position_embedding.weight"]
    te_dims = dict(vocab=tok_emb.shape[0], width=tok_emb.shape[1], heads=args.text_heads,
                   mlp=kc["text"]["mlp_width"], layers=kc["text"]["layers"], ctx=pos_emb.shape[0])
    assert te_dims["width"] == kc["text"]["width"]
    print("configs derived by diffusers.loaders.single_file_utils:")
    print("  unet", {k: unet_cfg[k] for k in ("sample_size", "block_out_channels", "down_block_types", "up_block_types",
                                              "layers_per_block", "cross_attention_dim", "attention_head_dim",
                                              "use_linear_projection", "transformer_layers_per_block")})
    print("  vae ", {k: vae_cfg[k] for k in ("block_out_channels", "layers_per_block", "latent_channels", "scaling_factor")})
    print("  text", te_dims)
    compare_readme("unet", unet_cfg, README_UNET)
    compare_readme("vae", vae_cfg, README_VAE)

    # ---------------------------------------------------------------- convert + strict load
    t0 = time.time()
    unet_sd = sfu.convert_ldm_unet_checkpoint(dict(ckpt), unet_cfg)  # dict(): the converter pops keys
    vae_sd = sfu.convert_ldm_vae_checkpoint(dict(ckpt), vae_cfg)
    # as create_text_encoder_from_ldm_clip_checkpoint: strip the prefix, HF names remain
    te_sd = {k[len(TE_PREFIX):]: t for k, t in ckpt.items() if k.startswith(TE_PREFIX)}
    # position_ids is a non-persistent buffer in current transformers and in refbench's module:
    # check it holds what the buffer holds instead of loading it
    pos_ids = te_sd.pop("text_model.embeddings.position_ids")

    unet = UNet2DConditionModel(**unet_cfg).eval()
    vae = AutoencoderKL(**vae_cfg).eval()
    te = CLIPTextModel(te_dims["vocab"], te_dims["width"], te_dims["heads"], te_dims["mlp"],
                       te_dims["layers"], te_dims["ctx"]).eval()
    print("strict load (all model keys present, no extra keys, equal shapes):")
    used = {TE_PREFIX + "text_model.embeddings.position_ids"}
    for name, model, sd, prefix in (("unet", unet, unet_sd, UNET_PREFIX), ("vae", vae, vae_sd, VAE_PREFIX),
                                    ("text", te, te_sd, TE_PREFIX)):
        model.load_state_dict(sd, strict=True)  # raises on a missing/unexpected key or a shape mismatch
        sources = [owner.get(t.data_ptr()) for t in sd.values()]
        assert None not in sources and len(set(sources)) == len(sources), f"{name}: a tensor not from the file, or reused"
        used.update(sources)
        n_file = sum(k.startswith(prefix) for k in ckpt)
        print(f"  {name}: {len(sd)} model tensors <- {len(sd)} file tensors (file has {n_file} under {prefix}*); "
              f"model state_dict {len(model.state_dict())} keys, missing 0, unexpected 0")
    assert torch.equal(pos_ids.view(-1), torch.arange(te_dims["ctx"])), "position_ids is not arange(77)"
    unused = sorted(set(ckpt) - used)
    print(f"  file keys used: {len(used)}/{len(ckpt)} (position_ids checked == arange({te_dims['ctx']})); "
          f"unused: {unused if unused else 'none'}  [{time.time() - t0:.1f}s]")

    # ---------------------------------------------------------------- cross-check with the convert script
    # The opposite direction (diffusers -> original) from a second, independent diffusers mapping: are
    # the names and values it writes those of this file? Its UNet table is hard-coded for SD1.5's
    # 4-level layout, so disagreements there are the script's limit, not the file's.
    conv, _ = env.import_diffusers_convert_script()
    with contextlib.redirect_stdout(io.StringIO()):  # the VAE converter prints every reshape
        back = {**{UNET_PREFIX + k: v for k, v in conv.convert_unet_state_dict(unet.state_dict()).items()},
                **{VAE_PREFIX + k: v for k, v in conv.convert_vae_state_dict(vae.state_dict()).items()},
                **{TE_PREFIX + k: v for k, v in conv.convert_text_enc_state_dict(te.state_dict()).items()}}
    same = [k for k in back if k in ckpt and back[k].shape == ckpt[k].shape and torch.equal(back[k].half(), ckpt[k])]
    odd = sorted(set(back) - set(same))
    print(f"convert_diffusers_to_original_stable_diffusion.py: {len(same)}/{len(back)} tensors land on the file's "
          f"name with equal shape and value; {len(odd)} do not" + (":" if odd else ""))
    groups = {}
    for k in odd:
        groups.setdefault(".".join(k.split(".")[2:4]) + (" (name not in file)" if k not in ckpt else " (value/shape differs)"), []).append(k)
    for g_name, keys in sorted(groups.items()):
        print(f"    {len(keys):3d} under {g_name}, e.g. {keys[0]}")

    # ---------------------------------------------------------------- text embeddings
    tok = simple_tokenizer.SimpleTokenizer()
    prompts = args.prompts
    ids = torch.tensor([tokenize(tok, p) for p in prompts + [""]])
    emb = te(ids)[0]  # last hidden state after final_layer_norm (SD1, clip skip 1)
    cond, uncond = emb[:-1], emb[-1:]

    # ---------------------------------------------------------------- numeric sanity
    print("numeric checks (fixed random inputs):")
    stats("text embedding", cond)
    g = torch.Generator().manual_seed(0)
    hw = image_size // 2 ** (len(vae_cfg["block_out_channels"]) - 1)
    noise = torch.randn((1, unet_cfg["in_channels"], hw, hw), generator=g)
    # at t=999 the input is ~all noise (alpha_bar ~ 0.005), so a trained eps-model returns ~the input
    eps = unet(noise, 999, encoder_hidden_states=cond[:1]).sample
    stats("unet eps, t=999, x=N(0,1)", eps)
    print(f"  cos(eps, x) at t=999: {torch.nn.functional.cosine_similarity(eps.flatten(), noise.flatten(), 0):.4f} "
          "(trained model: close to 1)")
    # the sampler hands the VAE latents / scaling_factor, so decode a unit-variance latent the same way
    dec = vae.decode(torch.randn((1, vae_cfg["latent_channels"], hw, hw), generator=g) / vae.config.scaling_factor).sample
    stats("vae decode of N(0,1)/scaling_factor latent (images: -1..1)", dec)

    # ---------------------------------------------------------------- sample (StableDiffusionPipeline's loop)
    # The pipeline class itself needs `transformers`; this is its __call__ with prompt embeddings given.
    t0 = time.time()
    sched = EulerDiscreteScheduler.from_config(SD15_SCHEDULER_CONFIG)  # what users swap into SD1.5
    rows = []
    for seed in args.seeds:
        sched.set_timesteps(args.steps)  # also resets the scheduler's step index
        # one CPU generator per image seeded with its seed, as Kiln (and A1111) draw it: a seed gives
        # the same starting noise whatever the prompt, so columns are comparable with Kiln's grids
        noise = torch.randn((1, unet_cfg["in_channels"], hw, hw), generator=torch.Generator().manual_seed(seed))
        lat = noise.repeat(len(prompts), 1, 1, 1) * sched.init_noise_sigma
        ctx = torch.cat([uncond.expand_as(cond), cond])
        for t in sched.timesteps:
            inp = sched.scale_model_input(torch.cat([lat, lat]), t)
            e_u, e_c = unet(inp, t, encoder_hidden_states=ctx).sample.chunk(2)
            lat = sched.step(e_u + args.cfg * (e_c - e_u), t, lat).prev_sample
        rows.append((vae.decode(lat / vae.config.scaling_factor).sample / 2 + 0.5).clamp(0, 1))
    t_gen = time.time() - t0
    imgs = torch.stack(rows, 1)  # [prompt, seed, 3, H, W]
    stats("generated images (0..1)", imgs)
    # VAE round trip on the generated images: a working encoder/decoder pair reconstructs them closely
    x = imgs.flatten(0, 1) * 2 - 1
    rec = vae.decode(vae.encode(x).latent_dist.mean).sample.clamp(-1, 1)
    mse = ((rec - x) / 2).pow(2).mean().item()
    print(f"  vae encode->decode of the generated images: PSNR {10 * math.log10(1 / max(mse, 1e-12)):.1f} dB")

    save_grid(imgs, args.out, args.seeds)
    print(f"grid: {args.out} (rows = prompts, columns = seeds {args.seeds}):")
    for i, p in enumerate(prompts):
        print(f"  row {i + 1}: {p}")
    print(f"sampling: Euler, {args.steps} steps, CFG {args.cfg}, {image_size}x{image_size}, "
          f"{len(prompts) * len(args.seeds)} images in {t_gen:.1f}s; total {time.time() - t_start:.1f}s")
    print("SUMMARY: " + ("OK" if not unused else "UNUSED KEYS") +
          f" - {len(used)}/{len(ckpt)} file keys loaded strictly into diffusers UNet/VAE + CLIP text model")


def save_grid(imgs, out, seeds, scale=3):
    """Prompt rows x seed columns, each 64px image scaled up (nearest) so it is viewable."""
    from PIL import Image, ImageDraw
    n_p, n_s, _, h, w = imgs.shape
    pad, label = 4, 14
    grid = Image.new("RGB", (n_s * (w * scale + pad) + pad, label + n_p * (h * scale + pad) + pad), "white")
    draw = ImageDraw.Draw(grid)
    for j, s in enumerate(seeds):
        draw.text((pad + j * (w * scale + pad), 2), f"seed {s}", fill="black")
    for i in range(n_p):
        for j in range(n_s):
            a = (imgs[i, j].permute(1, 2, 0) * 255).round().byte().numpy()
            im = Image.fromarray(a).resize((w * scale, h * scale), Image.NEAREST)
            grid.paste(im, (pad + j * (w * scale + pad), label + pad + i * (h * scale + pad)))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    grid.save(out)


if __name__ == "__main__":
    main()
