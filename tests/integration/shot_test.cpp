// Product shots and inpainting checkpoints through a real daemon with the tiny models: the `shot`
// job's exactness rule, placements, variations, harmonizing, cancel and bad input; `generate` with
// an inpainting checkpoint against the reference stack's images; `kiln shot`.
#include <filesystem>

#include <gtest/gtest.h>
#include <opencv2/imgproc.hpp>

#include "daemon_process.h"
#include "protocol/methods.h"
#include "studio/image.h"
#include "studio/infotext.h"
#include "studio/png.h"
#include "studio/shot/compose.h"
#include "studio/shot/placement.h"

using namespace kiln;
using namespace kiln::test;
using Json = nlohmann::json;
using protocol::ErrorCode;
namespace fs = std::filesystem;

namespace {

const fs::path kTiny = fs::path(KILN_TEST_FIXTURES_DIR) / "sd15-tiny";
const fs::path kInpaint = fs::path(KILN_TEST_FIXTURES_DIR) / "sd15-inpaint-tiny";
const char* kScene = "a bottle on a marble counter, morning light";

// A product cut-out, BGRA: per-pixel colours (a shifted or resampled pixel shows), transparent
// around it; `soft` gives an anti-aliased outline and a hole through it.
cv::Mat make_product(int w, int h, bool soft, uint64_t seed) {
  cv::Mat bgra(h, w, CV_8UC4);
  cv::RNG rng(seed);
  rng.fill(bgra, cv::RNG::UNIFORM, 0, 256);
  cv::Mat alpha(h, w, CV_8UC1, cv::Scalar(0));
  if (soft) {
    cv::ellipse(alpha, {w / 2, h / 2}, {w / 2 - 3, h / 2 - 3}, 0, 0, 360, 255, cv::FILLED, cv::LINE_AA);
    cv::circle(alpha, {w / 2, h / 3}, std::max(2, w / 8), 0, cv::FILLED, cv::LINE_AA);
  } else {
    cv::rectangle(alpha, {2, 3}, {w - 4, h - 2}, 255, cv::FILLED);
  }
  cv::insertChannel(alpha, bgra, 3);
  return bgra;
}

cv::Mat bgr_of(const studio::PngImage& png) {
  cv::Mat rgb(png.height, png.width, CV_8UC3, const_cast<uint8_t*>(png.pixels.data())), bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  return bgr;
}

struct RuleCheck {
  int opaque = 0, soft = 0, clear = 0, wrong_opaque = 0, wrong_soft = 0, wrong_clear = 0;
};

// Checks the composite against the placed product and the scene pixel by pixel.
RuleCheck check_rule(const cv::Mat& composite, const cv::Mat& scene, const studio::shot::ProductLayer& layer) {
  RuleCheck r;
  for (int y = 0; y < composite.rows; ++y)
    for (int x = 0; x < composite.cols; ++x) {
      const cv::Vec4b p = layer.bgra.at<cv::Vec4b>(y, x);
      const cv::Vec3b o = composite.at<cv::Vec3b>(y, x), s = scene.at<cv::Vec3b>(y, x);
      if (p[3] == 255) {
        ++r.opaque;
        r.wrong_opaque += o != cv::Vec3b(p[0], p[1], p[2]);
      } else if (p[3] == 0) {
        ++r.clear;
        r.wrong_clear += o != s;
      } else {
        ++r.soft;
        for (int c = 0; c < 3; ++c)
          if (std::abs(o[c] - (p[c] * p[3] + s[c] * (255 - p[3])) / 255.0) > 1.0) {
            ++r.wrong_soft;
            break;
          }
      }
    }
  return r;
}

class Shot : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    daemon_ = new DaemonProcess({}, "shot");
    auto c = daemon_->client();
    c->call(protocol::method::kModelsAdd, {{"path", (kTiny / "model.safetensors").string()}, {"name", "tiny"}});
    c->call(protocol::method::kModelsAdd, {{"path", (kInpaint / "model.safetensors").string()}, {"name", "tiny-inpaint"}});
    c->call(protocol::method::kModelsAdd, {{"path", (kInpaint / "diffusers").string()}, {"name", "tiny-inpaint-diffusers"}});
  }
  static void TearDownTestSuite() {
    delete daemon_;
    daemon_ = nullptr;
  }

  static Json wait(Client& c, const std::string& id) {
    Json record;
    EXPECT_TRUE(eventually([&] {
      record = c.call(protocol::method::kJobsGet, {{"id", id}});
      const std::string s = record.at("state");
      return s == "done" || s == "failed" || s == "cancelled";
    }, std::chrono::seconds(180)));
    return record;
  }

  // Sends the product through a shared-memory block (RGBA) and runs the shot to its end.
  static Json shot(Client& c, const cv::Mat& product_bgra, Json params) {
    cv::Mat rgba;
    cv::cvtColor(product_bgra, rgba, cv::COLOR_BGRA2RGBA);
    protocol::ImageDesc d;
    d.width = static_cast<uint32_t>(rgba.cols);
    d.height = static_cast<uint32_t>(rgba.rows);
    d.channels = 4;
    ipc::ShmImage block = c.create_image(d);
    for (int y = 0; y < rgba.rows; ++y) std::memcpy(block.row(y), rgba.ptr(y), std::size_t(rgba.cols) * 4);
    params["product"] = protocol::to_json(block.ref());
    const std::string id = c.call(protocol::method::kShot, params).at("id");
    block.remove();  // the daemon copied the pixels when it queued the job
    return wait(c, id);
  }

  static Json base(const std::string& model = "tiny") {
    return {{"model", model}, {"prompt", kScene}, {"negative", "blurry"}, {"sampler", "Euler"}, {"steps", 3},
            {"cfg", 7},       {"seed", 5},        {"width", 96},         {"height", 72},       {"edge", 3}};
  }

  // The composite and scene PNGs of variation k, and the exactness rule checked on them.
  static RuleCheck expect_rule(const Json& record, const cv::Mat& product, std::size_t k = 0) {
    const Json& r = record.at("result");
    const Json& at = r.at("placement");
    const studio::shot::Placement placement{at.at("x"), at.at("y"), at.at("scale"), at.at("width"), at.at("height")};
    const Json& image = r.at("images").at(k);
    const cv::Mat composite = bgr_of(studio::read_png(image.at("png").get<std::string>()));
    const cv::Mat scene = bgr_of(studio::read_png(image.at("scene_png").get<std::string>()));
    const auto layer = studio::shot::place_product(product, placement, composite.size());
    const RuleCheck c = check_rule(composite, scene, layer);
    EXPECT_GT(c.opaque, 0);
    EXPECT_EQ(c.wrong_opaque, 0) << "every opaque product pixel comes back byte for byte";
    EXPECT_EQ(c.wrong_clear, 0) << "outside the product the composite is the scene";
    EXPECT_EQ(c.wrong_soft, 0) << "soft edges are the product over the scene with its alpha";
    return c;
  }

  static DaemonProcess* daemon_;
};
DaemonProcess* Shot::daemon_ = nullptr;

}  // namespace

