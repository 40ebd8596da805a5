// Generation through a real daemon with the tiny reference model: the registry, the generate job,
// pixels compared with the reference stack's PNGs, infotext, and bad models and parameters.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "daemon_process.h"
#include "protocol/methods.h"
#include "studio/infotext.h"
#include "studio/png.h"

using namespace kiln;
using namespace kiln::test;
using Json = nlohmann::json;
using protocol::ErrorCode;
namespace fs = std::filesystem;

namespace {

const fs::path kTiny = fs::path(KILN_TEST_FIXTURES_DIR) / "sd15-tiny";
const char* kPrompt = "a cozy cabin in a snowy forest, warm light in the windows";
const char* kNegative = "blurry, low quality";

class Generate : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    daemon_ = new DaemonProcess({}, "gen");
    auto c = daemon_->client();
    c->call(protocol::method::kModelsAdd, {{"path", (kTiny / "model.safetensors").string()}, {"name", "tiny"}});
    c->call(protocol::method::kModelsAdd, {{"path", (kTiny / "diffusers").string()}, {"name", "tiny-diffusers"}});
  }
  static void TearDownTestSuite() {
    delete daemon_;
    daemon_ = nullptr;
  }

  // Runs a generate job to its end and returns the final record.
  static Json run(Client& client, const Json& params) {
    const std::string id = client.call(protocol::method::kGenerate, params).at("id");
    Json record;
    EXPECT_TRUE(eventually([&] {
      record = client.call(protocol::method::kJobsGet, {{"id", id}});
      const std::string s = record.at("state");
      return s == "done" || s == "failed" || s == "cancelled";
    }, std::chrono::seconds(120)));
    return record;
  }

  static Json base_params(const std::string& model, const std::string& sampler, int64_t seed) {
    return {{"model", model}, {"prompt", kPrompt}, {"negative", kNegative}, {"sampler", sampler}, {"steps", 8},
            {"cfg", 7},       {"seed", seed},      {"width", 64},         {"height", 64}};
  }

  // Largest per-channel difference between an RGB8 result and a reference PNG.
  static int max_level_difference(const studio::PngImage& a, const studio::PngImage& b) {
    EXPECT_EQ(a.width, b.width);
    EXPECT_EQ(a.height, b.height);
    EXPECT_EQ(a.channels, b.channels);
    if (a.pixels.size() != b.pixels.size()) return 255;
    int worst = 0;
    for (std::size_t i = 0; i < a.pixels.size(); ++i) worst = std::max(worst, std::abs(int(a.pixels[i]) - int(b.pixels[i])));
    return worst;
  }

  static DaemonProcess* daemon_;
};
DaemonProcess* Generate::daemon_ = nullptr;

}  // namespace

