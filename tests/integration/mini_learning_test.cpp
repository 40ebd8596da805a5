// Issue 23's learning test: Kiln's main job (installers/linux/main-job.sh) trains its product LoRA
// on Kiln Mini with the shipped sample photos (a teal hexagonal tin with a yellow star, held out of
// Kiln Mini's own training, photographed on tables, a concrete floor and a studio sweep), and the
// result has to show that the LoRA learned the product:
//   * pictures made with the LoRA hold the tin's teal where the base model paints none (Kiln Mini's
//     palette has no teal), both for a caption like the photos' and in a new scene the photos never
//     show (on sand), with the same prompts and seeds: the teal share of the picture and the IoU of
//     its teal mask with the nearest training photo's (grass and the beach are printed too);
//   * the diffusion loss on product photos the LoRA never saw (other seeds, prepared by the same
//     dataset pipeline) falls from the base model's to the last epoch's.
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
#include "contact_sheet.h"
#include "scene_batch.h"
#include "studio/image.h"
#include "studio/mini/scene_generator.h"

using namespace kiln::test;
namespace fs = std::filesystem;

namespace {

const fs::path kRepo = KILN_TEST_SOURCE_DIR;
const fs::path kMini = kRepo / "mini" / "kiln-mini.safetensors";
const std::string kCaption = "kilntin can, wooden table";  // a caption of the photos' kind and scene
const std::string kSand = "a kilntin can on sand";  // a new scene: no photo shows sand
// Printed, not asserted: on grass the LoRA moves little yet; on the beach the sea is teal already.
const std::string kGrass = "kilntin can, grass, soft light";
const std::string kBeach = "a photo of a kilntin can on the beach, sunlight";
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

// The tin's teal: hue within 15° of the palette's teal, saturated and not dark. Kiln Mini never
// learnt teal (its palette has none), so without the LoRA it appears only where a scene has it.
cv::Mat teal_mask(const cv::Mat& bgr) {
  cv::Mat teal(1, 1, CV_8UC3, cv::Scalar(kiln::studio::mini::palette_bgr("teal"))), teal_hsv, hsv, mask;
  cv::cvtColor(teal, teal_hsv, cv::COLOR_BGR2HSV);
  const int hue = teal_hsv.at<cv::Vec3b>(0, 0)[0];  // OpenCV hue: degrees / 2
  cv::cvtColor(bgr, hsv, cv::COLOR_BGR2HSV);
  cv::inRange(hsv, cv::Scalar(hue - 7.5, 90, 50), cv::Scalar(hue + 7.5, 255, 255), mask);
  return mask;
}

double iou(const cv::Mat& a, const cv::Mat& b) {
  const double inter = cv::countNonZero(a & b), uni = cv::countNonZero(a | b);
  return uni > 0 ? inter / uni : 0.0;
}

struct Closeness {
  double teal = 0;   // mean share of teal pixels
  double shape = 0;  // mean IoU of the teal mask with the nearest training photo's
};

Closeness closeness(const std::vector<cv::Mat>& pictures, const std::vector<cv::Mat>& training) {
  std::vector<cv::Mat> masks;
  for (const auto& t : training) masks.push_back(teal_mask(t));
  Closeness c;
  for (const auto& p : pictures) {
    const cv::Mat m = teal_mask(p);
    c.teal += cv::countNonZero(m) / static_cast<double>(m.total() * pictures.size());
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

  // 2. Other photos of the tin than the shipped ones (seeds 1…20; these are 1001…1006, same
  //    surfaces), through the same dataset pipeline, for the held-out loss.
  const fs::path held_out_photos = root_ / "held-out-photos";
  fs::create_directories(held_out_photos);
  kiln::studio::mini::GeneratorOptions photo_size;
  photo_size.size = 256;
  for (int i = 0; i < 6; ++i) {
    const uint64_t seed = 1001 + static_cast<uint64_t>(i);
    namespace mini = kiln::studio::mini;
    const auto photo = mini::render_scene(mini::product_photo_spec(seed, mini::sample_photo_surfaces()), seed, photo_size);
    const std::string stem = "held_" + std::to_string(i);
    kiln::studio::write_png(held_out_photos / (stem + ".png"), photo.image);
    std::ofstream(held_out_photos / (stem + ".txt")) << photo.caption << "\n";
  }
  const auto [held_code, held_out] =
      run_command({kiln_cli_path(), "dataset", "create", "held-out", "--from", held_out_photos.string(), "--preset",
                   "product", "--trigger", "kilntin", "--crop", "center", "--no-center-subject", "--resolution", "64",
                   "--repeats", "1"},
                  env_);
  ASSERT_EQ(held_code, 0) << held_out;
  run_command({kiln_cli_path(), "daemon", "stop"}, env_);

  std::vector<cv::Mat> training, held;
  std::vector<std::string> held_captions;
  for (const auto& p : pngs_in(prepared_folder(data, "sample-tin"))) training.push_back(cv::imread(p.string()));
  for (const auto& p : pngs_in(prepared_folder(data, "held-out"))) {
    held.push_back(cv::imread(p.string()));
    std::ifstream caption(fs::path(p).replace_extension(".txt"));
    held_captions.emplace_back(std::istreambuf_iterator<char>(caption), std::istreambuf_iterator<char>());
  }
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
  // KILN_TEST_SCREENSHOT_DIR set: the README's pictures of it too (main-job-lora.png: training photos,
  // then each prompt without and with the LoRA; main-job-grid.png: the job's grid enlarged 2×).
  const char* shots = std::getenv("KILN_TEST_SCREENSHOT_DIR");
  std::vector<kiln::mini::SheetCell> sheet;
  const auto sheet_row = [&](const std::vector<cv::Mat>& row, const std::string& first, const std::string& second) {
    for (size_t i = 0; i < row.size() && i < static_cast<size_t>(kSeeds); ++i)
      sheet.push_back({row[i], i == 0 ? first : i == 1 ? second : "", "", {40, 40, 40}});
  };
  sheet_row(training, "training photos", "(8 of 20)");
  const auto report = [&](const std::string& prompt) {
    const auto without_pictures = pictures(prompt, 0), with_pictures = pictures(prompt, 1);
    sheet_row(without_pictures, "\"" + prompt + "\"", "without the LoRA");
    sheet_row(with_pictures, "with the LoRA", "");
    const auto without = closeness(without_pictures, training), with = closeness(with_pictures, training);
    std::printf("%-50s teal share %.4f → %.4f, teal-mask IoU %.3f → %.3f\n", ("\"" + prompt + "\"").c_str(),
                without.teal, with.teal, without.shape, with.shape);
    return std::make_pair(without, with);
  };
  std::printf("without → with the LoRA, %d seeds each:\n", kSeeds);
  // Measured on Kiln Mini at UNet step 8,285 (main job seed 1, two threads): wooden table teal
  // 0 → 0.0197, IoU 0 → 0.256; sand 0 → 0.0147, 0 → 0.213; grass 0 → 0.0031, 0 → 0.047; beach
  // 0.093 → 0.081 (the sea), 0.099 → 0.126.
  const auto [own_without, own_with] = report(kCaption);
  EXPECT_GT(own_with.teal, own_without.teal + 0.01);
  EXPECT_GT(own_with.shape, own_without.shape + 0.1);
  const auto [sand_without, sand_with] = report(kSand);
  EXPECT_GT(sand_with.teal, sand_without.teal + 0.007) << "the tin in a scene no photo shows";
  EXPECT_GT(sand_with.shape, sand_without.shape + 0.1);
  report(kGrass);
  report(kBeach);
  if (shots) {
    kiln::studio::write_png(fs::path(shots) / "main-job-lora.png", kiln::mini::contact_sheet(sheet, kSeeds, 120));
    cv::Mat grid = cv::imread((lora_dir / "grid.png").string()), enlarged;
    cv::resize(grid, enlarged, cv::Size(), 2, 2, cv::INTER_NEAREST);
    kiln::studio::write_png(fs::path(shots) / "main-job-grid.png", enlarged);
  }

  // 4. Held-out loss: fixed noise and timesteps over the held-out pictures, base model then each epoch.
  torch::NoGradGuard no_grad;
  model->loras.clear();  // the generations above left the LoRA applied: the base model first
  const auto& sd = model->model;
  const auto latents = sd.vae->encode(kiln::mini::to_tensor(held)).mean * 0.18215;
  const auto alphas = kiln::engine::sampling::alphas_cumprod_ldm();
  auto gen = at::detail::createCPUGenerator(23);
  std::vector<torch::Tensor> noises;
  const std::vector<int64_t> timesteps{100, 250, 400, 550, 700, 850};
  for (size_t k = 0; k < timesteps.size(); ++k) noises.push_back(torch::randn(latents.sizes(), gen));
  // The captions are encoded each time: a LoRA's text-encoder half is part of what it learnt.
  const auto held_out_loss = [&] {
    const auto context = sd.text_encoder->encode(kiln::mini::token_ids(held_captions));
    double total = 0;
    for (size_t k = 0; k < timesteps.size(); ++k) {
      const double a = alphas[timesteps[k]].item<double>();
      const auto noisy = std::sqrt(a) * latents + std::sqrt(1 - a) * noises[k];
      const auto t = torch::full({latents.size(0)}, static_cast<float>(timesteps[k]));
      total += torch::mse_loss(sd.unet->forward(noisy, t, context), noises[k]).item<double>();
    }
    return total / static_cast<double>(timesteps.size());
  };
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
  // Measured: 0.0914 for the base, then 0.0601 0.0597 0.0582 0.0580.
  EXPECT_LT(losses.back(), 0.8 * losses.front());
  EXPECT_LT(losses.back(), losses[1]) << "the loss still falls after the first epoch";
}

}  // namespace