TEST_F(Shot, OpaqueProductPixelsComeBackExactlyAtEveryPlacement) {
  auto c = daemon_->client();
  struct Case {
    cv::Mat product;
    Json placement;
  };
  const std::vector<Case> cases = {
      {make_product(37, 29, false, 1), {{"x", 11}, {"y", 7}}},                  // hard edges, odd size, 1:1
      {make_product(41, 53, true, 2), {{"x", 50}, {"y", 10}, {"scale", 1}}},    // soft edges and a hole
      {make_product(41, 53, true, 3), {{"x", -2}, {"y", -2}}},                  // the transparent margin hangs out
      {make_product(30, 30, true, 4), {{"x", 20}, {"y", 12}, {"scale", 1.5}}},  // enlarged
      {make_product(200, 160, true, 5), Json::object()},                          // automatic: shrunk to fill half
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE("case " + std::to_string(i));
    Json p = base();
    p.update(cases[i].placement);
    const Json record = shot(*c, cases[i].product, p);
    ASSERT_EQ(record.at("state"), "done") << record.dump();
    const Json& at = record.at("result").at("placement");
    if (cases[i].placement.contains("x")) {
      EXPECT_EQ(at.at("x"), cases[i].placement.at("x"));
      EXPECT_EQ(at.at("y"), cases[i].placement.at("y"));
      EXPECT_DOUBLE_EQ(at.at("scale").get<double>(), cases[i].placement.value("scale", 1.0));
    } else {
      // Auto: the visible product spans half the height (the binding side), centred, on the ground line.
      EXPECT_NEAR(at.at("scale").get<double>(), 0.5 * 72 / 154.0, 0.01) << at.dump();
    }
    const RuleCheck r = expect_rule(record, cases[i].product);
    if (i == 1) EXPECT_GT(r.soft, 20) << "the soft product has anti-aliased pixels";
  }
}

