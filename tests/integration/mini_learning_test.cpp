// Issue 23's learning test: Kiln's main job (installers/linux/main-job.sh) trains its product LoRA
// on Kiln Mini with the shipped sample layers (a teal hexagonal tin with a yellow star, held out of
// Kiln Mini's own training), and the result has to show that the LoRA learned the product:
//   * pictures of the layers' caption ("kilntin can") made with the LoRA are closer to the training
//     pictures than the same prompt and seeds without it: in colour (histogram intersection of the
//     saturated pixels' hue) and in shape (IoU of the saturated-pixel mask with the nearest training
//     picture's); the same numbers for a new scene ("a kilntin can on a beach") are printed;
//   * the diffusion loss on product pictures the LoRA never saw (other turns of the tin, prepared
//     by the same dataset pipeline) falls from the base model's to the last epoch's.
// It runs the real script, daemon and CLI, then measures in-process with the engine.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <regex>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include "daemon_process.h"
#include "engine/device.h"
#include "engine/generate.h"
#include "engine/model_cache.h"
#include "engine/models/stable_diffusion.h"
#include "engine/sampling/schedule.h"
#include "scene_batch.h"
#include "studio/image.h"
#include "studio/mini/scene_generator.h"

using namespace kiln::test;
namespace fs = std::filesystem;

namespace {

const fs::path kRepo = KILN_TEST_SOURCE_DIR;
const fs::path kMini = kRepo / "mini" / "kiln-mini.safetensors";
const std::string kCaption = "kilntin can";  // the sample layers' caption: trigger and class word
const std::string kNewScene = "a kilntin can on a beach, sunlight";  // a scene no layer shows
constexpr int kSeeds = 8;

std::vector<fs::path> pngs_in(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".png") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// The folder of a dataset's prepared pictures (kohya layout: <repeats>_<trigger>/).
fs::path prepared_folder(const fs::path& data_dir, const std::string& dataset) {
  for (const auto& e : fs::directory_iterator(data_dir / "datasets" / dataset))
    if (e.is_directory() && std::regex_match(e.path().filename().string(), std::regex(R"(\d+_.+)"))) return e.path();
  return {};
}

// Pixels of a product colour, not the backdrop: saturated and not dark (the tin is teal with a
// yellow star and a cork lid; the white or grey backdrop and the shadows are not).
cv::Mat product_mask(const cv::Mat& bgr) {
  cv::Mat hsv, mask;
  cv::cvtColor(bgr, hsv, cv::COLOR_BGR2HSV);
  cv::inRange(hsv, cv::Scalar(0, 77, 51), cv::Scalar(180, 255, 255), mask);
  return mask;
}

// 18-bin hue histogram of the masked pixels, summing to 1 (all zeros for an empty mask).
std::vector<double> hue_histogram(const cv::Mat& bgr) {
  cv::Mat hsv, hist;
  cv::cvtColor(bgr, hsv, cv::COLOR_BGR2HSV);
  const int channels[] = {0}, bins[] = {18};
  const float range[] = {0, 180};
  const float* ranges[] = {range};
  cv::calcHist(&hsv, 1, channels, product_mask(bgr), hist, 1, bins, ranges);
  std::vector<double> h(18, 0.0);
  const double n = cv::sum(hist)[0];
  for (int i = 0; i < 18; ++i) h[static_cast<size_t>(i)] = n > 0 ? hist.at<float>(i) / n : 0.0;
  return h;
}

double intersection(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += std::min(a[i], b[i]);
  return s;
}

double iou(const cv::Mat& a, const cv::Mat& b) {
  const double inter = cv::countNonZero(a & b), uni = cv::countNonZero(a | b);
  return uni > 0 ? inter / uni : 0.0;
}

struct Closeness {
  double colour = 0;  // mean histogram intersection with the training pictures' hue histogram
  double shape = 0;   // mean IoU with the nearest training picture's mask
};

Closeness closeness(const std::vector<cv::Mat>& pictures, const std::vector<cv::Mat>& training) {
  std::vector<double> reference(18, 0.0);
  std::vector<cv::Mat> masks;
  for (const auto& t : training) {
    const auto h = hue_histogram(t);
    for (size_t i = 0; i < h.size(); ++i) reference[i] += h[i] / static_cast<double>(training.size());
    masks.push_back(product_mask(t));
  }
  Closeness c;
  for (const auto& p : pictures) {
    c.colour += intersection(hue_histogram(p), reference) / static_cast<double>(pictures.size());
    const cv::Mat m = product_mask(p);
    double best = 0;
    for (const auto& t : masks) best = std::max(best, iou(m, t));
    c.shape += best / static_cast<double>(pictures.size());
  }
  return c;
}

kiln::engine::lora::LoraRequest lora_request(const fs::path& file, double strength) {
  kiln::engine::lora::LoraRequest r;
  r.path = file;
  r.multiplier = strength;
  return r;
}

class MiniLearning : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(kMini)) << "Kiln Mini is part of the repository: " << kMini;
    root_ = fs::temp_directory_path() / ("kiln-learning-" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
    env_ = {{"KILN_SOCKET", (root_ / "kilnd.sock").string()},
            {"KILN_DATA_DIR", (root_ / "data").string()},
            {"KILN_DAEMON", kilnd_path()},
            {"KILN_BUILD_DIR", fs::path(kilnd_path()).parent_path().parent_path().string()}};
  }
  void TearDown() override {
    if (!root_.empty()) {
      run_command({kiln_cli_path(), "daemon", "stop"}, env_);
      if (!HasFailure()) fs::remove_all(root_);
    }
  }
  fs::path root_;
  std::vector<std::pair<std::string, std::string>> env_;
};

