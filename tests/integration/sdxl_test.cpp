// SDXL through a real daemon with the sdxl-tiny reference model: both layouts registered as SDXL,
// txt2img and an SDXL LoRA tag matching the reference stack's PNGs, the family's default size, LoRAs
// of the other family refused naming both families, and a short SDXL LoRA training (kohya's SDXL
// names and metadata) whose epoch file reloads and reproduces its own sample.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "daemon_process.h"
#include "protocol/methods.h"
#include "studio/infotext.h"
#include "studio/png.h"

using namespace kiln;
using namespace kiln::test;
using Json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

const fs::path kXl = fs::path(KILN_TEST_FIXTURES_DIR) / "sdxl-tiny";
const fs::path kSd15 = fs::path(KILN_TEST_FIXTURES_DIR) / "sd15-tiny";
const char* kPrompt = "a cozy cabin in a snowy forest, warm light in the windows";
const char* kNegative = "blurry, low quality";

int max_level_difference(const studio::PngImage& a, const studio::PngImage& b) {
  EXPECT_EQ(a.width, b.width);
  EXPECT_EQ(a.height, b.height);
  if (a.pixels.size() != b.pixels.size()) return 255;
  int worst = 0;
  for (std::size_t i = 0; i < a.pixels.size(); ++i) worst = std::max(worst, std::abs(int(a.pixels[i]) - int(b.pixels[i])));
  return worst;
}

class Sdxl : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    daemon_ = new DaemonProcess({}, "sdxl");
    auto c = daemon_->client();
    c->call(protocol::method::kModelsAdd, {{"path", (kXl / "model.safetensors").string()}, {"name", "xl"}});
    c->call(protocol::method::kModelsAdd, {{"path", (kXl / "diffusers").string()}, {"name", "xl-diffusers"}});
    c->call(protocol::method::kModelsAdd, {{"path", (kSd15 / "model.safetensors").string()}, {"name", "sd1"}});
    c->call(protocol::method::kLorasAdd, {{"path", (kXl / "lora_sdxl_rank4.safetensors").string()}, {"name", "xl4"}});
    c->call(protocol::method::kLorasAdd, {{"path", (kSd15 / "lora_rank4.safetensors").string()}, {"name", "sd4"}});
  }
  static void TearDownTestSuite() {
    delete daemon_;
    daemon_ = nullptr;
  }

  static Json wait_for_end(Client& client, const std::string& id, std::chrono::seconds limit = std::chrono::seconds(300)) {
    Json record;
    EXPECT_TRUE(eventually(
        [&] {
          record = client.call(protocol::method::kJobsGet, {{"id", id}});
          const std::string s = record.at("state");
          return s == "done" || s == "failed" || s == "cancelled";
        },
        limit));
    return record;
  }
  static Json run(Client& client, const Json& params) {
    return wait_for_end(client, client.call(protocol::method::kGenerate, params).at("id"));
  }
  // The reference txt2img/euler case: 64×64, 10 steps, CFG 7, seed 12034.
  static Json reference_params(const std::string& model) {
    return {{"model", model}, {"prompt", kPrompt}, {"negative", kNegative}, {"sampler", "Euler"}, {"steps", 10},
            {"cfg", 7},       {"seed", 12034},     {"width", 64},         {"height", 64}};
  }
  static studio::PngImage png_of(const Json& record, size_t i = 0) {
    return studio::read_png(record.at("result").at("images").at(i).at("png").get<std::string>());
  }

  static DaemonProcess* daemon_;
};
DaemonProcess* Sdxl::daemon_ = nullptr;

}  // namespace

TEST_F(Sdxl, BothLayoutsRegisterAsSdxlWithTheirDefaultSize) {
  auto c = daemon_->client();
  const Json models = c->call(protocol::method::kModelsList).at("models");
  ASSERT_EQ(models.size(), 3u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(models[i].at("family"), "SDXL") << models[i].dump();
    EXPECT_EQ(models[i].at("default_size"), 1024);
  }
  EXPECT_EQ(models[2].at("family"), "SD1.x");
  EXPECT_EQ(models[2].at("default_size"), 512);
  const Json lora = c->call(protocol::method::kLorasGet, {{"name", "xl4"}});
  EXPECT_EQ(lora.at("info").at("family"), "SDXL");
}

