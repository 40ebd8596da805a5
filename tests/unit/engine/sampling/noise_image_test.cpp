#include <gtest/gtest.h>
#include <torch/torch.h>

#include "engine/sampling/image.h"
#include "engine/sampling/noise.h"
#include "support/reference.h"

namespace kiln::test {
namespace {

using namespace engine::sampling;

// The fixtures do not state their seeds; these reproduce their noise bit for bit with a CPU
// generator, as A1111's "CPU" RNG source does.
constexpr int64_t kTxt2ImgSeed = 2034, kImg2ImgSeed = 2044;

TEST(NoiseTest, SeedGivesTheReferenceInitialNoise) {
  const auto& ref = Reference::get();
  ImageNoise a({kTxt2ImgSeed}, {4, 8, 8});
  EXPECT_TRUE(torch::equal(a.next(torch::kCPU), ref.tensor(std::string("txt2img.noise"))));
  ImageNoise b({kImg2ImgSeed}, {4, 8, 8});
  EXPECT_TRUE(torch::equal(b.next(torch::kCPU), ref.tensor(std::string("img2img.noise"))));
}

TEST(NoiseTest, AncestralNoiseContinuesEachImagesStream) {
  const auto& ref = Reference::get();
  const auto expected = ref.tensor(std::string("txt2img.euler_a.noises"));  // [7, 1, 4, 8, 8]
  ImageNoise noise({kTxt2ImgSeed}, {4, 8, 8});
  noise.next(torch::kCPU);
  for (int64_t k = 0; k < expected.size(0); ++k) EXPECT_TRUE(torch::equal(noise.next(torch::kCPU), expected[k])) << k;
}

TEST(NoiseTest, EachImageOfABatchHasItsOwnStream) {
  ImageNoise batch({10, 11}, {4, 3, 5});
  ImageNoise single({11}, {4, 3, 5});
  const auto b1 = batch.next(torch::kCPU), b2 = batch.next(torch::kCPU);
  EXPECT_EQ(b1.sizes(), (std::vector<int64_t>{2, 4, 3, 5}));
  EXPECT_TRUE(torch::equal(b1[1], single.next(torch::kCPU)[0]));
  EXPECT_TRUE(torch::equal(b2[1], single.next(torch::kCPU)[0]));
  EXPECT_FALSE(torch::equal(b1[0], b1[1]));
}

TEST(NoiseTest, NegativeSeedPicksOne) {
  EXPECT_EQ(resolve_seed(42), 42);
  const auto s = resolve_seed(-1);
  EXPECT_GE(s, 0);
  EXPECT_LT(s, int64_t{4294967295});
}

TEST(ImageTest, ConversionsFollowA1111AndDiffusers) {
  const auto& ref = Reference::get();
  const auto u8 = ref.tensor(std::string("vae.encode.image_u8"));
  EXPECT_LE(max_abs_diff(image_to_model(u8), ref.tensor(std::string("vae.encode.image"))), 0.0);
  // Round trip through the float image is lossless for both quantisations… almost: truncation can
  // land one level low where (x+1)/2·255 rounds to just under an integer.
  const auto back_round = model_to_image(image_to_model(u8), Quantize::Round);
  EXPECT_TRUE(torch::equal(back_round, u8));
  const auto back_trunc = model_to_image(image_to_model(u8), Quantize::Truncate);
  EXPECT_LE(max_abs_diff(back_trunc, u8), 1.0);
  // 0.999 of a level: truncation drops it, rounding keeps it.
  const auto x = torch::full({3, 1, 1}, (2.0 * 200.999 / 255.0) - 1.0);
  EXPECT_EQ(model_to_image(x, Quantize::Truncate)[0][0][0].item<int>(), 200);
  EXPECT_EQ(model_to_image(x, Quantize::Round)[0][0][0].item<int>(), 201);
  EXPECT_EQ(model_to_image(torch::full({3, 1, 1}, 5.0))[0][0][0].item<int>(), 255);
  EXPECT_EQ(model_to_image(torch::full({3, 1, 1}, -5.0))[0][0][0].item<int>(), 0);
}

TEST(ImageTest, LatentPreviewIsSmallRgb) {
  const auto p = latent_preview(torch::zeros({1, 4, 6, 9}));
  EXPECT_EQ(p.sizes(), (std::vector<int64_t>{6, 9, 3}));
  EXPECT_EQ(p.scalar_type(), torch::kUInt8);
  EXPECT_EQ(p[0][0][0].item<int>(), 127);  // zero latent → mid grey
  // The fourth latent channel pushes towards blue-less (negative factors): check direction.
  auto lat = torch::zeros({4, 1, 1});
  lat[3] = -1;
  const auto q = latent_preview(lat);
  EXPECT_GT(q[0][0][2].item<int>(), q[0][0][0].item<int>());
}

}  // namespace
}  // namespace kiln::test