TEST_F(Shot, TheSceneIsPaintedAroundTheProductAndThePngCarriesTheShot) {
  auto c = daemon_->client();
  const cv::Mat product = make_product(30, 40, true, 7);
  const Json record = shot(*c, product, [] {
    Json p = base();
    p["x"] = 33;
    p["y"] = 20;
    return p;
  }());
  ASSERT_EQ(record.at("state"), "done") << record.dump();
  const Json& image = record.at("result").at("images").at(0);
  const studio::PngImage scene_png = studio::read_png(image.at("scene_png").get<std::string>());
  int grey = 0;
  for (std::size_t i = 0; i + 2 < scene_png.pixels.size(); i += 3)
    grey += scene_png.pixels[i] == 127 && scene_png.pixels[i + 1] == 127 && scene_png.pixels[i + 2] == 127;
  EXPECT_LT(grey, 96 * 72 / 20) << "the scene is not the grey the model started from";

  const studio::PngImage png = studio::read_png(image.at("png").get<std::string>());
  const std::string* text = png.find_text("parameters");
  ASSERT_NE(text, nullptr);
  const studio::Infotext info = studio::parse_infotext(*text);
  EXPECT_EQ(info.prompt, kScene);
  EXPECT_EQ(*info.find("Seed"), "5");
  EXPECT_EQ(*info.find("Size"), "96x72");
  EXPECT_EQ(*info.find("Shot placement"), "33 20");
  EXPECT_EQ(*info.find("Shot scale"), "1");
  EXPECT_EQ(*info.find("Shot edge"), "3");
  EXPECT_EQ(*info.find("Denoising strength"), "1");
  EXPECT_EQ(record.at("result").at("masked_content"), "fill") << "an ordinary model paints from spread colours";
  EXPECT_FALSE(record.at("result").at("model").at("inpainting").get<bool>());
  // The shared-memory results hold the same pixels as the PNGs.
  const ipc::ShmImage shm = ipc::ShmImage::open(protocol::image_ref_from_json(image.at("image")));
  ASSERT_EQ(shm.data_size(), png.pixels.size());
  EXPECT_EQ(std::memcmp(shm.data(), png.pixels.data(), png.pixels.size()), 0);
}

TEST_F(Shot, VariationsUseSeedPlusKAndReproduce) {
  auto c = daemon_->client();
  const cv::Mat product = make_product(25, 33, false, 9);
  Json p = base();
  p["x"] = 30;
  p["y"] = 30;
  p["count"] = 3;
  p["seed"] = 40;
  const Json three = shot(*c, product, p);
  ASSERT_EQ(three.at("state"), "done") << three.dump();
  const Json& images = three.at("result").at("images");
  ASSERT_EQ(images.size(), 3u);
  std::vector<std::vector<uint8_t>> pixels;
  for (std::size_t k = 0; k < 3; ++k) {
    EXPECT_EQ(images[k].at("seed"), 40 + int(k));
    pixels.push_back(studio::read_png(images[k].at("png").get<std::string>()).pixels);
    expect_rule(three, product, k);
  }
  EXPECT_NE(pixels[0], pixels[1]);
  EXPECT_NE(pixels[1], pixels[2]);
  p["count"] = 1;
  p["seed"] = 41;
  const Json one = shot(*c, product, p);
  EXPECT_EQ(studio::read_png(one.at("result").at("images").at(0).at("png").get<std::string>()).pixels, pixels[1]);
}

