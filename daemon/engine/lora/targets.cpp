#include "engine/lora/targets.h"

#include <torch/torch.h>

#include "engine/error.h"
#include "engine/io/key_map.h"

namespace kiln::engine::lora {

namespace {

std::string underscores(std::string s) {
  for (auto& c : s)
    if (c == '.') c = '_';
  return s;
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

UnetLayout layout_of(const models::UNetConfig& c) {
  UnetLayout layout;
  layout.layers_per_block = static_cast<int>(c.num_res_blocks);
  layout.up_block_has_attention.assign(c.attention.rbegin(), c.attention.rend());
  return layout;
}

// `te_prefix`: the kohya prefix of a text encoder; `ldm_names`: the family writes UNet names in LDM form.
void add_layers(std::vector<LoraLayer>& out, const torch::nn::Module& root, Component component,
                const UnetLayout* layout, const std::string& te_prefix, bool ldm_names) {
  for (const auto& item : root.named_modules("", /*include_self=*/false)) {
    LoraLayer l;
    l.path = item.key();
    l.component = component;
    const auto& module = item.value();
    if (auto lin = std::dynamic_pointer_cast<models::LinearImpl>(module)) {
      l.linear = models::Linear(lin);
      l.in = lin->weight.size(1);
      l.out = lin->weight.size(0);
    } else if (auto conv = std::dynamic_pointer_cast<models::Conv2dImpl>(module)) {
      l.conv = models::Conv2d(conv);
      l.in = conv->weight.size(1);
      l.out = conv->weight.size(0);
      l.kernel = conv->weight.size(2);
      l.stride = conv->stride;
      l.padding = conv->padding;
    } else {
      continue;
    }
    if (component == Component::TextEncoder) {
      l.diffusers_path = l.path;
      l.kohya_name = te_prefix + underscores(l.path);
      l.ldm_kohya_name = l.kohya_name;
    } else {
      const auto diffusers = unet_module_ldm_to_diffusers(l.path, *layout);
      if (!diffusers) throw Error(ErrorKind::Internal, "no diffusers name for the UNet layer " + l.path);
      l.diffusers_path = *diffusers;
      l.kohya_name = "lora_unet_" + underscores(*diffusers);
      l.ldm_kohya_name = "lora_unet_" + underscores(l.path);
      if (ldm_names) std::swap(l.kohya_name, l.ldm_kohya_name);
    }
    out.push_back(std::move(l));
  }
}

}  // namespace

const char* to_string(Component c) { return c == Component::TextEncoder ? "text encoder" : "UNet"; }

models::Adaptable& LoraLayer::adaptable() const {
  return is_conv() ? static_cast<models::Adaptable&>(*conv.ptr()) : static_cast<models::Adaptable&>(*linear.ptr());
}

const torch::Tensor& LoraLayer::weight() const { return is_conv() ? conv->weight : linear->weight; }

std::vector<LoraLayer> lora_layers(const models::StableDiffusion& model) {
  std::vector<LoraLayer> out;
  const FamilyTraits& family = model.traits();
  const auto encoders = model.text_encoders();
  for (size_t i = 0; i < encoders.size(); ++i)
    add_layers(out, *encoders[i], Component::TextEncoder, nullptr, family.text_encoders.at(i).kohya_prefix, false);
  const auto layout = layout_of(model.unet->config());
  add_layers(out, *model.unet, Component::UNet, &layout, "", family.kohya_unet_ldm_names);
  return out;
}

TargetRank kohya_default_target(const LoraLayer& l, bool with_conv) {
  const std::string& p = l.diffusers_path;
  if (l.component == Component::TextEncoder)
    return contains(p, ".self_attn.") || contains(p, ".mlp.") ? TargetRank::Linear : TargetRank::None;
  // Transformer2DModel lives at {down,up}_blocks.i.attentions.j / mid_block.attentions.0.
  if (contains(p, ".attentions.")) return l.is_conv3x3() ? TargetRank::None : TargetRank::Linear;
  if (with_conv && (contains(p, ".resnets.") || contains(p, ".downsamplers.") || contains(p, ".upsamplers.")))
    return l.is_conv3x3() ? TargetRank::Conv : TargetRank::Linear;
  return TargetRank::None;
}

}  // namespace kiln::engine::lora
