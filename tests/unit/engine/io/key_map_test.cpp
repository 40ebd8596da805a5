#include "engine/io/key_map.h"

#include <algorithm>
#include <map>
#include <set>

#include <gtest/gtest.h>

#include "engine/io/safetensors.h"
#include "support/reference.h"

namespace kiln::engine {
namespace {

std::vector<std::string> names_in(const std::string& relative) {
  auto file = SafeTensorsFile::open(kiln::test::sd15_tiny_dir() / relative);
  std::vector<std::string> names;
  for (const auto& t : file->tensors()) names.push_back(t.name);
  return names;
}

std::string module_of(const std::string& param) { return param.substr(0, param.rfind('.')); }

TEST(KeyMap, UnetDiffusersToLdmExamples) {
  const std::map<std::string, std::string> expected = {
      {"conv_in", "input_blocks.0.0"},
      {"time_embedding.linear_1", "time_embed.0"},
      {"time_embedding.linear_2.bias", "time_embed.2.bias"},
      {"conv_norm_out", "out.0"},
      {"conv_out.weight", "out.2.weight"},
      {"down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q", "input_blocks.1.1.transformer_blocks.0.attn1.to_q"},
      {"down_blocks.0.resnets.1.conv1", "input_blocks.2.0.in_layers.2"},
      {"down_blocks.1.resnets.0.conv_shortcut.weight", "input_blocks.4.0.skip_connection.weight"},
      {"down_blocks.0.downsamplers.0.conv", "input_blocks.3.0.op"},
      {"down_blocks.2.downsamplers.0.conv.bias", "input_blocks.9.0.op.bias"},
      {"down_blocks.3.resnets.1.norm2", "input_blocks.11.0.out_layers.0"},
      {"mid_block.resnets.0.time_emb_proj", "middle_block.0.emb_layers.1"},
      {"mid_block.attentions.0.proj_in", "middle_block.1.proj_in"},
      {"mid_block.resnets.1.conv2", "middle_block.2.out_layers.3"},
      {"up_blocks.0.resnets.2.norm1", "output_blocks.2.0.in_layers.0"},
      {"up_blocks.0.upsamplers.0.conv", "output_blocks.2.1.conv"},
      {"up_blocks.1.upsamplers.0.conv.weight", "output_blocks.5.2.conv.weight"},
      {"up_blocks.3.attentions.2.transformer_blocks.0.ff.net.0.proj", "output_blocks.11.1.transformer_blocks.0.ff.net.0.proj"},
      {"up_blocks.3.resnets.2", "output_blocks.11.0"},
  };
  for (const auto& [diffusers, ldm] : expected) {
    EXPECT_EQ(unet_module_diffusers_to_ldm(diffusers), ldm) << diffusers;
    EXPECT_EQ(unet_module_ldm_to_diffusers(ldm), diffusers) << ldm;
  }
}

TEST(KeyMap, UnetUnknownNamesAreRejected) {
  // add_embedding.linear_1/2 and label_emb.0.0/2 are SDXL's (CheckpointSdxl.OpenClipNamesMapToHuggingFaceNames).
  for (const char* name : {"add_embedding.linear_3.weight", "down_blocks.0.resnets.2.conv1", "up_blocks.0.resnets.3.conv1",
                           "down_blocks.x.resnets.0.conv1", "down_blocks.0.resnets.0.nonsense", "mid_block.resnets.2.conv1",
                           "down_blocks.0.downsamplers.1.conv", "up_blocks.0.upsamplers.0.op", "time_embedding.linear_3",
                           "encoder.conv_in", ""})
    EXPECT_FALSE(unet_module_diffusers_to_ldm(name).has_value()) << name;
  for (const char* name : {"input_blocks.0.1", "input_blocks.1.2.x", "output_blocks.2.2.conv", "middle_block.3.x",
                           "time_embed.1", "out.1", "label_emb.0.1", "label_emb.1.0", "input_blocks.3.0.conv", "input_blocks.1.0.skip"})
    EXPECT_FALSE(unet_module_ldm_to_diffusers(name).has_value()) << name;
}

TEST(KeyMap, EveryFixtureUnetNameMapsToTheSingleFileAndBack) {
  std::set<std::string> ldm;
  for (const auto& n : names_in("model.safetensors"))
    if (n.rfind("model.diffusion_model.", 0) == 0) ldm.insert(n.substr(22));
  std::set<std::string> mapped;
  for (const auto& n : names_in("diffusers/unet/diffusion_pytorch_model.safetensors")) {
    const auto m = unet_module_diffusers_to_ldm(n);
    ASSERT_TRUE(m.has_value()) << n;
    EXPECT_TRUE(ldm.count(*m)) << n << " -> " << *m;
    EXPECT_EQ(unet_module_ldm_to_diffusers(*m), n);
    mapped.insert(*m);
  }
  EXPECT_EQ(mapped, ldm) << "every single-file UNet tensor is reached exactly once";
}

TEST(KeyMap, KohyaLoraModulesResolveToSingleFileModules) {
  // kohya names are diffusers module paths with '.' → '_'; resolve them through the diffusers
  // module list, then to LDM modules that must exist in the single-file UNet.
  std::map<std::string, std::string> by_kohya;
  for (const auto& n : names_in("diffusers/unet/diffusion_pytorch_model.safetensors")) {
    std::string module = module_of(n), flat = module;
    std::replace(flat.begin(), flat.end(), '.', '_');
    by_kohya["lora_unet_" + flat] = module;
  }
  std::set<std::string> ldm_modules;
  for (const auto& n : names_in("model.safetensors"))
    if (n.rfind("model.diffusion_model.", 0) == 0) ldm_modules.insert(module_of(n.substr(22)));

  const auto& c = kiln::test::Reference::get().case_by_id("lora/files");
  size_t checked = 0;
  for (const auto& m : c.at("expected").at("lora_locon.safetensors").at("modules")) {
    const std::string kohya = m.get<std::string>();
    if (kohya.rfind("lora_unet_", 0) != 0) continue;
    ASSERT_TRUE(by_kohya.count(kohya)) << kohya;
    const auto ldm = unet_module_diffusers_to_ldm(by_kohya[kohya]);
    ASSERT_TRUE(ldm.has_value()) << kohya;
    EXPECT_TRUE(ldm_modules.count(*ldm)) << kohya << " -> " << *ldm;
    ++checked;
  }
  EXPECT_GT(checked, 100u);
}

TEST(KeyMap, VaeDiffusersToLdm) {
  const std::map<std::string, std::string> expected = {
      {"encoder.conv_in.weight", "encoder.conv_in.weight"},
      {"encoder.conv_norm_out.bias", "encoder.norm_out.bias"},
      {"encoder.down_blocks.1.resnets.0.conv_shortcut.weight", "encoder.down.1.block.0.nin_shortcut.weight"},
      {"encoder.down_blocks.2.downsamplers.0.conv.bias", "encoder.down.2.downsample.conv.bias"},
      {"encoder.mid_block.resnets.1.norm2.weight", "encoder.mid.block_2.norm2.weight"},
      {"decoder.mid_block.attentions.0.group_norm.weight", "decoder.mid.attn_1.norm.weight"},
      {"decoder.mid_block.attentions.0.to_q.weight", "decoder.mid.attn_1.q.weight"},
      {"decoder.mid_block.attentions.0.to_out.0.bias", "decoder.mid.attn_1.proj_out.bias"},
      {"decoder.mid_block.attentions.0.query.weight", "decoder.mid.attn_1.q.weight"},
      {"decoder.mid_block.attentions.0.proj_attn.weight", "decoder.mid.attn_1.proj_out.weight"},
      {"decoder.up_blocks.0.resnets.2.conv1.weight", "decoder.up.3.block.2.conv1.weight"},
      {"decoder.up_blocks.3.resnets.0.conv_shortcut.bias", "decoder.up.0.block.0.nin_shortcut.bias"},
      {"decoder.up_blocks.1.upsamplers.0.conv.weight", "decoder.up.2.upsample.conv.weight"},
      {"post_quant_conv.weight", "post_quant_conv.weight"},
  };
  for (const auto& [diffusers, ldm] : expected) EXPECT_EQ(vae_diffusers_to_ldm(diffusers), ldm) << diffusers;
  for (const char* bad : {"decoder.up_blocks.4.resnets.0.conv1.weight", "encoder.up_blocks.0.resnets.0.conv1.weight",
                          "decoder.mid_block.attentions.1.to_q.weight", "decoder.mid_block.attentions.0.to_out.1.weight",
                          "something.else"})
    EXPECT_FALSE(vae_diffusers_to_ldm(bad).has_value()) << bad;
  EXPECT_TRUE(is_vae_attention_projection("decoder.mid.attn_1.proj_out.weight"));
  EXPECT_FALSE(is_vae_attention_projection("decoder.mid.attn_1.proj_out.bias"));
  EXPECT_FALSE(is_vae_attention_projection("decoder.mid.attn_1.norm.weight"));
}

TEST(KeyMap, TextEncoderNamesAreNormalised) {
  EXPECT_EQ(text_encoder_normalize("text_model.final_layer_norm.weight"), "text_model.final_layer_norm.weight");
  EXPECT_EQ(text_encoder_normalize("encoder.layers.3.mlp.fc1.bias"), "text_model.encoder.layers.3.mlp.fc1.bias");
  EXPECT_EQ(text_encoder_normalize("embeddings.token_embedding.weight"), "text_model.embeddings.token_embedding.weight");
  EXPECT_FALSE(text_encoder_normalize("text_model.embeddings.position_ids").has_value());
  EXPECT_FALSE(text_encoder_normalize("embeddings.position_ids").has_value());
  EXPECT_FALSE(text_encoder_normalize("logit_scale").has_value());
}

}  // namespace
}  // namespace kiln::engine
