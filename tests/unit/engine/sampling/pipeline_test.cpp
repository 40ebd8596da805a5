#include "engine/sampling/pipeline.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "engine/error.h"
#include "engine/sampling/image.h"
#include "engine/sampling/mask.h"
#include "engine/text/conditioning.h"
#include "support/reference.h"
#include "unit/engine/models/tiny_model.h"
#include "unit/engine/sampling/png_reader.h"

namespace kiln::test {
namespace {

using namespace engine::sampling;

constexpr int64_t kTxt2ImgSeed = 2034, kImg2ImgSeed = 2044;  // see noise_image_test.cpp

Conditioning reference_conditioning() {
  const auto& ref = Reference::get();
  return {ref.tensor(std::string("txt2img.cond")), ref.tensor(std::string("txt2img.uncond")), {}};
}

GenerationParams tiny_params(const std::string& sampler, int64_t seed) {
  GenerationParams p;
  p.width = p.height = 64;
  p.steps = 8;
  p.cfg_scale = 7.0;
  p.sampler = sampler;
  p.seed = seed;
  p.preview_every = 0;
  return p;
}

struct Run {
  GenerationResult result;
  std::vector<torch::Tensor> x, denoised;
};

Run run(const GenerationParams& p, const Conditioning& cond = reference_conditioning()) {
  Run r;
  PipelineHooks hooks;
  hooks.on_step = [&r](const Progress& progress) {
    r.x.push_back(progress.latent.clone());
    r.denoised.push_back(progress.denoised.clone());
  };
  r.result = generate(tiny_sd(), cond, p, hooks);
  return r;
}

// Compares latent, per-step state, decoded image and PNG with the reference case.
void expect_matches(const nlohmann::json& c, const Run& r) {
  const auto& ref = Reference::get();
  const auto& out = c.at("outputs");
  const auto& tol = c.at("tolerance");
  const double latent_tol = tol.at("latent_max_abs");
  const std::string id = c.at("id");

  const auto expected_x = ref.tensor(out.at("x_per_step"));
  ASSERT_EQ(int64_t(r.x.size()), expected_x.size(0));
  for (size_t i = 0; i < r.x.size(); ++i) {
    SCOPED_TRACE("step " + std::to_string(i));
    EXPECT_LE(max_abs_diff(r.x[i][0], expected_x[i]), latent_tol);
    if (out.contains("denoised_per_step")) {
      EXPECT_LE(max_abs_diff(r.denoised[i][0], ref.tensor(out.at("denoised_per_step"))[i]), latent_tol);
    }
  }
  const double latent_err = max_abs_diff(r.result.latents, ref.tensor(out.at("latent")));
  EXPECT_LE(latent_err, latent_tol);

  torch::NoGradGuard no_grad;
  const auto image = tiny_sd().vae->decode(r.result.latents / tiny_sd().latent_scale());
  const double image_err = max_abs_diff(image, ref.tensor(out.at("image")));
  EXPECT_LE(image_err, tol.at("image_max_abs").get<double>());

  double png_err = 0;
  if (out.contains("png")) {
    const auto png = read_png(sd15_tiny_dir() / out.at("png").get<std::string>());
    ASSERT_EQ(r.result.images.size(), 1u);
    png_err = max_abs_diff(r.result.images[0], png);
    EXPECT_LE(png_err, 1.0) << "PNG pixels may differ by one level at most";
  }
  ::testing::Test::RecordProperty("latent_err_" + id, std::to_string(latent_err));
  ::testing::Test::RecordProperty("image_err_" + id, std::to_string(image_err));
  ::testing::Test::RecordProperty("png_err_" + id, std::to_string(png_err));
}

TEST(PipelineTest, Txt2ImgEulerMatchesReference) {
  const auto& c = Reference::get().case_by_id("txt2img/euler");
  expect_matches(c, run(tiny_params("Euler", kTxt2ImgSeed)));
}

TEST(PipelineTest, Txt2ImgEulerAncestralMatchesReference) {
  const auto& c = Reference::get().case_by_id("txt2img/euler_a");
  expect_matches(c, run(tiny_params("Euler a", kTxt2ImgSeed)));
}

TEST(PipelineTest, Txt2ImgDpmpp2mKarrasMatchesReference) {
  const auto& c = Reference::get().case_by_id("txt2img/dpmpp_2m_karras");
  expect_matches(c, run(tiny_params("DPM++ 2M Karras", kTxt2ImgSeed)));
}

TEST(PipelineTest, Txt2ImgDdimMatchesReference) {
  const auto& c = Reference::get().case_by_id("txt2img/ddim");
  expect_matches(c, run(tiny_params("DDIM", kTxt2ImgSeed)));
}

TEST(PipelineTest, Img2ImgEulerMatchesReference) {
  const auto& ref = Reference::get();
  const auto& c = ref.case_by_id("img2img/euler");
  auto p = tiny_params("Euler", kImg2ImgSeed);
  p.init_image = read_png(sd15_tiny_dir() / c.at("inputs").at("init_image_png").get<std::string>());
  ASSERT_TRUE(torch::equal(p.init_image, ref.tensor(std::string("vae.encode.image_u8"))));
  p.denoising_strength = c.at("inputs").at("denoising_strength");
  const auto r = run(p);
  EXPECT_EQ(int64_t(r.x.size()), c.at("expected").at("sampler_steps_run").get<int64_t>());
  const double tol = c.at("tolerance").at("latent_max_abs");
  EXPECT_LE(max_abs_diff(r.x.at(0), ref.tensor(c.at("outputs").at("noised_latent"))), tol);
  expect_matches(c, r);
}

TEST(PipelineTest, FromPromptTextToTheReferenceImage) {
  // The whole chain: A1111 conditioning with this CLIP as its encoder, then the pipeline.
  const auto& c = Reference::get().case_by_id("txt2img/euler");
  const auto encoder = engine::models::text_encoder_fn(tiny_sd().text_encoder);
  const auto cond = engine::a1111_conditioning(c.at("inputs").at("prompt"), encoder).cond;
  const auto uncond = engine::a1111_conditioning(c.at("inputs").at("negative_prompt"), encoder).cond;
  EXPECT_LE(max_abs_diff(cond.unsqueeze(0), Reference::get().tensor(c.at("inputs").at("cond"))), 1e-4);
  expect_matches(c, run(tiny_params("Euler", kTxt2ImgSeed), {cond, uncond, {}}));
}

TEST(PipelineTest, SameSeedSameImageOtherSeedOtherImage) {
  const auto a = run(tiny_params("Euler a", 77)).result, b = run(tiny_params("Euler a", 77)).result;
  const auto c = run(tiny_params("Euler a", 78)).result;
  EXPECT_TRUE(torch::equal(a.images[0], b.images[0]));
  EXPECT_TRUE(torch::equal(a.latents, b.latents));
  EXPECT_FALSE(torch::equal(a.latents, c.latents));
  EXPECT_EQ(a.seeds, std::vector<int64_t>{77});
}

TEST(PipelineTest, RandomSeedIsReportedAndReproducible) {
  auto p = tiny_params("Euler", -1);
  p.steps = 2;
  const auto a = run(p).result;
  EXPECT_GE(a.seed, 0);
  p.seed = a.seed;
  EXPECT_TRUE(torch::equal(run(p).result.latents, a.latents));
}

TEST(PipelineTest, BatchImagesEqualSingleRunsWithConsecutiveSeeds) {
  auto p = tiny_params("Euler a", 500);
  p.steps = 4;
  p.batch_size = 2;
  p.batch_count = 2;
  const auto batch = run(p).result;
  ASSERT_EQ(batch.images.size(), 4u);
  EXPECT_EQ(batch.seeds, (std::vector<int64_t>{500, 501, 502, 503}));
  p.batch_size = p.batch_count = 1;
  for (int k = 0; k < 4; ++k) {
    p.seed = 500 + k;
    const auto single = run(p).result;
    EXPECT_LE(max_abs_diff(batch.latents[k], single.latents[0]), 1e-3) << k;
    EXPECT_LE(max_abs_diff(batch.images[k], single.images[0]), 1.0) << k;
  }
}

TEST(PipelineTest, DifferentPromptLengthsRunAsTwoPassesOrPadded) {
  const auto& ref = Reference::get();
  auto cond = reference_conditioning();
  // A 154-token prompt against a 77-token negative prompt.
  cond.cond = torch::cat({cond.cond, ref.tensor(std::string("te.p01.last_hidden_state")).unsqueeze(0)}, 1);
  auto p = tiny_params("Euler", 3);
  p.steps = 3;
  const auto two_pass = run(p, cond).result;
  EXPECT_TRUE(two_pass.latents.isfinite().all().item<bool>());
  // Padding the negative prompt with the empty prompt's states changes the result, as in A1111.
  cond.pad_chunk = ref.tensor(std::string("te.p01.last_hidden_state"));
  const auto padded = run(p, cond).result;
  EXPECT_TRUE(padded.latents.isfinite().all().item<bool>());
  EXPECT_FALSE(torch::equal(two_pass.latents, padded.latents));
}

void expect_invalid(const GenerationParams& p, const std::string& needle) {
  try {
    generate(tiny_sd(), reference_conditioning(), p);
    ADD_FAILURE() << "expected InvalidArgument mentioning '" << needle << "'";
  } catch (const engine::Error& e) {
    EXPECT_EQ(e.kind(), engine::ErrorKind::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(PipelineTest, BadRequestsAreRefusedPlainly) {
  auto p = tiny_params("Euler", 1);
  p.width = 100;
  expect_invalid(p, "multiples of 8");
  p.width = 64;
  p.height = 0;
  expect_invalid(p, "multiples of 8");
  p.height = 64;
  p.sampler = "Karras Magic";
  expect_invalid(p, "DPM++ 2M Karras");
  p.sampler = "Euler";
  p.steps = 0;
  expect_invalid(p, "steps");
  p.steps = 4;
  p.mask = torch::zeros({64, 64}, torch::kUInt8);
  expect_invalid(p, "init image");
  p.init_image = torch::zeros({32, 64, 3}, torch::kUInt8);
  expect_invalid(p, "resize");
  p.init_image = torch::zeros({64, 64, 3}, torch::kUInt8);
  p.denoising_strength = 1.5;
  expect_invalid(p, "strength");
  auto q = tiny_params("Euler", 1);
  Conditioning wrong{torch::zeros({1, 77, 768}), torch::zeros({1, 77, 768}), {}};
  EXPECT_THROW(generate(tiny_sd(), wrong, q), engine::Error);
}

TEST(PipelineTest, CancellationStopsBetweenSteps) {
  auto p = tiny_params("Euler a", 9);
  int steps_seen = 0;
  PipelineHooks hooks;
  hooks.on_step = [&](const Progress& progress) {
    steps_seen = progress.step;
    EXPECT_EQ(progress.total, 8);
  };
  hooks.cancelled = [&] { return steps_seen >= 3; };
  try {
    generate(tiny_sd(), reference_conditioning(), p, hooks);
    FAIL() << "expected cancellation";
  } catch (const engine::Error& e) {
    EXPECT_EQ(e.kind(), engine::ErrorKind::Cancelled);
  }
  EXPECT_EQ(steps_seen, 3);
}

TEST(PipelineTest, ProgressCarriesPreviews) {
  auto p = tiny_params("DPM++ 2M", 4);
  p.preview_every = 3;
  int previews = 0, calls = 0;
  PipelineHooks hooks;
  hooks.on_step = [&](const Progress& progress) {
    ++calls;
    EXPECT_EQ(progress.step, calls);
    EXPECT_EQ(progress.preview.defined(), progress.step % 3 == 0);
    if (progress.preview.defined()) {
      ++previews;
      EXPECT_EQ(progress.preview.sizes(), (std::vector<int64_t>{8, 8, 3}));
      EXPECT_EQ(progress.preview.scalar_type(), torch::kUInt8);
    }
  };
  generate(tiny_sd(), reference_conditioning(), p, hooks);
  EXPECT_EQ(calls, 8);
  EXPECT_EQ(previews, 2);
}

class InpaintTest : public ::testing::TestWithParam<std::tuple<std::string, MaskedContent>> {};

TEST_P(InpaintTest, RepaintsOnlyTheMaskedArea) {
  const auto& ref = Reference::get();
  auto p = tiny_params(std::get<0>(GetParam()), 21);
  p.init_image = ref.tensor(std::string("vae.encode.image_u8"));
  p.denoising_strength = 0.8;
  p.masked_content = std::get<1>(GetParam());
  auto mask = torch::zeros({64, 64}, torch::kUInt8);
  mask.narrow(1, 0, 32).fill_(255);  // repaint the left half
  p.mask = mask;
  p.mask_blur = 4;
  const auto r = run(p).result;
  const auto& image = r.images.at(0);
  // Beyond the blur's reach the right half is the original, pixel for pixel…
  EXPECT_TRUE(torch::equal(image.narrow(1, 48, 16), p.init_image.narrow(1, 48, 16)));
  // …and so is the kept half of the latent.
  torch::NoGradGuard no_grad;
  // (With "fill" the start image is the filled one, and so is the latent kept.)
  const auto start = p.masked_content == MaskedContent::Fill
                         ? fill_masked(p.init_image, blur_mask(mask, p.mask_blur))
                         : p.init_image;
  const auto init_latent = tiny_sd().vae->encode(image_to_model(start)).mean * 0.18215;
  EXPECT_LE(max_abs_diff(r.latents.narrow(3, 5, 3), init_latent.narrow(3, 5, 3)), 1e-5);
  // The left half was repainted.
  EXPECT_GT(max_abs_diff(image.narrow(1, 0, 16), p.init_image.narrow(1, 0, 16)), 20.0);
}

INSTANTIATE_TEST_SUITE_P(Samplers, InpaintTest,
                         ::testing::Values(std::make_tuple("Euler a", MaskedContent::Original),
                                           std::make_tuple("DDIM", MaskedContent::Original),
                                           std::make_tuple("Euler", MaskedContent::Fill)));

}  // namespace
}  // namespace kiln::test
