#include "engine/sampling/mask.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "engine/error.h"
#include "support/reference.h"

namespace kiln::test {
namespace {

using namespace engine::sampling;

torch::Tensor half_mask(int64_t h, int64_t w) {  // left half repainted
  auto m = torch::zeros({h, w}, torch::kUInt8);
  m.narrow(1, 0, w / 2).fill_(255);
  return m;
}

TEST(MaskTest, BlurIsAGaussianAcrossTheEdgeOnlyAndStaysInBytes) {
  const auto m = half_mask(16, 32);
  const auto b = blur_mask(m, 2.0);
  EXPECT_EQ(b.sizes(), m.sizes());
  EXPECT_EQ(b.scalar_type(), torch::kUInt8);
  // Far from the edge nothing changes; at the edge the two sides mirror each other.
  EXPECT_EQ(b[5][0].item<int>(), 255);
  EXPECT_EQ(b[5][31].item<int>(), 0);
  EXPECT_NEAR(b[5][15].item<int>() + b[5][16].item<int>(), 255, 1);
  EXPECT_GT(b[5][15].item<int>(), 128);
  EXPECT_LT(b[5][16].item<int>(), 127);
  EXPECT_TRUE(torch::equal(blur_mask(m, 0), m));
  // A blur wider than the image still works.
  EXPECT_NO_THROW(blur_mask(torch::full({3, 3}, 255, torch::kUInt8), 10));
  EXPECT_THROW(blur_mask(torch::zeros({4, 4}), 1), engine::Error);
}

TEST(MaskTest, MaskChannelTakesTheFirstChannel) {
  auto u8 = torch::zeros({2, 2, 3}, torch::kUInt8);
  u8[0][1][0] = 255;
  const auto m = mask_channel(u8);
  EXPECT_EQ(m.sizes(), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(m[0][1].item<int>(), 255);
  EXPECT_THROW(mask_channel(torch::zeros({2, 2})), engine::Error);
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

TEST(MaskTest, PillowBicubicResizeKeepsFlatAreasAndOvershootsAtEdges) {
  // A constant image stays constant; a hard edge overshoots (the cubic's negative lobes) and is
  // clipped to bytes instead of wrapping.
  EXPECT_TRUE(torch::equal(resize_bicubic_pillow(torch::full({40, 24}, 77, torch::kUInt8), 5, 3),
                           torch::full({5, 3}, 77, torch::kUInt8)));
  auto edge = torch::zeros({1, 64}, torch::kUInt8);
  edge.narrow(1, 28, 36).fill_(255);
  const auto row = resize_bicubic_pillow(edge, 1, 8);
  EXPECT_EQ(row[0][0].item<int>(), 0);
  EXPECT_EQ(row[0][7].item<int>(), 255);
  // Same size is the identity; enlarging works too.
  EXPECT_TRUE(torch::equal(resize_bicubic_pillow(edge, 1, 64), edge));
  EXPECT_EQ(resize_bicubic_pillow(edge, 3, 100).sizes(), (std::vector<int64_t>{3, 100}));
}

TEST(MaskTest, ConditioningMaskRoundsAtHalf) {
  auto m = torch::zeros({1, 4}, torch::kUInt8);
  m[0][1] = 127;
  m[0][2] = 128;
  m[0][3] = 255;
  const auto c = conditioning_mask(m);
  EXPECT_EQ(c.sizes(), (std::vector<int64_t>{1, 1, 1, 4}));
  EXPECT_TRUE(torch::equal(c.flatten(), torch::tensor({0.f, 0.f, 1.f, 1.f})));
}

TEST(MaskTest, OverlayKeepsOriginalOutsideTheMaskWithPillowArithmetic) {
  const auto gen = torch::full({4, 4, 3}, 250, torch::kUInt8), orig = torch::full({4, 4, 3}, 10, torch::kUInt8);
  auto m = torch::zeros({4, 4}, torch::kUInt8);
  m[0][0] = 255;
  m[1][1] = 64;   // doubled to 128 as A1111 does: alpha 127
  m[2][2] = 128;  // doubled past 255: all generated
  const auto out = overlay(gen, orig, m);
  EXPECT_EQ(out[0][0][0].item<int>(), 250);
  EXPECT_EQ(out[1][1][0].item<int>(), 130);
  EXPECT_EQ(out[2][2][0].item<int>(), 250);
  EXPECT_EQ(out[3][3][0].item<int>(), 10);
  // 0 in the mask gives the original byte for byte, whatever it is.
  const auto any = torch::randint(0, 256, {4, 4, 3}, torch::kUInt8);
  EXPECT_TRUE(torch::equal(overlay(gen, any, torch::zeros({4, 4}, torch::kUInt8)), any));
}

}  // namespace
}  // namespace kiln::test