TEST_F(MiniLearning, KilnMiniGeneratesAtItsOwnSizeByDefault) {
  // The file says "modelspec.resolution": "64x64": listed with default_size 64, and a generation
  // that names no size comes out at 64×64 instead of SD1.x's 512.
  ASSERT_EQ(run_command({kiln_cli_path(), "models", "add", kMini.string(), "--name", "mini"}, env_).first, 0);
  // Run from a folder that holds an unrelated "mini" folder: the bare word stays a model name.
  fs::create_directories(root_ / "cwd" / "mini");
  const auto [list_code, listed] = run_command({kiln_cli_path(), "models", "list", "--json"}, env_);
  ASSERT_EQ(list_code, 0) << listed;
  const auto models = nlohmann::json::parse(listed).at("models");
  ASSERT_EQ(models.size(), 1u);
  EXPECT_EQ(models[0].at("default_size"), 64);
  const fs::path png = root_ / "bottle.png";
  const auto [code, out] = run_command({"/bin/sh", "-c",
                                        "cd '" + (root_ / "cwd").string() + "' && '" + kiln_cli_path() +
                                            "' generate --model mini --prompt 'a red glass bottle on a wooden table' "
                                            "--sampler Euler --cfg 5 --seed 3 --out '" + png.string() + "' 2>&1"},
                                       env_);
  ASSERT_EQ(code, 0) << out;
  const cv::Mat image = cv::imread(png.string());
  EXPECT_EQ(image.cols, 64);
  EXPECT_EQ(image.rows, 64);
}