TEST_F(Generate, RegistryAddsListsAndRefusesWhatItCannotUse) {
  auto c = daemon_->client();
  const Json models = c->call(protocol::method::kModelsList).at("models");
  ASSERT_EQ(models.size(), 2u);
  EXPECT_EQ(models[0].at("layout"), "single-file");
  EXPECT_EQ(models[1].at("layout"), "diffusers");

  auto expect_code = [&](const Json& params, ErrorCode code, const std::string& words) {
    try {
      c->call(protocol::method::kModelsAdd, params);
      ADD_FAILURE() << "models.add accepted " << params.dump();
    } catch (const RpcError& e) {
      EXPECT_EQ(e.code(), code) << e.what();
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  };
  expect_code({{"path", (kTiny / "model.safetensors").string()}, {"name", "again"}}, ErrorCode::AlreadyExists, "already registered");
  expect_code({{"path", (kTiny / "diffusers").string()}, {"name", "tiny"}}, ErrorCode::AlreadyExists, "tiny");
  expect_code({{"path", "/no/such/model.safetensors"}}, ErrorCode::NotFound, "/no/such/model.safetensors");
  expect_code({{"path", "relative/model.safetensors"}}, ErrorCode::InvalidParams, "absolute");
  expect_code({{"path", (kTiny / "lora_rank4.safetensors").string()}}, ErrorCode::ModelError, "LoRA");
  expect_code({{"path", (kTiny / "model.safetensors").string()}, {"name", "../escape"}}, ErrorCode::InvalidName, "name");

  const fs::path pickle = daemon_->root() / "old.ckpt";
  std::ofstream(pickle) << "PK\x03\x04 not really a zip";
  expect_code({{"path", pickle.string()}}, ErrorCode::Unsupported, "safetensors");
  EXPECT_EQ(c->call(protocol::method::kModelsList).at("models").size(), 2u) << "nothing was added by the refusals";
}

TEST_F(Generate, TxtToImgMatchesTheReferenceImageAndWritesInfotext) {
  auto c = daemon_->client();
  const Json record = run(*c, base_params("tiny", "Euler", 2034));
  ASSERT_EQ(record.at("state"), "done") << record.dump();
  const Json& image = record.at("result").at("images").at(0);
  EXPECT_EQ(image.at("seed"), 2034);
  const studio::PngImage png = studio::read_png(image.at("png").get<std::string>());
  const studio::PngImage ref = studio::read_png(kTiny / "ref_txt2img_euler.png");
  EXPECT_LE(max_level_difference(png, ref), 1) << "the reference allows 1 level of rounding";

  const std::string* parameters = png.find_text("parameters");
  ASSERT_NE(parameters, nullptr);
  const studio::Infotext info = studio::parse_infotext(*parameters);
  EXPECT_EQ(info.prompt, kPrompt);
  EXPECT_EQ(info.negative_prompt, kNegative);
  EXPECT_EQ(*info.find("Steps"), "8");
  EXPECT_EQ(*info.find("Sampler"), "Euler");
  EXPECT_EQ(*info.find("CFG scale"), "7");
  EXPECT_EQ(*info.find("Seed"), "2034");
  EXPECT_EQ(*info.find("Size"), "64x64");
  EXPECT_EQ(*info.find("Model"), "tiny");
  ASSERT_NE(info.find("Model hash"), nullptr);
  EXPECT_EQ(info.find("Model hash")->size(), 10u);

  // The shared-memory copy of the result holds the same pixels.
  const ipc::ShmImage shm = ipc::ShmImage::open(protocol::image_ref_from_json(image.at("image")));
  ASSERT_EQ(shm.data_size(), png.pixels.size());
  EXPECT_EQ(std::memcmp(shm.data(), png.pixels.data(), png.pixels.size()), 0);
}

TEST_F(Generate, DiffusersLayoutWithDpmKarrasMatchesTheReference) {
  auto c = daemon_->client();
  const Json record = run(*c, base_params("tiny-diffusers", "DPM++ 2M Karras", 2034));
  ASSERT_EQ(record.at("state"), "done") << record.dump();
  const studio::PngImage png = studio::read_png(record.at("result").at("images").at(0).at("png").get<std::string>());
  EXPECT_LE(max_level_difference(png, studio::read_png(kTiny / "ref_txt2img_dpmpp_2m_karras.png")), 1);
}

TEST_F(Generate, ImgToImgFromSharedMemoryMatchesTheReference) {
  auto c = daemon_->client();
  const studio::PngImage init = studio::read_png(kTiny / "ref_init_image.png");
  protocol::ImageDesc d;
  d.width = static_cast<uint32_t>(init.width);
  d.height = static_cast<uint32_t>(init.height);
  d.channels = static_cast<uint32_t>(init.channels);
  Json params = base_params("tiny", "Euler", 2044);
  params.erase("width");
  params.erase("height");
  params["strength"] = 0.5;
  Json record;
  {
    ipc::ShmImage block = c->create_image(d);
    std::memcpy(block.data(), init.pixels.data(), init.pixels.size());
    params["init_image"] = protocol::to_json(block.ref());
    const std::string id = c->call(protocol::method::kGenerate, params).at("id");
    // The block may go as soon as the job is queued: the daemon copied the pixels.
    block.remove();
    ASSERT_TRUE(eventually([&] {
      record = c->call(protocol::method::kJobsGet, {{"id", id}});
      return record.at("state") == "done" || record.at("state") == "failed";
    }, std::chrono::seconds(60)));
  }
  ASSERT_EQ(record.at("state"), "done") << record.dump();
  const studio::PngImage png = studio::read_png(record.at("result").at("images").at(0).at("png").get<std::string>());
  EXPECT_LE(max_level_difference(png, studio::read_png(kTiny / "ref_img2img_euler.png")), 1);
  const studio::Infotext info = studio::parse_infotext(*png.find_text("parameters"));
  EXPECT_EQ(*info.find("Denoising strength"), "0.5");
}

TEST_F(Generate, SameSeedTwiceGivesIdenticalPixelsAndRandomSeedsAreReported) {
  auto c = daemon_->client();
  const Json a = run(*c, base_params("tiny", "Euler a", 77));
  const Json b = run(*c, base_params("tiny", "Euler a", 77));
  const auto pa = studio::read_png(a.at("result").at("images").at(0).at("png").get<std::string>());
  const auto pb = studio::read_png(b.at("result").at("images").at(0).at("png").get<std::string>());
  EXPECT_EQ(pa.pixels, pb.pixels);
  const Json r = run(*c, base_params("tiny", "Euler a", -1));
  EXPECT_GE(r.at("result").at("seed").get<int64_t>(), 0);
}

TEST_F(Generate, BadParametersAreRefusedBeforeQueuing) {
  auto c = daemon_->client();
  auto expect_invalid = [&](Json params, const std::string& words) {
    try {
      c->call(protocol::method::kGenerate, params);
      ADD_FAILURE() << "accepted " << params.dump();
    } catch (const RpcError& e) {
      EXPECT_EQ(e.code(), ErrorCode::InvalidParams) << e.what();
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  };
  Json p = base_params("tiny", "Euler", 1);
  p["width"] = 65;
  expect_invalid(p, "multiples of 8");
  p = base_params("tiny", "Heun++", 1);
  expect_invalid(p, "DPM++ 2M Karras");
  p = base_params("tiny", "Euler", 1);
  p["steps"] = 0;
  expect_invalid(p, "steps");
  try {
    c->call(protocol::method::kGenerate, base_params("no-such-model", "Euler", 1));
    ADD_FAILURE();
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), ErrorCode::NotFound);
    EXPECT_NE(std::string(e.what()).find("tiny"), std::string::npos) << "lists the registered names: " << e.what();
  }
}

