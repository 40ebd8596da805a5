#include <gtest/gtest.h>
#include <torch/torch.h>

#include "engine/error.h"
#include "engine/io/weight_source.h"
#include "support/reference.h"
#include "unit/engine/models/tiny_model.h"

namespace kiln::test {
namespace {

TEST(UnetTest, ConfigIsReadFromShapes) {
  const auto& c = tiny_sd().unet->config();
  EXPECT_EQ(c.model_channels, 32);
  EXPECT_EQ(c.channel_mult, (std::vector<int64_t>{1, 2, 4, 4}));
  EXPECT_EQ(c.attention, (std::vector<bool>{true, true, true, false}));
  EXPECT_EQ(c.num_res_blocks, 2);
  EXPECT_EQ(c.transformer_depth, 1);
  EXPECT_EQ(c.context_dim, 128);
  EXPECT_EQ(c.heads_for(64), 8);
  EXPECT_FALSE(c.linear_projection);
  EXPECT_EQ(c.in_channels, 4);
  EXPECT_EQ(c.out_channels, 4);
}

torch::Tensor timesteps_of(const nlohmann::json& t) {
  if (t.is_array()) return torch::tensor(t.get<std::vector<double>>(), torch::kFloat32);
  return torch::tensor({t.get<double>()}, torch::kFloat32);
}

TEST(UnetTest, MatchesReferenceEps) {
  const auto& ref = Reference::get();
  const auto& unet = tiny_sd().unet;
  torch::NoGradGuard no_grad;
  const auto cases = ref.cases_of_kind("unet_eps");
  ASSERT_EQ(cases.size(), 6u);
  for (const auto* c : cases) {
    const std::string id = c->at("id");
    SCOPED_TRACE(id);
    const auto& in = c->at("inputs");
    const auto eps =
        unet->forward(ref.tensor(in.at("latent")), timesteps_of(in.at("timestep")), ref.tensor(in.at("context")));
    const double err = max_abs_diff(eps, ref.tensor(c->at("outputs").at("eps")));
    EXPECT_LE(err, c->at("tolerance").at("max_abs").get<double>());
    RecordProperty("max_err_" + id, std::to_string(err));
  }
}

TEST(UnetTest, RejectsMismatchedContextAndTimesteps) {
  const auto& unet = tiny_sd().unet;
  torch::NoGradGuard no_grad;
  const auto x = torch::zeros({2, 4, 8, 8});
  EXPECT_THROW(unet->forward(x, torch::tensor({1.f, 2.f, 3.f}), torch::zeros({2, 77, 128})), engine::Error);
  EXPECT_THROW(unet->forward(x, torch::tensor({1.f}), torch::zeros({2, 77, 768})), engine::Error);
}

TEST(UnetTest, LatentSizesThatAreNotMultiplesOf64PixelsWork) {
  // 72×40 pixels → 9×5 latents: upsampling follows the skip sizes instead of doubling blindly.
  const auto& unet = tiny_sd().unet;
  torch::NoGradGuard no_grad;
  const auto eps = unet->forward(torch::randn({1, 4, 9, 5}), torch::tensor({500.f}), torch::randn({1, 77, 128}));
  EXPECT_EQ(eps.sizes(), (std::vector<int64_t>{1, 4, 9, 5}));
  EXPECT_TRUE(eps.isfinite().all().item<bool>());
}

}  // namespace
}  // namespace kiln::test

namespace kiln::test {
namespace {

using namespace engine::models;

// An SD2-style layout (linear proj_in/proj_out, 64-channel heads from a 1024-wide context, depth 2,
// three levels) survives the round trip: build → random weights → infer the config back → load.
TEST(UnetTest, Sd2StyleLayoutIsInferredFromItsOwnWeights) {
  UNetConfig c;
  c.model_channels = 64;
  c.channel_mult = {1, 2, 2};
  c.attention = {false, true, true};
  c.num_res_blocks = 1;
  c.transformer_depth = 2;
  c.context_dim = 1024;
  c.head_channels = 64;
  c.linear_projection = true;
  UNetModel built(c, torch::TensorOptions());
  randomize_weights(*built, 3);

  std::map<std::string, torch::Tensor> tensors;
  for (const auto& p : built->named_parameters()) tensors[p.key()] = p.value();
  const auto source = engine::WeightSource::from_tensors("UNet", tensors);
  const auto view = WeightView::of(source, "UNet");
  const auto inferred = UNetConfig::infer(WeightIndex(view));
  EXPECT_EQ(inferred.channel_mult, c.channel_mult);
  EXPECT_EQ(inferred.attention, c.attention);
  EXPECT_EQ(inferred.num_res_blocks, 1);
  EXPECT_EQ(inferred.transformer_depth, 2);
  EXPECT_TRUE(inferred.linear_projection);
  EXPECT_EQ(inferred.heads_for(128), 2);
  EXPECT_EQ(tensors.at("input_blocks.3.1.proj_in.weight").dim(), 2);

  const auto loaded = load_unet(view, {});
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({1, 4, 8, 8}), ctx = torch::randn({1, 5, 1024}) * 0.1;
  const auto t = torch::tensor({10.f});
  EXPECT_LE(max_abs_diff(loaded->forward(x, t, ctx), built->forward(x, t, ctx)), 0.0);
}

}  // namespace
}  // namespace kiln::test