TEST_F(Shot, InpaintingCheckpointAndHarmonizeKeepTheRule) {
  auto c = daemon_->client();
  const cv::Mat product = make_product(40, 44, true, 11);
  Json p = base("tiny-inpaint");
  p["x"] = 28;
  p["y"] = 14;
  const Json plain = shot(*c, product, p);
  ASSERT_EQ(plain.at("state"), "done") << plain.dump();
  EXPECT_TRUE(plain.at("result").at("model").at("inpainting").get<bool>());
  EXPECT_EQ(plain.at("result").at("masked_content"), "original");
  expect_rule(plain, product);

  // Harmonized: the interior (opaque pixels 3 px inside the edge) is still exact; the scene changed.
  p["harmonize"] = 0.3;
  const Json harmonized = shot(*c, product, p);
  ASSERT_EQ(harmonized.at("state"), "done") << harmonized.dump();
  const Json& image = harmonized.at("result").at("images").at(0);
  const cv::Mat composite = bgr_of(studio::read_png(image.at("png").get<std::string>()));
  const auto layer = studio::shot::place_product(product, studio::shot::explicit_placement(product.size(), 28, 14, 1), {96, 72});
  const cv::Mat interior = studio::shot::interior_mask(layer.alpha, 3);
  int checked = 0;
  for (int y = 0; y < 72; ++y)
    for (int x = 0; x < 96; ++x)
      if (interior.at<uint8_t>(y, x)) {
        ++checked;
        const cv::Vec4b q = layer.bgra.at<cv::Vec4b>(y, x);
        ASSERT_EQ(composite.at<cv::Vec3b>(y, x), cv::Vec3b(q[0], q[1], q[2])) << x << "," << y;
      }
  EXPECT_GT(checked, 300);
  EXPECT_NE(studio::read_png(image.at("scene_png").get<std::string>()).pixels,
            studio::read_png(plain.at("result").at("images").at(0).at("scene_png").get<std::string>()).pixels);
  EXPECT_EQ(*studio::parse_infotext(*studio::read_png(image.at("png").get<std::string>()).find_text("parameters"))
                 .find("Shot harmonize"),
            "0.3");
}

TEST_F(Shot, ProductFromAFilePath) {
  auto c = daemon_->client();
  const cv::Mat product = make_product(31, 27, true, 13);
  const fs::path file = daemon_->root() / "product.png";
  studio::write_png(file, product);
  Json p = base();
  p["product_path"] = file.string();
  p["x"] = 9;
  p["y"] = 21;
  const Json record = wait(*c, c->call(protocol::method::kShot, p).at("id"));
  ASSERT_EQ(record.at("state"), "done") << record.dump();
  expect_rule(record, product);
}

TEST_F(Shot, CancellingStopsTheShot) {
  auto c = daemon_->client();
  cv::Mat rgba;
  cv::cvtColor(make_product(20, 20, false, 15), rgba, cv::COLOR_BGRA2RGBA);
  protocol::ImageDesc d;
  d.width = d.height = 20;
  d.channels = 4;
  ipc::ShmImage block = c->create_image(d);
  for (int y = 0; y < 20; ++y) std::memcpy(block.row(y), rgba.ptr(y), 80);
  Json p = base();
  p["product"] = protocol::to_json(block.ref());
  p["steps"] = 400;
  const std::string id = c->call(protocol::method::kShot, p).at("id");
  ASSERT_TRUE(eventually([&] { return c->call(protocol::method::kJobsGet, {{"id", id}}).at("progress").at("step") >= 2; },
                         std::chrono::seconds(60)));
  c->call(protocol::method::kJobsCancel, {{"id", id}});
  const Json record = wait(*c, id);
  EXPECT_EQ(record.at("state"), "cancelled");
  EXPECT_LT(record.at("progress").at("step").get<int>(), 400);
}