TEST_F(Generate, ACorruptModelFailsTheJobClearlyAndTheDaemonServesOn) {
  const fs::path broken = daemon_->root() / "truncated.safetensors";
  {
    std::ifstream in(kTiny / "model.safetensors", std::ios::binary);
    std::string bytes(1 << 20, '\0');
    in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    std::ofstream(broken, std::ios::binary) << bytes;
  }
  auto c = daemon_->client();
  const Json record = run(*c, base_params(broken.string(), "Euler", 1));
  ASSERT_EQ(record.at("state"), "failed");
  EXPECT_EQ(record.at("error").at("code"), int(ErrorCode::ModelError));
  EXPECT_NE(record.at("error").at("message").get<std::string>().find("truncated"), std::string::npos);
  EXPECT_EQ(run(*c, base_params("tiny", "Euler", 1)).at("state"), "done");
}

TEST_F(Generate, CancellingStopsBetweenSteps) {
  auto c = daemon_->client();
  Json params = base_params("tiny", "Euler", 1);
  params["steps"] = 400;
  const std::string id = c->call(protocol::method::kGenerate, params).at("id");
  ASSERT_TRUE(eventually([&] { return c->call(protocol::method::kJobsGet, {{"id", id}}).at("progress").at("step") >= 2; },
                         std::chrono::seconds(60)));
  c->call(protocol::method::kJobsCancel, {{"id", id}});
  Json record;
  ASSERT_TRUE(eventually([&] {
    record = c->call(protocol::method::kJobsGet, {{"id", id}});
    return record.at("state") == "cancelled";
  }));
  EXPECT_LT(record.at("progress").at("step").get<int>(), 400);
}