TEST_F(Sdxl, TxtToImgMatchesTheReferenceImageFromBothLayouts) {
  auto c = daemon_->client();
  const auto ref = studio::read_png(kXl / "ref_txt2img_euler.png");
  for (const char* model : {"xl", "xl-diffusers"}) {
    SCOPED_TRACE(model);
    const Json record = run(*c, reference_params(model));
    ASSERT_EQ(record.at("state"), "done") << record.dump(2);
    const auto png = png_of(record);
    EXPECT_LE(max_level_difference(png, ref), 1) << "the reference allows 1 level of rounding";
    const studio::Infotext info = studio::parse_infotext(*png.find_text("parameters"));
    EXPECT_EQ(*info.find("Size"), "64x64");
  }
}

TEST_F(Sdxl, AnSdxlLoraTagMatchesTheReferenceImage) {
  auto c = daemon_->client();
  Json p = reference_params("xl");
  p["prompt"] = std::string(kPrompt) + " <lora:xl4:1>";
  const Json record = run(*c, p);
  ASSERT_EQ(record.at("state"), "done") << record.dump(2);
  const Json& applied = record.at("result").at("loras").at(0);
  EXPECT_EQ(applied.at("text_encoder_modules"), 42);
  EXPECT_EQ(applied.at("unet_modules"), 182);
  EXPECT_EQ(applied.at("unmatched_keys"), 0);
  EXPECT_LE(max_level_difference(png_of(record), studio::read_png(kXl / "ref_lora_lora_sdxl_rank4_m1_euler.png")), 1);
}

TEST_F(Sdxl, WithoutASizeSdxlGeneratesAt1024) {
  auto c = daemon_->client();
  Json p = reference_params("xl");
  p.erase("width");
  p.erase("height");
  p["steps"] = 1;
  const Json record = run(*c, p);
  ASSERT_EQ(record.at("state"), "done") << record.dump(2);
  const auto png = png_of(record);
  EXPECT_EQ(png.width, 1024);
  EXPECT_EQ(png.height, 1024);
}

TEST_F(Sdxl, LorasOfTheOtherFamilyAreRefusedNamingBothFamilies) {
  auto c = daemon_->client();
  for (const auto& [model, lora, made_for, loaded] :
       {std::tuple{"sd1", "xl4", "SDXL", "SD1.x"}, std::tuple{"xl", "sd4", "SD1.x", "SDXL"}}) {
    SCOPED_TRACE(std::string(lora) + " on " + model);
    Json p = reference_params(model);
    p["prompt"] = std::string(kPrompt) + " <lora:" + lora + ":1>";
    p["steps"] = 1;
    const Json record = run(*c, p);
    ASSERT_EQ(record.at("state"), "failed") << record.dump(2);
    const std::string message = record.at("error").at("message");
    EXPECT_NE(message.find(std::string("made for ") + made_for), std::string::npos) << message;
    EXPECT_NE(message.find(std::string("the loaded model is ") + loaded), std::string::npos) << message;
  }
}

