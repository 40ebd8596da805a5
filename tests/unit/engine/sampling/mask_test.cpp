#include "engine/sampling/mask.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "engine/error.h"
#include "support/reference.h"

namespace kiln::test {
namespace {

using namespace engine::sampling;

torch::Tensor half_mask(int64_t h, int64_t w) {  // left half repainted
  auto m = torch::zeros({h, w});
  m.narrow(1, 0, w / 2).fill_(1);
  return m;
}

TEST(MaskTest, BlurIsAGaussianAcrossTheEdgeOnly) {
  const auto m = half_mask(16, 32);
  const auto b = blur_mask(m, 2.0);
  EXPECT_EQ(b.sizes(), m.sizes());
  // Far from the edge nothing changes; at the edge the two sides mirror each other.
  EXPECT_FLOAT_EQ(b[5][0].item<float>(), 1.f);
  EXPECT_FLOAT_EQ(b[5][31].item<float>(), 0.f);
  EXPECT_NEAR(b[5][15].item<float>() + b[5][16].item<float>(), 1.f, 1e-6);
  EXPECT_GT(b[5][15].item<float>(), 0.5f);
  EXPECT_LT(b[5][16].item<float>(), 0.5f);
  EXPECT_TRUE(torch::equal(blur_mask(m, 0), m));
  // A blur wider than the image still works.
  EXPECT_NO_THROW(blur_mask(torch::ones({3, 3}), 10));
}

TEST(MaskTest, MaskFromImageTakesTheFirstChannel) {
  auto u8 = torch::zeros({2, 2, 3}, torch::kUInt8);
  u8[0][1][0] = 255;
  const auto m = mask_from_image(u8);
  EXPECT_EQ(m.sizes(), (std::vector<int64_t>{2, 2}));
  EXPECT_FLOAT_EQ(m[0][1].item<float>(), 1.f);
  EXPECT_THROW(mask_from_image(torch::zeros({2, 2})), engine::Error);
}

TEST(MaskTest, FillKeepsKeptPixelsAndSpreadsTheirColourIn) {
  auto img = torch::empty({32, 32, 3}, torch::kUInt8);
  img.select(2, 0).fill_(200);
  img.select(2, 1).fill_(40);
  img.select(2, 2).fill_(90);
  img.narrow(1, 0, 16).fill_(0);  // the area to repaint holds black that must not leak
  const auto filled = fill_masked(img, half_mask(32, 32));
  EXPECT_TRUE(torch::equal(filled.narrow(1, 16, 16), img.narrow(1, 16, 16)));
  // The only colour around is (200, 40, 90): the hole takes it.
  const auto hole = filled.narrow(1, 0, 16).to(torch::kFloat32);
  EXPECT_LE((hole.select(2, 0) - 200).abs().max().item<float>(), 1.f);
  EXPECT_LE((hole.select(2, 1) - 40).abs().max().item<float>(), 1.f);
  EXPECT_LE((hole.select(2, 2) - 90).abs().max().item<float>(), 1.f);
}

TEST(MaskTest, LatentMaskIsBinaryAtLatentSize) {
  const auto m = latent_repaint_mask(blur_mask(half_mask(64, 64), 4), 8, 8);
  EXPECT_EQ(m.sizes(), (std::vector<int64_t>{1, 1, 8, 8}));
  EXPECT_TRUE(((m == 0) | (m == 1)).all().item<bool>());
  EXPECT_EQ(m.sum().item<float>(), 32.f);
}

TEST(MaskTest, OverlayKeepsOriginalOutsideTheMask) {
  const auto gen = torch::full({4, 4, 3}, 250, torch::kUInt8), orig = torch::full({4, 4, 3}, 10, torch::kUInt8);
  auto m = torch::zeros({4, 4});
  m[0][0] = 1;
  m[1][1] = 0.25;  // doubled to 0.5 as A1111 does
  const auto out = overlay(gen, orig, m);
  EXPECT_EQ(out[0][0][0].item<int>(), 250);
  EXPECT_EQ(out[1][1][0].item<int>(), 130);
  EXPECT_EQ(out[3][3][0].item<int>(), 10);
}

}  // namespace
}  // namespace kiln::test
