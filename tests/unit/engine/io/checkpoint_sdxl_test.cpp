// sdxl-tiny at the checkpoint level: the single file (SGM keys, CLIP-L in Hugging Face names,
// OpenCLIP bigG with fused in_proj) and the diffusers folder give the same names, shapes and bits;
// fp16 weights stay views of the mapped file until the model's one converting copy.
#include "engine/io/checkpoint.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "engine/io/key_map.h"
#include "engine/io/safetensors.h"
#include "support/reference.h"

namespace kiln::engine {
namespace {

namespace fs = std::filesystem;

fs::path sdxl(const std::string& rel) { return kiln::test::sdxl_tiny_dir() / rel; }

TEST(CheckpointSdxl, BothLayoutsAreSdxl) {
  for (const auto& path : {sdxl("model.safetensors"), sdxl("diffusers"), sdxl("diffusers/model_index.json")}) {
    SCOPED_TRACE(path.string());
    const auto info = Checkpoint::inspect(path);
    EXPECT_EQ(info.family, ModelFamily::SDXL);
    EXPECT_EQ(info.unet_in_channels, 4);
    EXPECT_FALSE(info.inpainting);
    const auto ckpt = Checkpoint::open(path);
    ASSERT_EQ(ckpt->text_encoders().size(), 2u);
    EXPECT_EQ(ckpt->text_encoders()[0]->component(), "text encoder 1");
    EXPECT_EQ(ckpt->text_encoders()[1]->component(), "text encoder 2");
  }
  EXPECT_EQ(Checkpoint::inspect(sdxl("model.safetensors")).describe(), "SDXL (single-file)");
  EXPECT_EQ(Checkpoint::inspect(sdxl("diffusers")).describe(), "SDXL (diffusers)");
}

TEST(CheckpointSdxl, BothLayoutsGiveTheSameNamesShapesAndBits) {
  const auto single = Checkpoint::open(sdxl("model.safetensors"));
  const auto diffusers = Checkpoint::open(sdxl("diffusers"));
  auto same = [](const WeightSource& a, const WeightSource& b) {
    SCOPED_TRACE(a.component());
    ASSERT_EQ(a.names(), b.names());
    for (const auto& name : a.names()) {
      ASSERT_EQ(a.shape(name), b.shape(name)) << name;
      EXPECT_TRUE(torch::equal(a.get(name), b.get(name))) << name;
    }
  };
  same(single->unet(), diffusers->unet());
  same(single->vae(), diffusers->vae());
  same(*single->text_encoders()[0], *diffusers->text_encoders()[0]);
  same(*single->text_encoders()[1], *diffusers->text_encoders()[1]);
  EXPECT_EQ(single->unet().size(), 600u);
  EXPECT_EQ(single->vae().size(), 240u);
  EXPECT_EQ(single->text_encoders()[0]->size(), 52u);  // 53 in the folder, less position_ids
  EXPECT_EQ(single->text_encoders()[1]->size(), 69u);  // 4 layers × 16, embeddings, final LN, projection
  EXPECT_TRUE(single->unet().contains("label_emb.0.0.weight"));
  EXPECT_TRUE(single->text_encoders()[1]->contains("text_projection.weight"));
}

TEST(CheckpointSdxl, OpenClipWeightsAreViewsOfTheMappedFile) {
  const auto ckpt = Checkpoint::open(sdxl("model.safetensors"));
  const auto file = SafeTensorsFile::open(sdxl("model.safetensors"));
  const auto& te2 = *ckpt->text_encoders()[1];
  const auto fused = file->tensor("conditioner.embedders.1.model.transformer.resblocks.2.attn.in_proj_weight");
  EXPECT_EQ(fused.scalar_type(), torch::kHalf);
  const auto q = te2.get("text_model.encoder.layers.2.self_attn.q_proj.weight");
  const auto k = te2.get("text_model.encoder.layers.2.self_attn.k_proj.weight");
  const auto v = te2.get("text_model.encoder.layers.2.self_attn.v_proj.weight");
  EXPECT_EQ(q.scalar_type(), torch::kHalf) << "converted once, by the model's copy, not here";
  EXPECT_TRUE(torch::equal(torch::cat({q, k, v}), fused));
  // Views, not copies: the three thirds lie back to back in the checkpoint's own mapping of the
  // file (`file` above is a second mapping), and asking again gives the same memory.
  EXPECT_EQ(te2.get("text_model.encoder.layers.2.self_attn.k_proj.weight").data_ptr(), k.data_ptr());
  EXPECT_EQ(static_cast<const char*>(k.data_ptr()), static_cast<const char*>(q.data_ptr()) + 64 * 64 * 2);
  EXPECT_EQ(static_cast<const char*>(v.data_ptr()), static_cast<const char*>(q.data_ptr()) + 2 * 64 * 64 * 2);
  const auto projection = file->tensor("conditioner.embedders.1.model.text_projection");
  EXPECT_TRUE(torch::equal(te2.get("text_projection.weight"), projection.t()));
  EXPECT_EQ(te2.origin("text_model.final_layer_norm.bias"),
            sdxl("model.safetensors").string() + " : conditioner.embedders.1.model.ln_final.bias");
}

TEST(CheckpointSdxl, OpenClipNamesMapToHuggingFaceNames) {
  auto one = [](const std::string& name) {
    const auto pieces = open_clip_text_to_hf(name);
    return pieces && pieces->size() == 1 ? pieces->front().hf_name : std::string("?");
  };
  EXPECT_EQ(one("token_embedding.weight"), "text_model.embeddings.token_embedding.weight");
  EXPECT_EQ(one("positional_embedding"), "text_model.embeddings.position_embedding.weight");
  EXPECT_EQ(one("transformer.resblocks.31.mlp.c_fc.bias"), "text_model.encoder.layers.31.mlp.fc1.bias");
  EXPECT_EQ(one("transformer.resblocks.0.mlp.c_proj.weight"), "text_model.encoder.layers.0.mlp.fc2.weight");
  EXPECT_EQ(one("transformer.resblocks.0.ln_2.weight"), "text_model.encoder.layers.0.layer_norm2.weight");
  EXPECT_EQ(one("transformer.resblocks.0.attn.out_proj.bias"), "text_model.encoder.layers.0.self_attn.out_proj.bias");
  EXPECT_EQ(one("ln_final.weight"), "text_model.final_layer_norm.weight");
  const auto in_proj = open_clip_text_to_hf("transformer.resblocks.3.attn.in_proj_bias");
  ASSERT_TRUE(in_proj && in_proj->size() == 3);
  EXPECT_EQ((*in_proj)[1].hf_name, "text_model.encoder.layers.3.self_attn.k_proj.bias");
  EXPECT_EQ((*in_proj)[1].part, 1);
  EXPECT_TRUE(open_clip_text_to_hf("text_projection")->front().transpose);
  EXPECT_TRUE(open_clip_text_to_hf("logit_scale")->empty());
  EXPECT_FALSE(open_clip_text_to_hf("visual.proj"));
  // SDXL's label_emb is diffusers' add_embedding, both ways.
  EXPECT_EQ(unet_module_diffusers_to_ldm("add_embedding.linear_2.weight"), "label_emb.0.2.weight");
  EXPECT_EQ(unet_module_ldm_to_diffusers("label_emb.0.0.bias"), "add_embedding.linear_1.bias");
}

}  // namespace
}  // namespace kiln::engine
