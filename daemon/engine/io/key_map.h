#pragma once
// Name maps between the diffusers layout and the original single-file (LDM / CompVis) layout of
// SD1.x/2.x weights. Kiln's models use the LDM names; diffusers folders and kohya LoRA names
// (which are diffusers module paths with '.' → '_') are translated with these functions.
//
// All functions work on module paths ("down_blocks.0.resnets.1.conv1") and equally on parameter
// names ("down_blocks.0.resnets.1.conv1.weight"): the mapping only rewrites the leading part and
// keeps the rest. They return nullopt for names outside the layout they know.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kiln::engine {

// The UNet facts the index arithmetic needs (SD1.x and SD2.x share them).
struct UnetLayout {
  int layers_per_block = 2;  // ResNets per down block; up blocks have one more
  // Whether up block i (diffusers order) has attentions: that decides whether its upsampler
  // sits at output_blocks.k.1 or output_blocks.k.2.
  std::vector<bool> up_block_has_attention = {false, true, true, true};
};

// "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q" → "input_blocks.1.1.transformer_blocks.0.attn1.to_q",
// "mid_block.resnets.1.time_emb_proj" → "middle_block.2.emb_layers.1", "conv_out" → "out.2", ...
std::optional<std::string> unet_module_diffusers_to_ldm(const std::string& path, const UnetLayout& layout = {});
// The inverse: "output_blocks.2.1.conv" → "up_blocks.0.upsamplers.0.conv", ...
std::optional<std::string> unet_module_ldm_to_diffusers(const std::string& path, const UnetLayout& layout = {});

// VAE names including their "encoder."/"decoder." part: "decoder.up_blocks.0.resnets.0.conv_shortcut.weight"
// → "decoder.up.3.block.0.nin_shortcut.weight", "encoder.mid_block.attentions.0.to_q.weight" →
// "encoder.mid.attn_1.q.weight" (also the older "query/key/value/proj_attn" names).
// `up_blocks` is the decoder's number of up blocks (diffusers numbers them in reverse).
std::optional<std::string> vae_diffusers_to_ldm(const std::string& name, int up_blocks = 4);

// True for the VAE attention projections that LDM stores as 1x1 convolutions [C, C, 1, 1] and
// diffusers (and some single files) as Linear [C, C]: "{encoder,decoder}.mid.attn_1.{q,k,v,proj_out}.weight".
bool is_vae_attention_projection(const std::string& ldm_name);

// Text encoder names in Hugging Face CLIPTextModel form: adds the "text_model." level that older
// files lack; nullopt for the position_ids buffer (not a weight) and for names outside the model.
std::optional<std::string> text_encoder_normalize(const std::string& name);

// One Hugging Face CLIPTextModel(WithProjection) tensor made from a tensor of an OpenCLIP text
// tower (SDXL's second encoder as single files store it under "conditioner.embedders.1.model."):
// token_embedding, positional_embedding (a plain tensor), transformer.resblocks.N.{attn.in_proj_weight
// / in_proj_bias (q, k, v stacked on the rows), attn.out_proj, ln_1, ln_2, mlp.c_fc, mlp.c_proj},
// ln_final, and text_projection stored [width, proj] and applied as x @ P (HF's weight is its transpose).
struct OpenClipPiece {
  std::string hf_name;
  int64_t part = -1;       // q, k, v = 0, 1, 2: that third of the rows; -1 the whole tensor
  bool transpose = false;  // text_projection
};
// Pieces of `name`; empty for tensors that are no weight of the tower (logit_scale, attn_mask);
// nullopt for names outside the layout.
std::optional<std::vector<OpenClipPiece>> open_clip_text_to_hf(const std::string& name);

}  // namespace kiln::engine
