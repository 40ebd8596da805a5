// sdxl-tiny: txt2img (Euler, DPM++ 2M Karras) and img2img (Euler, strength 0.6) through the
// pipeline SD1.x uses, from both layouts, with the reference conditioning and from prompt text.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <iostream>

#include "engine/conditioning.h"
#include "engine/error.h"
#include "engine/model_cache.h"
#include "engine/generate.h"
#include "engine/sampling/pipeline.h"
#include "engine/sampling/schedule.h"
#include "support/reference.h"
#include "unit/engine/models/tiny_model.h"
#include "unit/engine/sampling/png_reader.h"

namespace kiln::test {
namespace {

using namespace engine::sampling;

const Reference& ref() { return Reference::get("sdxl-tiny"); }

Conditioning reference_conditioning(const std::string& prefix = "txt2img") {
  Conditioning c;
  c.cond = ref().tensor(prefix + ".cond.crossattn");
  c.uncond = ref().tensor(prefix + ".uncond.crossattn");
  c.cond_vector = ref().tensor(prefix + ".cond.vector");
  c.uncond_vector = ref().tensor(prefix + ".uncond.vector");
  return c;
}

GenerationParams params_of(const nlohmann::json& in, const std::string& sampler) {
  GenerationParams p;
  p.width = in.value("width", 64);
  p.height = in.value("height", 64);
  p.steps = in.at("steps");
  p.cfg_scale = in.at("cfg_scale");
  p.sampler = sampler;
  p.seed = in.at("seed");
  p.preview_every = 0;
  return p;
}

struct SamplerRun {
  GenerationResult result;
  std::vector<torch::Tensor> x, denoised;
};

SamplerRun run(const engine::models::StableDiffusion& model, const GenerationParams& p, const Conditioning& cond) {
  SamplerRun r;
  PipelineHooks hooks;
  hooks.on_step = [&r](const Progress& progress) {
    r.x.push_back(progress.latent.clone());
    r.denoised.push_back(progress.denoised.clone());
  };
  r.result = generate(model, cond, p, hooks);
  return r;
}

// Latent per step, final latent, decoded image and PNG against the case; returns "latent/image/png" errors.
std::string expect_matches(const engine::models::StableDiffusion& model, const nlohmann::json& c, const SamplerRun& r,
                           const std::string& latent_key = "latent", const std::string& image_key = "image") {
  const auto& out = c.at("outputs");
  const auto& tol = c.at("tolerance");
  const double latent_tol = tol.at("latent_max_abs");
  const auto expected_x = ref().tensor(out.at("x_per_step"));
  EXPECT_EQ(int64_t(r.x.size()), expected_x.size(0));
  for (size_t i = 0; i < r.x.size() && int64_t(i) < expected_x.size(0); ++i) {
    SCOPED_TRACE("step " + std::to_string(i));
    EXPECT_LE(max_abs_diff(r.x[i][0], expected_x[i]), latent_tol);
    if (out.contains("denoised_per_step"))
      EXPECT_LE(max_abs_diff(r.denoised[i][0], ref().tensor(out.at("denoised_per_step"))[i]), latent_tol);
  }
  const double latent_err = max_abs_diff(r.result.latents, ref().tensor(out.at(latent_key)));
  EXPECT_LE(latent_err, latent_tol);
  torch::NoGradGuard no_grad;
  const auto image = model.vae->decode(r.result.latents / model.latent_scale());
  const double image_err = max_abs_diff(image, ref().tensor(out.at(image_key)));
  EXPECT_LE(image_err, tol.at("image_max_abs").get<double>());
  double png_err = 0;
  if (out.contains("png")) {
    const auto png = read_png(sdxl_tiny_dir() / out.at("png").get<std::string>());
    png_err = max_abs_diff(r.result.images.at(0), png);
    EXPECT_LE(png_err, 1.0) << "PNG pixels may differ by one level at most";
  }
  return "latent " + std::to_string(latent_err) + " (tol " + std::to_string(latent_tol) + "), image " +
         std::to_string(image_err) + ", png " + std::to_string(png_err) + " levels";
}

class SdxlPipeline : public ::testing::TestWithParam<Layout> {
 protected:
  const engine::models::StableDiffusion& model() const { return tiny_sdxl(GetParam()); }
};

TEST_P(SdxlPipeline, Txt2ImgEulerAndDpmpp2mKarrasMatch) {
  for (const auto& [id, sampler] : {std::pair{"txt2img/euler", "Euler"}, {"txt2img/dpmpp_2m_karras", "DPM++ 2M Karras"}}) {
    SCOPED_TRACE(id);
    const auto& c = ref().case_by_id(id);
    const auto p = params_of(c.at("inputs"), sampler);
    const auto r = run(model(), p, reference_conditioning());
    // Same seed, same noise: CPU randn with the seed, scaled by the first sigma.
    const auto sigma0 = ref().tensor(c.at("inputs").at("sigmas"))[0];
    EXPECT_LE(max_abs_diff(r.x.at(0), ref().tensor(std::string("txt2img.noise")) * sigma0), 1e-5);
    std::cout << "[ measured ] " << id << " (" << layout_name(GetParam()) << "): " << expect_matches(model(), c, r) << "\n";
  }
}

TEST_P(SdxlPipeline, Img2ImgEulerMatches) {
  const auto& c = ref().case_by_id("img2img/euler");
  auto p = params_of(c.at("inputs"), "Euler");
  p.init_image = read_png(sdxl_tiny_dir() / c.at("inputs").at("init_image_png").get<std::string>());
  p.denoising_strength = c.at("inputs").at("denoising_strength");
  const auto r = run(model(), p, reference_conditioning());
  EXPECT_EQ(int64_t(r.x.size()), c.at("expected").at("sampler_steps_run").get<int64_t>());
  EXPECT_LE(max_abs_diff(r.x.at(0), ref().tensor(c.at("outputs").at("noised_latent"))),
            c.at("tolerance").at("latent_max_abs").get<double>());
  std::cout << "[ measured ] img2img/euler (" << layout_name(GetParam()) << "): " << expect_matches(model(), c, r) << "\n";
}

TEST_P(SdxlPipeline, FromPromptTextToTheReferenceImage) {
  // The whole chain as a request runs it: both prompts conditioned by the SDXL rules at 64×64.
  engine::LoadedModel loaded(model());
  const auto& c = ref().case_by_id("txt2img/euler");
  engine::GenerateRequest request;
  request.prompt = c.at("inputs").at("prompt");
  request.negative_prompt = c.at("inputs").at("negative_prompt");
  request.params = params_of(c.at("inputs"), "Euler");
  const auto out = engine::generate_images(loaded, request);
  // No per-step states through generate_images: compare the result only.
  const double latent_err = max_abs_diff(out.result.latents, ref().tensor(c.at("outputs").at("latent")));
  EXPECT_LE(latent_err, c.at("tolerance").at("latent_max_abs").get<double>());
  const double png_err = max_abs_diff(out.result.images.at(0), read_png(sdxl_tiny_dir() / "ref_txt2img_euler.png"));
  EXPECT_LE(png_err, 1.0);
  std::cout << "[ measured ] txt2img/euler from prompt text (" << layout_name(GetParam()) << "): latent " << latent_err
            << ", png " << png_err << " levels\n";
}

INSTANTIATE_TEST_SUITE_P(Layouts, SdxlPipeline, ::testing::Values(Layout::SingleFile, Layout::Diffusers),
                         [](const auto& info) { return layout_name(info.param); });

TEST(SdxlPipeline, ScheduleIsSd15s) {
  const auto& c = ref().case_by_id("schedule/alphas");
  EXPECT_LE(max_abs_diff(alphas_cumprod_ldm(), ref().tensor(c.at("outputs").at("alphas_cumprod"))),
            c.at("tolerance").at("max_abs").get<double>());
  const auto schedule = DiscreteSchedule::sd();
  for (const char* id : {"schedule/sigmas_default_10", "schedule/sigmas_karras_10"}) {
    SCOPED_TRACE(id);
    const auto& s = ref().case_by_id(id);
    const bool karras = std::string(id).find("karras") != std::string::npos;
    const auto sigmas = karras ? schedule.karras_sigmas(10) : schedule.default_sigmas(10);
    const auto expected = ref().tensor(s.at("outputs").at("sigmas"));
    const double rel = ((sigmas.narrow(0, 0, 10) - expected.narrow(0, 0, 10)).abs() / expected.narrow(0, 0, 10)).max().item<double>();
    EXPECT_LE(rel, s.at("tolerance").at("max_abs_relative").get<double>());
  }
}

TEST(SdxlPipeline, SdxlConditioningIsNeededAndSd1ConditioningRefused) {
  auto p = params_of(ref().case_by_id("txt2img/euler").at("inputs"), "Euler");
  p.steps = 1;
  auto cond = reference_conditioning();
  cond.cond_vector = torch::Tensor();
  EXPECT_THROW(generate(tiny_sdxl(), cond, p), engine::Error);
  EXPECT_THROW(generate(tiny_sd(), reference_conditioning(), p), engine::Error);
}

}  // namespace
}  // namespace kiln::test