TEST_F(Shot, BadInputIsRefusedBeforeAnythingIsQueued) {
  auto c = daemon_->client();
  const auto jobs_before = c->call(protocol::method::kJobsList).at("jobs").size();
  auto expect_refused = [&](const cv::Mat& product, Json p, ErrorCode code, const std::string& words,
                            bool send_block = true) {
    SCOPED_TRACE(words);
    protocol::ImageDesc d;
    d.width = static_cast<uint32_t>(product.cols);
    d.height = static_cast<uint32_t>(product.rows);
    d.channels = static_cast<uint32_t>(product.channels());
    ipc::ShmImage block = c->create_image(d);
    for (int y = 0; y < product.rows; ++y) std::memcpy(block.row(y), product.ptr(y), product.step[0]);
    if (send_block) p["product"] = protocol::to_json(block.ref());
    try {
      c->call(protocol::method::kShot, p);
      ADD_FAILURE() << "accepted " << p.dump();
    } catch (const RpcError& e) {
      EXPECT_EQ(e.code(), code) << e.what();
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  };
  const cv::Mat good = make_product(30, 30, true, 17);
  cv::Mat rgb(30, 30, CV_8UC3, cv::Scalar(10, 20, 30));
  expect_refused(rgb, base(), ErrorCode::InvalidParams, "no alpha channel");
  cv::Mat faint = good.clone();
  faint.forEach<cv::Vec4b>([](cv::Vec4b& px, const int*) { px[3] = px[3] / 2; });
  expect_refused(faint, base(), ErrorCode::InvalidParams, "no opaque pixel");
  cv::Mat clear(30, 30, CV_8UC4, cv::Scalar(1, 2, 3, 0));
  expect_refused(clear, base(), ErrorCode::InvalidParams, "no opaque pixel");
  Json p = base();
  p["x"] = 0;
  p["y"] = 0;
  p["scale"] = 4;
  expect_refused(good, p, ErrorCode::InvalidParams, "larger than the 96x72 frame");
  p = base();
  p["x"] = 80;
  p["y"] = 10;
  expect_refused(good, p, ErrorCode::InvalidParams, "outside the 96x72 frame");
  p = base();
  p["width"] = 100;
  expect_refused(good, p, ErrorCode::InvalidParams, "multiples of 8");
  p = base();
  p["x"] = 3;
  expect_refused(good, p, ErrorCode::InvalidParams, "both 'x' and 'y'");
  p = base();
  p["product_path"] = (daemon_->root() / "product.png").string();
  expect_refused(good, p, ErrorCode::InvalidParams, "one of them");
  p["product_path"] = "relative/product.png";
  expect_refused(good, p, ErrorCode::InvalidParams, "absolute", false);
  Json only_path = base();
  only_path["product_path"] = (daemon_->root() / "no-such.png").string();
  try {
    c->call(protocol::method::kShot, only_path);
    ADD_FAILURE();
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), ErrorCode::NotFound) << e.what();
    EXPECT_NE(std::string(e.what()).find("no-such.png"), std::string::npos) << e.what();
  }
  p = base();
  p["harmonize"] = 0.9;
  expect_refused(good, p, ErrorCode::InvalidParams, "harmonize");
  EXPECT_EQ(c->call(protocol::method::kJobsList).at("jobs").size(), jobs_before) << "nothing was queued";
}

// An inpainting checkpoint through `generate`, single file and diffusers folder: the reference
// stack's images for the same seed (A1111's rules, sd15-inpaint-tiny's README).
TEST_F(Shot, InpaintingCheckpointReproducesTheReferenceImages) {
  auto c = daemon_->client();
  const studio::PngImage init = studio::read_png(kInpaint / "ref_init_image.png");
  const studio::PngImage mask = studio::read_png(kInpaint / "ref_mask.png");
  auto block_of = [&](const studio::PngImage& png) {
    protocol::ImageDesc d;
    d.width = static_cast<uint32_t>(png.width);
    d.height = static_cast<uint32_t>(png.height);
    d.channels = static_cast<uint32_t>(png.channels);
    ipc::ShmImage block = c->create_image(d);
    std::memcpy(block.data(), png.pixels.data(), png.pixels.size());
    return block;
  };
  const Json base_params{{"prompt", "a red fox sitting in the snow, detailed fur"},
                         {"negative", "blurry, low quality"},
                         {"sampler", "Euler"},
                         {"steps", 10},
                         {"cfg", 7}};
  struct Case {
    std::string model, ref;
    int64_t seed;
    double strength;  // < 0: txt2img
    bool mask;
  };
  for (const Case& k : {Case{"tiny-inpaint", "ref_inpaint_s1_euler.png", 2154, 1.0, true},
                        Case{"tiny-inpaint-diffusers", "ref_inpaint_s0p75_euler.png", 2154, 0.75, true},
                        Case{"tiny-inpaint", "ref_img2img_euler.png", 2144, 0.5, false},
                        Case{"tiny-inpaint-diffusers", "ref_txt2img_euler.png", 2134, -1, false}}) {
    SCOPED_TRACE(k.ref + " with " + k.model);
    Json p = base_params;
    p["model"] = k.model;
    p["seed"] = k.seed;
    std::optional<ipc::ShmImage> init_block, mask_block;
    if (k.strength >= 0) {
      init_block = block_of(init);
      p["init_image"] = protocol::to_json(init_block->ref());
      p["strength"] = k.strength;
    } else {
      p["width"] = p["height"] = 64;
    }
    if (k.mask) {
      mask_block = block_of(mask);
      p["mask"] = protocol::to_json(mask_block->ref());
      p["mask_blur"] = 0;
    }
    const Json record = wait(*c, c->call(protocol::method::kGenerate, p).at("id"));
    ASSERT_EQ(record.at("state"), "done") << record.dump();
    const studio::PngImage got = studio::read_png(record.at("result").at("images").at(0).at("png").get<std::string>());
    const studio::PngImage ref = studio::read_png(kInpaint / k.ref);
    ASSERT_EQ(got.pixels.size(), ref.pixels.size());
    int worst = 0;
    for (std::size_t i = 0; i < got.pixels.size(); ++i) worst = std::max(worst, std::abs(int(got.pixels[i]) - int(ref.pixels[i])));
    EXPECT_LE(worst, 1) << "the reference allows 1 level of rounding";
  }
  const Json models = c->call(protocol::method::kModelsList).at("models");
  for (const Json& m : models) EXPECT_EQ(m.at("inpainting").get<bool>(), m.at("name").get<std::string>().find("inpaint") != std::string::npos);
}

