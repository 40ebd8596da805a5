// Tiling (A1111's option): circular padding makes the UNet and the VAE see the image as a torus, so
// shifting the input shifts the output the same way and the result's edges continue into each other.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "engine/models/layers.h"
#include "engine/sampling/pipeline.h"
#include "support/reference.h"
#include "unit/engine/models/tiny_model.h"

namespace kiln::test {
namespace {

using namespace engine::sampling;

// Switches circular padding on for the life of the object (the tests share the model).
struct Circular {
  Circular() { set(true); }
  ~Circular() { set(false); }
  static void set(bool on) {
    engine::models::set_circular_padding(*tiny_sd().unet.ptr(), on);
    engine::models::set_circular_padding(*tiny_sd().vae.ptr(), on);
  }
};

torch::Tensor roll_w(const torch::Tensor& x, int64_t by) { return torch::roll(x, {by}, {3}); }

TEST(Tiling, UNetAndVaeCommuteWithWrappingShifts) {
  torch::NoGradGuard no_grad;
  const auto& sd = tiny_sd();
  auto gen = at::detail::createCPUGenerator(7);
  const auto x = torch::randn({1, 4, 16, 16}, gen);
  const auto t = torch::full({1}, 500.0);
  const auto context = Reference::get().tensor(std::string("txt2img.cond"));
  auto shift_error = [&] {
    // The tiny UNet downsamples three times: shifts by 8 latent cells wrap exactly.
    const auto a = sd.unet->forward(roll_w(x, 8), t, context), b = roll_w(sd.unet->forward(x, t, context), 8);
    const auto d1 = sd.vae->decode(roll_w(x, 3)), d2 = roll_w(sd.vae->decode(x), 24);
    return std::pair{(a - b).abs().max().item<double>(), (d1 - d2).abs().max().item<double>()};
  };
  const auto [unet_plain, vae_plain] = shift_error();
  double unet_tiled = 0, vae_tiled = 0;
  {
    Circular on;
    std::tie(unet_tiled, vae_tiled) = shift_error();
  }
  EXPECT_LE(unet_tiled, 1e-4);
  EXPECT_LE(vae_tiled, 1e-4);
  EXPECT_GT(unet_plain, 1e-2) << "zero padding sees the edges, so the shift changes the result";
  EXPECT_GT(vae_plain, 1e-2);
}

TEST(Tiling, TiledImagesContinueAcrossTheirEdgesAndTheModelGoesBack) {
  GenerationParams p;
  p.width = 128;
  p.height = 64;
  p.steps = 4;
  p.sampler = "Euler";
  p.seed = 31;
  p.preview_every = 0;
  const Conditioning cond{Reference::get().tensor(std::string("txt2img.cond")),
                          Reference::get().tensor(std::string("txt2img.uncond")), {}};
  const auto plain = generate(tiny_sd(), cond, p).images.at(0);
  p.tiling = true;
  const auto tiled = generate(tiny_sd(), cond, p).images.at(0).to(torch::kFloat32);
  // The seam (last column against the first, last row against the first) is like any pair of
  // neighbouring columns or rows inside the image.
  auto mean_step = [](const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().mean().item<double>(); };
  const double inside_w = mean_step(tiled.narrow(1, 1, 127), tiled.narrow(1, 0, 127));
  const double seam_w = mean_step(tiled.select(1, 0), tiled.select(1, 127));
  const double inside_h = mean_step(tiled.narrow(0, 1, 63), tiled.narrow(0, 0, 63));
  const double seam_h = mean_step(tiled.select(0, 0), tiled.select(0, 63));
  EXPECT_LE(seam_w, 1.5 * inside_w) << "seam " << seam_w << " vs neighbouring columns " << inside_w;
  EXPECT_LE(seam_h, 1.5 * inside_h) << "seam " << seam_h << " vs neighbouring rows " << inside_h;
  EXPECT_FALSE(torch::equal(plain, tiled.to(torch::kUInt8)));
  // The model is back to zero padding: the same plain request gives the same image.
  p.tiling = false;
  EXPECT_TRUE(torch::equal(generate(tiny_sd(), cond, p).images.at(0), plain));
}

}  // namespace
}  // namespace kiln::test