TEST_F(Generate, LorasFromTagsAndParametersMatchKohyasReference) {
  auto c = daemon_->client();
  c->call(protocol::method::kLorasAdd, {{"path", (kTiny / "lora_rank4.safetensors").string()}, {"name", "rank4"}});
  c->call(protocol::method::kLorasAdd, {{"path", (kTiny / "lora_locon.safetensors").string()}, {"name", "locon"}});
  const Json listed = c->call(protocol::method::kLorasList).at("loras");
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].at("name"), "locon");
  EXPECT_TRUE(listed[0].at("info").at("has_conv").get<bool>());

  struct Case {
    std::string tag;
    Json loras;
    const char* reference;
  };
  const std::vector<Case> cases = {
      {" <lora:rank4:1>", Json::array(), "ref_lora_lora_rank4_m1_euler.png"},
      {" <lora:rank4:0.7>", Json::array(), "ref_lora_lora_rank4_m0p7_euler.png"},
      {"", Json::array({{{"name", "locon"}, {"weight", 1.0}}}), "ref_lora_lora_locon_m1_euler.png"},
  };
  for (const Case& k : cases) {
    Json params = base_params("tiny", "Euler", 2034);
    params["prompt"] = std::string(kPrompt) + k.tag;
    if (!k.loras.empty()) params["loras"] = k.loras;
    const Json record = run(*c, params);
    ASSERT_EQ(record.at("state"), "done") << record.dump();
    const Json& applied = record.at("result").at("loras");
    ASSERT_EQ(applied.size(), 1u);
    EXPECT_EQ(applied[0].at("unmatched_keys"), 0);
    EXPECT_GT(applied[0].at("unet_modules").get<int>(), 0);
    const auto png = studio::read_png(record.at("result").at("images").at(0).at("png").get<std::string>());
    EXPECT_LE(max_level_difference(png, studio::read_png(kTiny / k.reference)), 1) << k.reference;
  }
  // Back to the base model: the LoRA is taken off again, bit for bit.
  const Json base = run(*c, base_params("tiny", "Euler", 2034));
  const auto png = studio::read_png(base.at("result").at("images").at(0).at("png").get<std::string>());
  EXPECT_LE(max_level_difference(png, studio::read_png(kTiny / "ref_txt2img_euler.png")), 1);

  Json missing = base_params("tiny", "Euler", 1);
  missing["prompt"] = "a cabin <lora:no-such-lora:0.5>";
  const Json failed = run(*c, missing);
  EXPECT_EQ(failed.at("state"), "failed");
  EXPECT_NE(failed.at("error").at("message").get<std::string>().find("no-such-lora"), std::string::npos);
  EXPECT_THROW(c->call(protocol::method::kLorasAdd, {{"path", (kTiny / "model.safetensors").string()}}), RpcError);
}

TEST_F(Generate, TilingMakesASeamlessImageAndSaysSoInTheInfotext) {
  auto c = daemon_->client();
  Json p = base_params("tiny", "Euler", 12);
  p["width"] = 128;
  p["tiling"] = true;
  const Json record = run(*c, p);
  ASSERT_EQ(record.at("state"), "done") << record.dump();
  const studio::PngImage png = studio::read_png(record.at("result").at("images").at(0).at("png").get<std::string>());
  EXPECT_EQ(*studio::parse_infotext(*png.find_text("parameters")).find("Tiling"), "True");
  // The last column continues into the first like any two neighbouring columns.
  auto column_step = [&](int a, int b) {
    double sum = 0;
    for (int y = 0; y < png.height; ++y)
      for (int ch = 0; ch < 3; ++ch)
        sum += std::abs(int(png.pixels[(y * png.width + a) * 3 + ch]) - int(png.pixels[(y * png.width + b) * 3 + ch]));
    return sum / (png.height * 3);
  };
  double inside = 0;
  for (int x = 0; x + 1 < png.width; ++x) inside += column_step(x, x + 1);
  inside /= png.width - 1;
  EXPECT_LE(column_step(png.width - 1, 0), 1.5 * inside);
  // Without tiling the same request gives another image.
  p["tiling"] = false;
  const studio::PngImage plain =
      studio::read_png(run(*c, p).at("result").at("images").at(0).at("png").get<std::string>());
  EXPECT_NE(plain.pixels, png.pixels);
  EXPECT_EQ(studio::parse_infotext(*plain.find_text("parameters")).find("Tiling"), nullptr);
}