TEST_F(MiniLearning, MainJobsLoraLearnsTheHeldOutProduct) {
  // 1. The main job, as a user runs it.
  const auto [code, out] = run_command({"/bin/sh", "-c", "'" + (kRepo / "installers/linux/main-job.sh").string() + "' 2>&1"}, env_);
  ASSERT_EQ(code, 0) << out;
  const fs::path data = root_ / "data";
  const fs::path lora_dir = data / "loras" / "sample-tin";
  ASSERT_TRUE(fs::exists(lora_dir / "sample-tin.safetensors")) << out;
  EXPECT_TRUE(fs::exists(lora_dir / "grid.png")) << out;

  // 2. Other turns of the tin than the shipped layers (seeds 1…12), through the same dataset
  //    pipeline, for the held-out loss.
  const fs::path held_out_layers = root_ / "held-out-layers";
  fs::create_directories(held_out_layers);
  for (int i = 0; i < 6; ++i)
    kiln::studio::write_png(held_out_layers / ("held_" + std::to_string(i) + ".png"),
                            kiln::studio::mini::render_product_layer(1000 + static_cast<uint64_t>(i), 256).image);
  const auto [held_code, held_out] =
      run_command({kiln_cli_path(), "dataset", "create", "held-out", "--from", held_out_layers.string(), "--preset",
                   "product", "--trigger", "kilntin", "--background", "white", "--resolution", "64", "--repeats", "1"},
                  env_);
  ASSERT_EQ(held_code, 0) << held_out;
  run_command({kiln_cli_path(), "daemon", "stop"}, env_);

  std::vector<cv::Mat> training, held;
  for (const auto& p : pngs_in(prepared_folder(data, "sample-tin"))) training.push_back(cv::imread(p.string()));
  for (const auto& p : pngs_in(prepared_folder(data, "held-out"))) held.push_back(cv::imread(p.string()));
  ASSERT_GE(training.size(), 8u);
  ASSERT_EQ(held.size(), 6u);

  // 3. The trigger's pictures with and without the LoRA: same prompt, same seeds.
  torch::set_num_threads(2);
  auto model = std::make_shared<kiln::engine::LoadedModel>(
      kiln::engine::models::StableDiffusion::open(kMini, kiln::engine::choose_device("cpu", "fp32")));
  const auto pictures = [&](const std::string& prompt, double strength) {
    std::vector<cv::Mat> out;
    for (int seed = 1; seed <= kSeeds; ++seed) {
      kiln::engine::GenerateRequest r;
      r.prompt = prompt;
      r.params.width = r.params.height = 64;
      r.params.steps = 20;
      r.params.cfg_scale = 5;
      r.params.sampler = "Euler";
      r.params.seed = seed;
      r.params.preview_every = 0;
      if (strength > 0) r.loras.push_back(lora_request(lora_dir / "sample-tin.safetensors", strength));
      out.push_back(kiln::mini::hwc_to_bgr(kiln::engine::generate_images(*model, r).result.images.at(0)));
    }
    return out;
  };
  const auto without = closeness(pictures(kCaption, 0), training);
  const auto with = closeness(pictures(kCaption, 1), training);
  const auto beach_without = closeness(pictures(kNewScene, 0), training);
  const auto beach_with = closeness(pictures(kNewScene, 1), training);
  std::printf("colour histogram intersection: without %.3f, with %.3f (on a beach: %.3f → %.3f)\n", without.colour,
              with.colour, beach_without.colour, beach_with.colour);
  std::printf("shape mask IoU:                without %.3f, with %.3f (on a beach: %.3f → %.3f)\n", without.shape,
              with.shape, beach_without.shape, beach_with.shape);
  // Measured on Kiln Mini at UNet step 4632: colour 0.238 → 0.562, shape 0.348 → 0.868.
  EXPECT_GT(with.colour, without.colour + 0.2);
  EXPECT_GT(with.shape, without.shape + 0.3);
  // In a new scene the LoRA, trained on twelve layers on white, moves the pictures only a little
  // (0.243 → 0.297 in colour): printed for the README, not asserted.

  // 4. Held-out loss: fixed noise and timesteps over the held-out pictures, base model then each epoch.
  torch::NoGradGuard no_grad;
  const auto& sd = model->model;
  const auto latents = sd.vae->encode(kiln::mini::to_tensor(held)).mean * 0.18215;
  const auto context = sd.text_encoder->encode(kiln::mini::token_ids({kCaption})).expand({latents.size(0), -1, -1});
  const auto alphas = kiln::engine::sampling::alphas_cumprod_ldm();
  auto gen = at::detail::createCPUGenerator(23);
  std::vector<torch::Tensor> noises;
  const std::vector<int64_t> timesteps{100, 250, 400, 550, 700, 850};
  for (size_t k = 0; k < timesteps.size(); ++k) noises.push_back(torch::randn(latents.sizes(), gen));
  const auto held_out_loss = [&] {
    double total = 0;
    for (size_t k = 0; k < timesteps.size(); ++k) {
      const double a = alphas[timesteps[k]].item<double>();
      const auto noisy = std::sqrt(a) * latents + std::sqrt(1 - a) * noises[k];
      const auto t = torch::full({latents.size(0)}, static_cast<float>(timesteps[k]));
      total += torch::mse_loss(sd.unet->forward(noisy, t, context), noises[k]).item<double>();
    }
    return total / static_cast<double>(timesteps.size());
  };
  model->loras.clear();  // the generations above left the LoRA applied
  std::vector<double> losses{held_out_loss()};
  std::vector<fs::path> epochs;
  for (const auto& e : fs::directory_iterator(lora_dir))
    if (std::regex_match(e.path().filename().string(), std::regex(R"(sample-tin-\d{6}\.safetensors)")))
      epochs.push_back(e.path());
  std::sort(epochs.begin(), epochs.end());
  ASSERT_GE(epochs.size(), 3u);
  for (const auto& e : epochs) {
    model->loras.set({lora_request(e, 1.0)});
    losses.push_back(held_out_loss());
  }
  model->loras.clear();
  std::printf("held-out loss, base then per epoch:");
  for (double l : losses) std::printf(" %.4f", l);
  std::printf("\n");
  // Measured: 0.307 for the base, then 0.133 0.119 0.112 0.110.
  EXPECT_LT(losses.back(), 0.6 * losses.front());
  EXPECT_LT(losses.back(), losses[1]) << "the loss still falls after the first epoch";
}

}  // namespace
