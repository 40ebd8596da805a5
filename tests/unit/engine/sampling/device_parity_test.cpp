// The reference cases again, on every device and precision this machine has: the CPU in float32
// always; on a CUDA GPU float32 (TF32 off, so the fixtures' float32 tolerances hold), float16 and
// bfloat16 (looser bounds, and every measured error is printed so GPU runs report them).
// installers/gpu/engine-checks.sh runs this suite on GPU machines.
#include <cstdio>
#include <map>
#include <string>

#include <ATen/Context.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "engine/device.h"
#include "engine/sampling/pipeline.h"
#include "support/reference.h"
#include "unit/engine/sampling/png_reader.h"

namespace kiln::test {
namespace {

using namespace engine::sampling;

struct Target {
  std::string device, precision;
  // Bounds for half precision: the largest UNet error relative to the reference's largest value,
  // and the PNG's mean and largest pixel difference in levels. float32 uses the fixtures' own.
  double unet_relative = 0, png_mean_levels = 0, png_max_levels = 0;
};

std::string name_of(const Target& t) { return t.device + "_" + t.precision; }

bool full_precision(const Target& t) { return t.precision == "fp32"; }

class DeviceParity : public ::testing::TestWithParam<Target> {
 protected:
  void SetUp() override {
    const auto& t = GetParam();
    if (t.device == "cuda" && !torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device here";
    if (t.device == "cuda") {
      // Float32 must mean float32: TF32 convolutions would miss the fixtures' tolerances.
      at::globalContext().setAllowTF32CuDNN(false);
      at::globalContext().setAllowTF32CuBLAS(false);
    }
  }

  const engine::models::StableDiffusion& model() {
    static std::map<std::string, engine::models::StableDiffusion> loaded;
    const auto key = name_of(GetParam());
    auto it = loaded.find(key);
    if (it == loaded.end()) {
      const auto choice = engine::choose_device(GetParam().device, GetParam().precision);
      it = loaded.emplace(key, engine::models::StableDiffusion::open(sd15_tiny_dir() / "model.safetensors", choice))
               .first;
    }
    return it->second;
  }

  // Prints and records one measured error, so a GPU run's log holds the numbers.
  void report(const std::string& what, double value) {
    std::printf("[parity] %s %s: %.6g\n", name_of(GetParam()).c_str(), what.c_str(), value);
    RecordProperty(what, std::to_string(value));
  }
};

TEST_P(DeviceParity, UnetEpsMatchesTheReference) {
  const auto& t = GetParam();
  const auto& ref = Reference::get();
  const auto& unet = model().unet;
  const auto device = model().device;
  torch::NoGradGuard no_grad;
  for (const auto* c : ref.cases_of_kind("unet_eps")) {
    const std::string id = c->at("id");
    SCOPED_TRACE(id);
    const auto& in = c->at("inputs");
    const auto& ts = in.at("timestep");
    const auto timesteps = ts.is_array() ? torch::tensor(ts.get<std::vector<double>>(), torch::kFloat32)
                                         : torch::tensor({ts.get<double>()}, torch::kFloat32);
    const auto on = [&](const torch::Tensor& x) { return x.to(device.device, device.dtype); };
    const auto eps = unet->forward(on(ref.tensor(in.at("latent"))), timesteps.to(device.device),
                                   on(ref.tensor(in.at("context"))));
    const auto expected = ref.tensor(c->at("outputs").at("eps"));
    const double err = max_abs_diff(eps, expected);
    report(id + " max abs error", err);
    if (full_precision(t))
      EXPECT_LE(err, c->at("tolerance").at("max_abs").get<double>());
    else
      EXPECT_LE(err / expected.abs().max().item<double>(), t.unet_relative);
  }
}

TEST_P(DeviceParity, SamplersMakeTheReferenceImages) {
  const auto& t = GetParam();
  const auto& ref = Reference::get();
  const std::map<std::string, std::string> samplers = {{"txt2img/euler", "Euler"},
                                                       {"txt2img/euler_a", "Euler a"},
                                                       {"txt2img/dpmpp_2m_karras", "DPM++ 2M Karras"},
                                                       {"txt2img/ddim", "DDIM"},
                                                       {"img2img/euler", "Euler"}};
  const Conditioning cond{ref.tensor(std::string("txt2img.cond")), ref.tensor(std::string("txt2img.uncond")), {}};
  for (const auto& [id, sampler] : samplers) {
    SCOPED_TRACE(id);
    const auto& c = ref.case_by_id(id);
    const auto& in = c.at("inputs");
    GenerationParams p;
    p.width = in.value("width", 64);  // the img2img case takes its size from the init image (64²)
    p.height = in.value("height", 64);
    p.steps = in.at("steps");
    p.cfg_scale = in.at("cfg_scale");
    p.sampler = sampler;
    p.seed = id == "img2img/euler" ? 2044 : 2034;  // the fixtures' seeds (see noise_image_test.cpp)
    p.preview_every = 0;
    if (in.contains("init_image_png")) {
      p.init_image = read_png(sd15_tiny_dir() / in.at("init_image_png").get<std::string>());
      p.denoising_strength = in.at("denoising_strength");
    }
    const auto result = generate(model(), cond, p);
    ASSERT_EQ(result.images.size(), 1u);

    const auto& out = c.at("outputs");
    const double latent_err = max_abs_diff(result.latents, ref.tensor(out.at("latent")));
    const auto png = read_png(sd15_tiny_dir() / out.at("png").get<std::string>()).to(torch::kFloat32);
    const auto levels = (result.images[0].to(torch::kFloat32) - png).abs();
    const double png_mean = levels.mean().item<double>(), png_max = levels.max().item<double>();
    report(id + " latent max abs error", latent_err);
    report(id + " png mean levels", png_mean);
    report(id + " png max levels", png_max);
    if (full_precision(t)) {
      EXPECT_LE(latent_err, c.at("tolerance").at("latent_max_abs").get<double>());
      EXPECT_LE(png_max, 1.0) << "PNG pixels may differ by one level at most";
    } else {
      EXPECT_LE(png_mean, t.png_mean_levels);
      EXPECT_LE(png_max, t.png_max_levels);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, DeviceParity,
                         ::testing::Values(Target{"cpu", "fp32"}, Target{"cuda", "fp32"},
                                           Target{"cuda", "fp16", 1e-2, 1.5, 24},
                                           Target{"cuda", "bf16", 4e-2, 4.0, 48}),
                         [](const ::testing::TestParamInfo<Target>& info) { return name_of(info.param); });

}  // namespace
}  // namespace kiln::test