TEST_F(Sdxl, AShortLoraTrainingWritesKohyasSdxlFileAndItsEpochFileReproducesItsSample) {
  auto c = daemon_->client();
  const fs::path data = daemon_->root() / "data";
  fs::create_directories(data / "2_xlprod");
  for (int i = 0; i < 3; ++i) {
    cv::Mat img(64 + 16 * i, 64, CV_8UC3, cv::Scalar(240, 240, 240));  // sizes differ: per-image size conditioning
    cv::circle(img, {32, 30 + 8 * i}, 14 + i, cv::Scalar(40, 60, 200), cv::FILLED);
    cv::imwrite((data / "2_xlprod" / ("img" + std::to_string(i) + ".png")).string(), img);
    std::ofstream(data / "2_xlprod" / ("img" + std::to_string(i) + ".txt")) << "xlprod, ball";
  }
  const std::vector<std::string> set = {"max_train_epochs=2", "resolution=64", "min_bucket_reso=64",
                                        "max_bucket_reso=128", "train_batch_size=1", "learning_rate=2e-3",
                                        "seed=11", "save_precision=float", "sample_every_n_epochs=1",
                                        "sample_prompts=xlprod, ball --w 64 --h 64 --d 5 --s 4"};
  const Json record = wait_for_end(
      *c, c->call(protocol::method::kTrain,
                  {{"base", "xl"}, {"data", data.string()}, {"name", "xlprod"}, {"preset", "product"}, {"set", set}})
              .at("id"));
  ASSERT_EQ(record.at("state"), "done") << record.dump(2);
  const fs::path folder = record.at("result").at("folder").get<std::string>();

  // kohya sdxl_train_network: U-Net only by default, SGM module names, SDXL metadata.
  std::ifstream in(folder / "xlprod-000001.safetensors", std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  std::string text(n, '\0');
  in.read(text.data(), static_cast<std::streamsize>(n));
  const Json header = Json::parse(text);
  const Json& m = header.at("__metadata__");
  EXPECT_EQ(m.at("ss_base_model_version"), "sdxl_base_v1-0");
  EXPECT_EQ(m.at("modelspec.architecture"), "stable-diffusion-xl-v1-base/lora");
  EXPECT_EQ(m.at("modelspec.implementation"), "https://github.com/Stability-AI/generative-models");
  EXPECT_EQ(m.at("ss_gradient_checkpointing"), "True") << "on by default for SDXL";
  EXPECT_EQ(m.at("ss_clip_skip"), "None");
  EXPECT_TRUE(header.contains("lora_unet_input_blocks_4_1_transformer_blocks_1_attn2_to_k.lora_down.weight"));
  EXPECT_TRUE(header.contains("lora_unet_output_blocks_3_1_proj_out.lora_up.weight"));
  int te_keys = 0, unet_modules = 0;
  for (const auto& [key, value] : header.items()) {
    te_keys += key.rfind("lora_te", 0) == 0;
    unet_modules += key.rfind("lora_unet_", 0) == 0 && key.find(".lora_down.weight") != std::string::npos;
  }
  EXPECT_EQ(te_keys, 0) << "kohya's SDXL guides train the U-Net only";
  EXPECT_EQ(unet_modules, 182);

  // The sample drawn after epoch 1, and a generation with the epoch-1 file at strength 1.
  std::string sample;
  for (const Json& s : record.at("result").at("samples"))
    if (s.get<std::string>().find("_e000001_") != std::string::npos) sample = s;
  ASSERT_FALSE(sample.empty()) << record.at("result").dump(2);
  const Json gen = run(*c, {{"model", "xl"}, {"prompt", "xlprod, ball <lora:xlprod-000001:1>"}, {"width", 64}, {"height", 64},
                            {"seed", 5}, {"steps", 4}, {"cfg", 7.5}, {"sampler", "Euler a"}});
  ASSERT_EQ(gen.at("state"), "done") << gen.dump(2);
  EXPECT_EQ(gen.at("result").at("loras").at(0).at("unmatched_keys"), 0);
  EXPECT_LE(max_level_difference(studio::read_png(sample), png_of(gen)), 1)
      << "the epoch file must reproduce the image the training sampled with it";
  const Json plain = run(*c, {{"model", "xl"}, {"prompt", "xlprod, ball"}, {"width", 64}, {"height", 64},
                              {"seed", 5}, {"steps", 4}, {"cfg", 7.5}, {"sampler", "Euler a"}});
  EXPECT_NE(png_of(plain).pixels, png_of(gen).pixels) << "the LoRA must change the image";
}