TEST_F(Shot, CliWritesTheShotsTheScenesAndSaysWhereTheProductIs) {
  const cv::Mat product = make_product(27, 35, true, 19);
  const fs::path dir = daemon_->root() / "cli";
  fs::create_directories(dir);
  studio::write_png(dir / "bottle.png", product);
  const std::vector<std::pair<std::string, std::string>> env{{"KILN_SOCKET", daemon_->socket().string()}};
  auto [code, out] = run_command({kiln_cli_path(), "shot", "--product", (dir / "bottle.png").string(), "--prompt", kScene,
                                  "--model", "tiny", "--size", "96x72", "--at", "12,20", "--count", "2", "--steps", "2",
                                  "--seed", "3", "--out", (dir / "shot.png").string(), "--scene-out",
                                  (dir / "scene.png").string()},
                                 env);
  ASSERT_EQ(code, 0) << out;
  for (const char* name : {"shot-1.png", "shot-2.png", "scene-1.png", "scene-2.png"}) EXPECT_TRUE(fs::exists(dir / name)) << name;
  EXPECT_NE(out.find("the product is at x 12, y 20, scale 1"), std::string::npos) << out;
  EXPECT_NE(out.find("inpainting model"), std::string::npos) << "suggests an inpainting model: " << out;
  const cv::Mat composite = bgr_of(studio::read_png(dir / "shot-2.png"));
  const cv::Mat scene = bgr_of(studio::read_png(dir / "scene-2.png"));
  const auto layer = studio::shot::place_product(product, studio::shot::explicit_placement(product.size(), 12, 20, 1), {96, 72});
  const RuleCheck r = check_rule(composite, scene, layer);
  EXPECT_EQ(r.wrong_opaque + r.wrong_soft + r.wrong_clear, 0);

  // A product without alpha is refused with the reason and what to do.
  cv::Mat rgb(20, 20, CV_8UC3, cv::Scalar(9, 9, 9));
  studio::write_png(dir / "flat.png", rgb);
  auto [bad_code, bad_out] = run_command({kiln_cli_path(), "shot", "--product", (dir / "flat.png").string(), "--prompt", "x",
                                          "--model", "tiny", "--out", (dir / "x.png").string()},
                                         env);
  EXPECT_NE(bad_code, 0);
  EXPECT_FALSE(fs::exists(dir / "x.png"));
  auto [size_code, size_out] = run_command({kiln_cli_path(), "shot", "--product", (dir / "bottle.png").string(), "--prompt",
                                            "x", "--model", "tiny", "--size", "100x64", "--out", (dir / "y.png").string()},
                                           env);
  EXPECT_EQ(size_code, 2) << "a size that is not a multiple of 8 is a usage error";
}
