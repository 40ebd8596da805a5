// Inpainting checkpoints (UNet with 9 input channels) against ../shared/fixtures/sd15-inpaint-tiny:
// loading from both layouts, the UNet itself, A1111's mask and conditioning rules, and the three
// pipelines (inpaint at strength 1 and 0.75, txt2img, img2img) as A1111 runs them.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "engine/error.h"
#include "engine/generate.h"
#include "engine/models/stable_diffusion.h"
#include "engine/sampling/image.h"
#include "engine/sampling/inpainting_model.h"
#include "engine/sampling/mask.h"
#include "engine/sampling/pipeline.h"
#include "support/reference.h"
#include "unit/engine/sampling/png_reader.h"

namespace kiln::test {
namespace {

using namespace engine::sampling;
using Json = nlohmann::json;

const Reference& ref() { return Reference::get("sd15-inpaint-tiny"); }

const engine::models::StableDiffusion& inpaint_sd() {
  static const auto model = engine::models::StableDiffusion::open(sd15_inpaint_tiny_dir() / "model.safetensors", {});
  return model;
}

torch::Tensor png(const std::string& name) { return read_png(sd15_inpaint_tiny_dir() / name); }

Conditioning conds() { return {ref().tensor(std::string("text.cond")), ref().tensor(std::string("text.uncond")), {}}; }

struct Run {
  GenerationResult result;
  std::vector<torch::Tensor> x, denoised;
};

Run run(const GenerationParams& p, const engine::models::StableDiffusion& model = inpaint_sd()) {
  Run r;
  PipelineHooks hooks;
  hooks.on_step = [&r](const Progress& progress) {
    r.x.push_back(progress.latent.clone());
    r.denoised.push_back(progress.denoised.clone());
  };
  r.result = generate(model, conds(), p, hooks);
  return r;
}

GenerationParams case_params(const Json& c) {
  const auto& in = c.at("inputs");
  GenerationParams p;
  p.width = in.at("width");
  p.height = in.at("height");
  p.steps = in.at("steps");
  p.cfg_scale = in.at("cfg_scale");
  p.sampler = in.at("sampler");
  p.seed = in.at("seed");
  p.preview_every = 0;
  if (in.contains("init_image_png")) {
    p.init_image = png(in.at("init_image_png"));
    p.denoising_strength = in.at("denoising_strength");
  }
  if (in.contains("mask_png")) {
    p.mask = png(in.at("mask_png"));
    p.mask_blur = in.at("mask_blur");
  }
  return p;
}

// Per-step state, final latent, decoded image and the PNG against the case's outputs.
void expect_matches(const Json& c, const Run& r) {
  const auto& out = c.at("outputs");
  const auto& tol = c.at("tolerance");
  const double latent_tol = tol.at("latent_max_abs");
  const auto xs = ref().tensor(out.at("x_per_step")), ds = ref().tensor(out.at("denoised_per_step"));
  ASSERT_EQ(int64_t(r.x.size()), xs.size(0));
  for (size_t i = 0; i < r.x.size(); ++i) {
    SCOPED_TRACE("step " + std::to_string(i));
    EXPECT_LE(max_abs_diff(r.x[i][0], xs[i]), latent_tol);
    EXPECT_LE(max_abs_diff(r.denoised[i][0], ds[i]), latent_tol);
  }
  const double latent_err = max_abs_diff(r.result.latents, ref().tensor(out.at("latent")));
  EXPECT_LE(latent_err, latent_tol);
  torch::NoGradGuard no_grad;
  const auto image = inpaint_sd().vae->decode(r.result.latents / inpaint_sd().latent_scale());
  EXPECT_LE(max_abs_diff(image, ref().tensor(out.at("image"))), tol.at("image_max_abs").get<double>());
  ASSERT_EQ(r.result.images.size(), 1u);
  EXPECT_LE(max_abs_diff(r.result.images[0], png(out.at("png"))), 1.0) << "PNG pixels may differ by one level at most";
  EXPECT_LE(max_abs_diff(r.result.images[0], ref().tensor(out.at("image_u8"))), 1.0);
  ::testing::Test::RecordProperty("latent_err_" + c.at("id").get<std::string>(), std::to_string(latent_err));
}

TEST(InpaintingModel, LoadsFromBothLayoutsWithNineInputChannels) {
  const auto& single = inpaint_sd();
  const auto folder = engine::models::StableDiffusion::open(sd15_inpaint_tiny_dir() / "diffusers", {});
  EXPECT_TRUE(single.inpainting());
  EXPECT_TRUE(folder.inpainting());
  EXPECT_EQ(single.unet->config().in_channels, 9);
  EXPECT_EQ(single.unet->config().out_channels, 4);
  const auto a = single.unet->named_parameters(), b = folder.unet->named_parameters();
  ASSERT_EQ(a.size(), b.size());
  for (const auto& p : a) EXPECT_TRUE(torch::equal(p.value(), b[p.key()])) << p.key();
  // The ordinary tiny model is not one.
  EXPECT_FALSE(engine::models::StableDiffusion::open(sd15_tiny_dir() / "model.safetensors", {}).inpainting());
}

TEST(InpaintingModel, UNetEpsMatchesDiffusers) {
  torch::NoGradGuard no_grad;
  for (const Json* c : ref().cases_of_kind("unet9_eps")) {
    SCOPED_TRACE(c->at("id").get<std::string>());
    const auto& in = c->at("inputs");
    const double t = in.at("timestep").is_array() ? in.at("timestep")[0].get<double>() : in.at("timestep").get<double>();
    const auto input = ref().tensor(in.at("unet_input"));
    // The input is the latent followed by the image conditioning, in that order.
    EXPECT_TRUE(torch::equal(input, torch::cat({ref().tensor(in.at("latent")), ref().tensor(in.at("image_conditioning"))}, 1)));
    const auto eps = inpaint_sd().unet->forward(input, torch::full({1}, t), ref().tensor(in.at("context")));
    EXPECT_LE(max_abs_diff(eps, ref().tensor(c->at("outputs").at("eps"))), c->at("tolerance").at("max_abs").get<double>());
  }
}

TEST(InpaintingModel, A1111MaskAndConditioningRules) {
  const auto& c = ref().case_by_id("inpaint_cond/a1111");
  const auto& in = c.at("inputs");
  const auto& out = c.at("outputs");
  const auto image_u8 = png(in.at("init_image_png")), mask_u8 = png(in.at("mask_png"));
  ASSERT_TRUE(torch::equal(image_u8, ref().tensor(in.at("init_image_uint8_hwc"))));
  ASSERT_TRUE(torch::equal(mask_channel(mask_u8), ref().tensor(in.at("mask_uint8_hw"))));
  const auto mask = mask_channel(mask_u8);

  const auto image = image_to_model(image_u8);
  EXPECT_TRUE(torch::equal(image, ref().tensor(out.at("image"))));
  const auto full = conditioning_mask(mask);
  EXPECT_TRUE(torch::equal(full, ref().tensor(out.at("cond_mask_fullres"))));
  EXPECT_EQ(full.sum().item<int64_t>(), c.at("expected").at("fullres_pixels_repaint_after_round").get<int64_t>());
  EXPECT_TRUE(torch::equal(torch::lerp(image, image * (1 - full), 1.0), ref().tensor(out.at("masked_image"))));

  // Pillow's bicubic resize, bit for bit, and the blend mask rounded from it.
  EXPECT_TRUE(torch::equal(resize_bicubic_pillow(mask, 8, 8), ref().tensor(out.at("latent_mask_u8"))));
  const auto nmask = latent_repaint_mask(mask, 8, 8);
  EXPECT_TRUE(torch::equal(nmask[0][0], ref().tensor(out.at("blend_nmask"))[0]));
  EXPECT_TRUE(torch::equal(1 - nmask[0][0], ref().tensor(out.at("blend_mask"))[0]));

  torch::NoGradGuard no_grad;
  const double latent_tol = c.at("tolerance").at("latents_max_abs");
  const auto cond = inpainting_conditioning(inpaint_sd(), image, mask, 1.0, 64, 64);
  const auto expected = ref().tensor(out.at("image_conditioning"));
  EXPECT_TRUE(torch::equal(cond.narrow(1, 0, 1), ref().tensor(out.at("cond_mask_latent"))));
  EXPECT_LE(max_abs_diff(cond.narrow(1, 1, 4), ref().tensor(out.at("masked_image_latent"))), latent_tol);
  EXPECT_LE(max_abs_diff(cond, expected), latent_tol);
  // The UNet's (nearest) mask and the blend mask differ where the fixture says they do.
  for (const auto& pos : c.at("expected").at("positions_where_cond_mask_latent_differs_from_blend_nmask")) {
    const int64_t i = pos[0], j = pos[1];
    EXPECT_NE(cond[0][0][i][j].item<float>(), nmask[0][0][i][j].item<float>()) << i << "," << j;
  }
}

TEST(InpaintingModel, OverlayEqualsPillowOnTheReferenceImages) {
  for (const char* id : {"inpaint/s1", "inpaint/s0p75"}) {
    const auto& out = ref().case_by_id(id).at("outputs");
    const auto mask = mask_channel(png("ref_mask.png"));
    const auto got = overlay(ref().tensor(out.at("image_u8_before_overlay")), png("ref_init_image.png"), mask);
    EXPECT_TRUE(torch::equal(got, ref().tensor(out.at("image_u8")))) << id;
  }
}

class InpaintingModelInpaint : public ::testing::TestWithParam<std::string> {};

TEST_P(InpaintingModelInpaint, MatchesA1111) {
  const auto& c = ref().case_by_id(GetParam());
  const auto p = case_params(c);
  const auto r = run(p);
  EXPECT_EQ(int64_t(r.x.size()), c.at("expected").at("sampler_steps_run").get<int64_t>());
  EXPECT_LE(max_abs_diff(r.x.at(0), ref().tensor(c.at("outputs").at("noised_latent"))),
            c.at("tolerance").at("latent_max_abs").get<double>());
  expect_matches(c, r);
  // The kept latent cells are the original's latent, bit for bit (A1111's final blend).
  const auto keep = ref().tensor(c.at("inputs").at("blend_mask"))[0].to(torch::kBool);
  torch::NoGradGuard no_grad;
  const auto init = (inpaint_sd().vae->encode(image_to_model(p.init_image)).mean * inpaint_sd().latent_scale());
  EXPECT_TRUE(torch::equal(r.result.latents[0].masked_select(keep.expand({4, 8, 8})),
                           init[0].masked_select(keep.expand({4, 8, 8}))));
  // Where the mask is 0 the original pixels come back exactly.
  const auto untouched = mask_channel(p.mask).eq(0).unsqueeze(2).expand({64, 64, 3});
  EXPECT_TRUE(torch::equal(r.result.images[0].masked_select(untouched), p.init_image.masked_select(untouched)));
}

INSTANTIATE_TEST_SUITE_P(Strengths, InpaintingModelInpaint, ::testing::Values("inpaint/s1", "inpaint/s0p75"),
                         [](const auto& info) { return info.param == "inpaint/s1" ? "S1" : "S0p75"; });

TEST(InpaintingModel, Txt2ImgMatchesA1111) {
  const auto& c = ref().case_by_id("txt2img9/euler");
  torch::NoGradGuard no_grad;
  const auto cond = inpainting_conditioning(inpaint_sd(), {}, {}, 1.0, 64, 64);
  EXPECT_LE(max_abs_diff(cond, ref().tensor(c.at("outputs").at("image_conditioning"))),
            c.at("tolerance").at("image_conditioning_max_abs").get<double>());
  expect_matches(c, run(case_params(c)));
}

TEST(InpaintingModel, Img2ImgMatchesA1111) {
  const auto& c = ref().case_by_id("img2img9/euler");
  const auto p = case_params(c);
  torch::NoGradGuard no_grad;
  const auto cond = inpainting_conditioning(inpaint_sd(), image_to_model(p.init_image), {}, 1.0, 64, 64);
  EXPECT_LE(max_abs_diff(cond, ref().tensor(c.at("outputs").at("image_conditioning"))),
            c.at("tolerance").at("image_conditioning_max_abs").get<double>());
  // Without a mask the init image reaches the UNet only through the latent: as in txt2img.
  EXPECT_TRUE(torch::equal(cond, inpainting_conditioning(inpaint_sd(), {}, {}, 1.0, 64, 64)));
  const auto r = run(p);
  EXPECT_EQ(int64_t(r.x.size()), c.at("expected").at("sampler_steps_run").get<int64_t>());
  expect_matches(c, r);
}

TEST(InpaintingModel, DiffusersLayoutGivesTheSameImage) {
  const auto& c = ref().case_by_id("inpaint/s0p75");
  const auto folder = engine::models::StableDiffusion::open(sd15_inpaint_tiny_dir() / "diffusers", {});
  const auto a = run(case_params(c)), b = run(case_params(c), folder);
  EXPECT_TRUE(torch::equal(a.result.latents, b.result.latents));
  EXPECT_LE(max_abs_diff(b.result.images[0], png(c.at("outputs").at("png"))), 1.0);
}

TEST(InpaintingModel, FromPromptTextThroughGenerateImages) {
  // The engine's request entry: A1111 conditioning with the model's own text encoder, then inpaint.
  const auto& c = ref().case_by_id("inpaint/s1");
  engine::LoadedModel loaded(engine::models::StableDiffusion::open(sd15_inpaint_tiny_dir() / "model.safetensors", {}));
  engine::GenerateRequest request;
  request.prompt = c.at("inputs").at("prompt");
  request.negative_prompt = c.at("inputs").at("negative_prompt");
  request.params = case_params(c);
  const auto out = engine::generate_images(loaded, request);
  EXPECT_LE(max_abs_diff(out.result.latents, ref().tensor(c.at("outputs").at("latent"))),
            c.at("tolerance").at("latent_max_abs").get<double>());
  EXPECT_LE(max_abs_diff(out.result.images.at(0), png(c.at("outputs").at("png"))), 1.0);
}

TEST(InpaintingModel, MaskWeightZeroShowsTheWholeImageToTheUNet) {
  const auto p = case_params(ref().case_by_id("inpaint/s1"));
  torch::NoGradGuard no_grad;
  const auto image = image_to_model(p.init_image);
  const auto cond = inpainting_conditioning(inpaint_sd(), image, mask_channel(p.mask), 0.0, 64, 64);
  const auto init = inpaint_sd().vae->encode(image).mean * inpaint_sd().latent_scale();
  EXPECT_LE(max_abs_diff(cond.narrow(1, 1, 4), init), 1e-6);
  auto bad = p;
  bad.inpainting_mask_weight = 1.5;
  EXPECT_THROW(validate(bad), engine::Error);
}

}  // namespace
}  // namespace kiln::test
