#include <gtest/gtest.h>
#include <torch/torch.h>

#include "engine/error.h"
#include "engine/io/safetensors.h"
#include "engine/models/stable_diffusion.h"
#include "support/reference.h"

namespace kiln::test {
namespace {

using namespace engine::models;

WeightView unet_view() {
  static const auto file = engine::SafeTensorsFile::open(sd15_tiny_dir() / "model.safetensors");
  return view_of_safetensors(file, "model.diffusion_model.", "UNet");
}

int64_t count_params(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const engine::Error& e) {
    EXPECT_EQ(e.kind(), engine::ErrorKind::BadFormat);
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return {};
}

TEST(ModelLoadingTest, ParameterNamesAreTheCheckpointNames) {
  auto view = unet_view();
  UNetModel unet(UNetConfig::infer(WeightIndex(view)), torch::TensorOptions());
  std::vector<std::string> names;
  for (const auto& p : unet->named_parameters()) names.push_back(p.key());
  std::sort(names.begin(), names.end());
  auto file_names = view.names;
  std::sort(file_names.begin(), file_names.end());
  EXPECT_EQ(names, file_names);
}

TEST(ModelLoadingTest, LoadCopiesEveryWeightAndConverts) {
  auto view = unet_view();
  auto unet = load_unet(view, {});
  for (const auto& p : unet->named_parameters()) {
    ASSERT_EQ(p.value().scalar_type(), torch::kFloat32);
    ASSERT_TRUE(torch::equal(p.value(), view.get(p.key()).to(torch::kFloat32))) << p.key();
  }
}

TEST(ModelLoadingTest, MissingWeightsAreNamed) {
  auto view = unet_view();
  view.names.erase(std::find(view.names.begin(), view.names.end(), "middle_block.1.proj_out.bias"));
  const auto msg = error_of([&] { load_unet(view, {}); });
  EXPECT_NE(msg.find("missing 1 (middle_block.1.proj_out.bias)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("UNet"), std::string::npos) << msg;
}

TEST(ModelLoadingTest, UnexpectedWeightsAreNamed) {
  auto view = unet_view();
  view.names.push_back("middle_block.1.extra.weight");
  auto get = view.get;
  const auto msg = error_of([&] { load_unet(view, {}); });
  EXPECT_NE(msg.find("unexpected 1 (middle_block.1.extra.weight)"), std::string::npos) << msg;
}

TEST(ModelLoadingTest, WrongShapeIsNamed) {
  auto view = unet_view();
  auto get = view.get;
  view.get = [get](const std::string& n) {
    auto t = get(n);
    return n == "out.2.bias" ? torch::zeros({5}) : t;
  };
  const auto msg = error_of([&] { load_unet(view, {}); });
  EXPECT_NE(msg.find("out.2.bias"), std::string::npos) << msg;
}

TEST(ModelLoadingTest, NotAUnetIsRefusedPlainly) {
  auto file = engine::SafeTensorsFile::open(sd15_tiny_dir() / "model.safetensors");
  const auto msg = error_of([&] { load_unet(view_of_safetensors(file, "first_stage_model.", "UNet"), {}); });
  EXPECT_NE(msg.find("input_blocks.0.0.weight"), std::string::npos) << msg;
}

TEST(ModelLoadingTest, TextEncoderIgnoresPositionIds) {
  auto file = engine::SafeTensorsFile::open(sd15_tiny_dir() / "model.safetensors");
  auto view = view_of_safetensors(file, "cond_stage_model.transformer.", "text encoder");
  ASSERT_NE(std::find(view.names.begin(), view.names.end(), "text_model.embeddings.position_ids"), view.names.end());
  EXPECT_NO_THROW(load_clip_text(view, {}));
}

TEST(ModelLoadingTest, DiffusersFolderLoadsTheSameWeights) {
  const auto single = StableDiffusion::open(sd15_tiny_dir() / "model.safetensors", {});
  const auto folder = StableDiffusion::open(sd15_tiny_dir() / "diffusers", {});
  auto same = [](const torch::nn::Module& a, const torch::nn::Module& b) {
    const auto pa = a.named_parameters(), pb = b.named_parameters();
    EXPECT_EQ(pa.size(), pb.size());
    for (const auto& p : pa) EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key();
  };
  same(*single.unet, *folder.unet);
  same(*single.vae, *folder.vae);
  same(*single.text_encoder, *folder.text_encoder);
}

TEST(ModelLoadingTest, FullSizeSd15HasTheKnownParameterCounts) {
  // Parameters are allocated but never touched here, so this costs little memory.
  const torch::TensorOptions o;
  EXPECT_EQ(count_params(*UNetModel(UNetConfig::sd15(), o)), 859520964);
  EXPECT_EQ(count_params(*ClipTextModel(ClipTextConfig::sd15(), o)), 123060480);
  EXPECT_EQ(count_params(*AutoencoderKL(VaeConfig::sd15(), o)), 83653863);
}

TEST(ModelLoadingTest, RandomWeightsAreSeededAndScaled) {
  ClipTextConfig small;
  small.vocab_size = 100;
  small.width = 64;
  small.heads = 1;
  small.layers = 2;
  small.mlp_width = 128;
  const torch::TensorOptions o;
  ClipTextModel a(small, o), b(small, o), c(small, o);
  randomize_weights(*a, 5);
  randomize_weights(*b, 5);
  randomize_weights(*c, 6);
  const auto pa = a->named_parameters(), pb = b->named_parameters(), pc = c->named_parameters();
  const auto& w = pa["text_model.encoder.layers.0.mlp.fc1.weight"];
  EXPECT_TRUE(torch::equal(w, pb["text_model.encoder.layers.0.mlp.fc1.weight"]));
  EXPECT_FALSE(torch::equal(w, pc["text_model.encoder.layers.0.mlp.fc1.weight"]));
  EXPECT_NEAR(w.std().item<double>(), 1.0 / 8.0, 0.01);  // 1/√fan_in, fan_in 64
  EXPECT_TRUE(torch::equal(pa["text_model.final_layer_norm.weight"], torch::ones({64})));
  EXPECT_TRUE(torch::equal(pa["text_model.encoder.layers.1.mlp.fc2.bias"], torch::zeros({64})));
}

}  // namespace
}  // namespace kiln::test
