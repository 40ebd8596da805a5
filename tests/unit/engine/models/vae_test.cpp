#include <gtest/gtest.h>
#include <torch/torch.h>

#include "support/reference.h"
#include "unit/engine/models/tiny_model.h"

namespace kiln::test {
namespace {

TEST(VaeTest, ConfigIsReadFromShapes) {
  const auto& c = tiny_sd().vae->config();
  EXPECT_EQ(c.channels, 32);
  EXPECT_EQ(c.channel_mult, (std::vector<int64_t>{1, 2, 2, 2}));
  EXPECT_EQ(c.num_res_blocks, 2);
  EXPECT_EQ(c.z_channels, 4);
  EXPECT_EQ(c.embed_dim, 4);
  EXPECT_DOUBLE_EQ(c.scaling_factor, 0.18215);
}

TEST(VaeTest, EncodeMatchesReference) {
  const auto& ref = Reference::get();
  const auto& c = ref.case_by_id("vae/encode");
  const double tol = c.at("tolerance").at("max_abs");
  torch::NoGradGuard no_grad;
  // The float input is (u8/255)·2 − 1 of the stored uint8 image.
  const auto u8 = ref.tensor(c.at("inputs").at("image_uint8_hwc"));
  const auto image = (u8.permute({2, 0, 1}).unsqueeze(0).to(torch::kFloat32) / 255) * 2 - 1;
  EXPECT_LE(max_abs_diff(image, ref.tensor(c.at("inputs").at("image"))), 1e-7);

  const auto posterior = tiny_sd().vae->encode(image);
  const auto& out = c.at("outputs");
  const double e_mean = max_abs_diff(posterior.mean, ref.tensor(out.at("mean")));
  const double e_logvar = max_abs_diff(posterior.logvar, ref.tensor(out.at("logvar")));
  const double e_scaled = max_abs_diff(posterior.mean * tiny_sd().latent_scale(), ref.tensor(out.at("latent_scaled")));
  EXPECT_LE(e_mean, tol);
  EXPECT_LE(e_logvar, tol);
  EXPECT_LE(e_scaled, tol);
  RecordProperty("max_err", std::to_string(std::max({e_mean, e_logvar, e_scaled})));
}

TEST(VaeTest, DecodeMatchesReference) {
  const auto& ref = Reference::get();
  const auto& c = ref.case_by_id("vae/decode");
  torch::NoGradGuard no_grad;
  const auto latent = ref.tensor(c.at("inputs").at("latent_scaled"));
  const auto image = tiny_sd().vae->decode(latent / tiny_sd().latent_scale());
  const double err = max_abs_diff(image, ref.tensor(c.at("outputs").at("image")));
  EXPECT_LE(err, c.at("tolerance").at("max_abs").get<double>());
  RecordProperty("max_err", std::to_string(err));
}

}  // namespace
}  // namespace kiln::test
