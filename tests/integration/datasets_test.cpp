// Datasets through a real daemon: datasets.* over the socket, images from shared memory and from
// paths, the import job's progress and cancel, findings, tag edits, the kohya folder on disk,
// auto-tagging with a tiny hand-built ONNX tagger, and `kiln dataset`.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "../unit/studio/synthetic.h"
#include "../unit/studio/tiny_tagger.h"
#include "daemon_process.h"
#include "protocol/image_ref.h"
#include "protocol/methods.h"
#include "studio/dataset/kohya_folder.h"
#include "studio/png.h"

using namespace kiln;
using namespace kiln::test;
using Json = nlohmann::json;
using protocol::ErrorCode;
namespace fs = std::filesystem;
namespace m = protocol::method;

namespace {

class Datasets : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { daemon_ = new DaemonProcess({}, "ds"); }
  static void TearDownTestSuite() {
    delete daemon_;
    daemon_ = nullptr;
  }

  static Json wait_job(Client& c, const std::string& id, std::chrono::seconds limit = std::chrono::seconds(120)) {
    Json record;
    EXPECT_TRUE(eventually([&] {
      record = c.call(m::kJobsGet, {{"id", id}});
      const std::string s = record.at("state");
      return s == "done" || s == "failed" || s == "cancelled";
    }, limit)) << record.dump();
    return record;
  }

  // A client block holding `image` (grey, BGR or BGRA) as grey, RGB or RGBA.
  static ipc::ShmImage block_of(Client& c, const cv::Mat& image) {
    cv::Mat rgb;
    if (image.channels() == 4) cv::cvtColor(image, rgb, cv::COLOR_BGRA2RGBA);
    else if (image.channels() == 3) cv::cvtColor(image, rgb, cv::COLOR_BGR2RGB);
    else rgb = image;
    protocol::ImageDesc d;
    d.width = static_cast<uint32_t>(rgb.cols);
    d.height = static_cast<uint32_t>(rgb.rows);
    d.channels = static_cast<uint32_t>(rgb.channels());
    ipc::ShmImage block = c.create_image(d);
    for (int y = 0; y < rgb.rows; ++y) std::memcpy(block.row(y), rgb.ptr(y), std::size_t(rgb.cols) * rgb.channels());
    return block;
  }

  struct Layer {
    std::string name;
    cv::Mat image;
    std::optional<std::string> caption;
  };

  // Adds layers through shared memory; the blocks go as soon as the job is queued.
  static Json add_layers(Client& c, const std::string& dataset, const std::vector<Layer>& layers) {
    std::string id;
    {
      std::vector<ipc::ShmImage> blocks;
      Json images = Json::array();
      for (const Layer& l : layers) {
        blocks.push_back(block_of(c, l.image));
        Json e{{"image", protocol::to_json(blocks.back().ref())}, {"name", l.name}};
        if (l.caption) e["caption"] = *l.caption;
        images.push_back(e);
      }
      id = c.call(m::kDatasetsAddImages, {{"name", dataset}, {"images", images}}).at("id");
      for (auto& b : blocks) b.remove();  // the daemon copied the pixels when it queued the job
    }
    return wait_job(c, id);
  }

  static Json add_paths(Client& c, const std::string& dataset, const std::vector<fs::path>& paths) {
    Json list = Json::array();
    for (const auto& p : paths) list.push_back(p.string());
    return wait_job(c, c.call(m::kDatasetsAddImages, {{"name", dataset}, {"paths", list}}).at("id"));
  }

  static ErrorCode code_of(const std::function<void()>& call, std::string* message = nullptr) {
    try {
      call();
    } catch (const RpcError& e) {
      if (message) *message = e.what();
      return e.code();
    }
    ADD_FAILURE() << "the call was accepted";
    return ErrorCode::InternalError;
  }

  static bool has(const Json& findings, const std::string& code) {
    for (const Json& f : findings)
      if (f.at("code") == code && !f.at("message").get<std::string>().empty()) return true;
    return false;
  }

  static fs::path inputs(const std::string& name) {
    const fs::path dir = daemon_->root() / "inputs" / name;
    fs::create_directories(dir);
    return dir;
  }

  static DaemonProcess* daemon_;
};
DaemonProcess* Datasets::daemon_ = nullptr;

}  // namespace

TEST_F(Datasets, HostileNamesAreRefusedWithAClearErrorAndNothingIsCreated) {
  auto c = daemon_->client();
  const auto listed = [&] { return c->call(m::kDatasetsList).at("datasets").size(); };
  const std::size_t before = listed();
  for (const std::string& name : {std::string("../x"), std::string("/abs"), std::string(""), std::string(300, 'n'),
                                  std::string("a/b"), std::string(".."), std::string("..\\x")}) {
    std::string message;
    EXPECT_EQ(code_of([&] { c->call(m::kDatasetsCreate, {{"name", name}}); }, &message), ErrorCode::InvalidName) << name;
    EXPECT_NE(message.find("dataset name"), std::string::npos) << message;
    EXPECT_EQ(code_of([&] { c->call(m::kDatasetsGet, {{"name", name}}); }), ErrorCode::InvalidName) << name;
    EXPECT_EQ(code_of([&] { c->call(m::kDatasetsRemove, {{"name", name}}); }), ErrorCode::InvalidName) << name;
    EXPECT_EQ(code_of([&] { c->call(m::kDatasetsAddImages, {{"name", name}, {"paths", {"/tmp"}}}); }), ErrorCode::InvalidName)
        << "refused before a job is queued: " << name;
  }
  std::string message;
  EXPECT_EQ(code_of([&] { c->call(m::kDatasetsCreate, {{"name", "ok"}, {"trigger", "../t"}}); }, &message), ErrorCode::InvalidName);
  EXPECT_NE(message.find("trigger"), std::string::npos) << message;
  EXPECT_EQ(code_of([&] { c->call(m::kDatasetsCreate, {{"name", "ok"}, {"crop", "sideways"}}); }, &message), ErrorCode::InvalidParams);
  EXPECT_NE(message.find("crop"), std::string::npos) << message;
  EXPECT_EQ(code_of([&] { c->call(m::kDatasetsCreate, {{"name", "ok"}, {"resolution", 500}}); }, &message), ErrorCode::InvalidParams);
  EXPECT_NE(message.find("multiple of 64"), std::string::npos) << message;
  EXPECT_EQ(code_of([&] { c->call(m::kDatasetsGet, {{"name", "never-made"}}); }), ErrorCode::NotFound);

  EXPECT_EQ(listed(), before);
  EXPECT_FALSE(fs::exists(daemon_->data_dir() / "x"));
  EXPECT_FALSE(fs::exists(daemon_->root() / "x"));
  EXPECT_FALSE(fs::exists(daemon_->data_dir() / "datasets" / "a"));
  EXPECT_FALSE(fs::exists(daemon_->data_dir() / "datasets" / "ok"));
  EXPECT_FALSE(fs::exists("/abs"));
}

TEST_F(Datasets, ShmLayerWithAlphaInProductModeIsCompositedOnWhiteAndCentred) {
  auto c = daemon_->client();
  const Json created = c->call(m::kDatasetsCreate, {{"name", "acme bottle"}, {"preset", "product"}, {"trigger", "acme"}});
  EXPECT_EQ(created.at("settings").at("crop"), "focus");
  EXPECT_TRUE(created.at("settings").at("center_subject").get<bool>());
  // The product sits in the top-left part of a transparent layer.
  const cv::Mat layer = studio::test::product_layer(900, 700, cv::Rect(60, 40, 250, 500));
  const Json record = add_layers(*c, "acme bottle", {{"Layer 1", layer, "bottle, blue"}});
  ASSERT_EQ(record.at("state"), "done") << record.dump();
  const Json& r = record.at("result");
  EXPECT_EQ(r.at("added"), Json::array({"0001"}));
  EXPECT_TRUE(r.at("errors").empty());
  EXPECT_FALSE(record.at("params").at("images").at(0).contains("shm")) << "the record keeps no block names";
  EXPECT_EQ(record.at("params").at("images").at(0).at("width"), 900);

  const Json d = c->call(m::kDatasetsGet, {{"name", "acme bottle"}});
  ASSERT_EQ(d.at("images").size(), 1u);
  const Json& img = d.at("images").at(0);
  EXPECT_EQ(img.at("source_name"), "Layer 1");
  EXPECT_EQ(img.at("caption"), "acme, bottle, blue");
  EXPECT_EQ(img.at("stored_file"), "10_acme/0001.png");
  EXPECT_EQ(img.at("width"), 900);
  EXPECT_EQ(img.at("height"), 700);

  const fs::path folder = d.at("folder").get<std::string>();
  EXPECT_EQ(folder, daemon_->data_dir() / "datasets" / "acme bottle");
  EXPECT_EQ(studio::read_png(folder / img.at("original_file").get<std::string>()).channels, 4) << "the original keeps its alpha";
  const studio::PngImage png = studio::read_png(folder / img.at("stored_file").get<std::string>());
  ASSERT_EQ(png.channels, 3);
  ASSERT_EQ(png.width, 512);
  ASSERT_EQ(png.height, 512);
  const auto px = [&](int x, int y, int ch) { return int(png.pixels[(std::size_t(y) * png.width + x) * 3 + ch]); };
  for (auto [x, y] : {std::pair{0, 0}, {511, 0}, {0, 511}, {511, 511}, {256, 2}, {2, 256}})
    for (int ch = 0; ch < 3; ++ch) EXPECT_EQ(px(x, y, ch), 255) << "white at " << x << "," << y;
  // The subject (the non-white pixels) is centred.
  int x0 = 512, y0 = 512, x1 = -1, y1 = -1;
  for (int y = 0; y < 512; ++y)
    for (int x = 0; x < 512; ++x)
      if (px(x, y, 0) < 200 || px(x, y, 1) < 200 || px(x, y, 2) < 200) {
        x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
      }
  ASSERT_GE(x1, 0) << "the subject is in the picture";
  EXPECT_NEAR((x0 + x1) / 2.0, 255.5, 12);
  EXPECT_NEAR((y0 + y1) / 2.0, 255.5, 12);
  EXPECT_GT(y1 - y0, 300) << "the subject fills the crop, less the margin";
}

TEST_F(Datasets, SixteenBitAndPremultipliedFloatLayersAreConvertedWhenQueued) {
  auto c = daemon_->client();
  c->call(m::kDatasetsCreate, {{"name", "sample types"}});
  protocol::ImageDesc d16;
  d16.width = d16.height = 64;
  d16.channels = 3;
  d16.dtype = protocol::PixelType::U16;
  ipc::ShmImage a = c->create_image(d16);
  for (uint32_t y = 0; y < 64; ++y) {
    auto* row = reinterpret_cast<uint16_t*>(a.row(y));
    for (uint32_t x = 0; x < 64; ++x) row[3 * x] = 65535, row[3 * x + 1] = 32896, row[3 * x + 2] = 0;
  }
  protocol::ImageDesc df = d16;
  df.channels = 4;
  df.dtype = protocol::PixelType::F32;
  df.premultiplied = true;
  ipc::ShmImage b = c->create_image(df);
  for (uint32_t y = 0; y < 64; ++y) {
    auto* row = reinterpret_cast<float*>(b.row(y));
    for (uint32_t x = 0; x < 64; ++x) row[4 * x] = 0.5f, row[4 * x + 1] = 0.25f, row[4 * x + 2] = 0, row[4 * x + 3] = 0.5f;
  }
  const std::string id = c->call(m::kDatasetsAddImages, {{"name", "sample types"},
                                                          {"images", {{{"image", protocol::to_json(a.ref())}, {"name", "u16"}},
                                                                      {{"image", protocol::to_json(b.ref())}, {"name", "f32"}}}}})
                             .at("id");
  a.remove();
  b.remove();
  ASSERT_EQ(wait_job(*c, id).at("state"), "done");
  const Json ds = c->call(m::kDatasetsGet, {{"name", "sample types"}});
  const fs::path folder = ds.at("folder").get<std::string>();
  const studio::PngImage u16 = studio::read_png(folder / ds.at("images")[0].at("original_file").get<std::string>());
  ASSERT_EQ(u16.channels, 3);
  EXPECT_EQ(int(u16.pixels[0]), 255);
  EXPECT_EQ(int(u16.pixels[1]), 128);
  EXPECT_EQ(int(u16.pixels[2]), 0);
  const studio::PngImage f32 = studio::read_png(folder / ds.at("images")[1].at("original_file").get<std::string>());
  ASSERT_EQ(f32.channels, 4);
  EXPECT_EQ(int(f32.pixels[3]), 128) << "alpha 0.5";
  EXPECT_NEAR(int(f32.pixels[0]), 255, 1) << "straight alpha: 0.5 premultiplied by 0.5 is full red";
  EXPECT_NEAR(int(f32.pixels[1]), 128, 1);
  EXPECT_EQ(int(f32.pixels[2]), 0);
}

TEST_F(Datasets, FolderWithACorruptFileImportsTheOthersAndNamesIt) {
  auto c = daemon_->client();
  c->call(m::kDatasetsCreate, {{"name", "folder import"}, {"trigger", "sks"}});
  const fs::path dir = inputs("folder");
  cv::imwrite((dir / "a.png").string(), studio::test::scene(768, 768, 11));
  cv::imwrite((dir / "b.jpg").string(), studio::test::scene(640, 800, 12));
  std::ofstream(dir / "a.txt") << "red car, street";
  std::ofstream(dir / "broken.png", std::ios::binary) << "\x89PNG\r\n\x1a\nnot the rest of a PNG";
  std::ofstream(dir / "notes.md") << "not an image: skipped";
  const fs::path empty = inputs("empty");

  const Json record = add_paths(*c, "folder import", {dir, empty, dir / "missing.png"});
  ASSERT_EQ(record.at("state"), "done") << record.dump();
  const Json& r = record.at("result");
  EXPECT_EQ(r.at("added"), Json::array({"0001", "0002"}));
  ASSERT_EQ(r.at("errors").size(), 3u) << r.dump();
  const auto error_for = [&](const std::string& source) -> std::string {
    for (const Json& e : r.at("errors"))
      if (e.at("source").get<std::string>().find(source) != std::string::npos) return e.at("message");
    return "";
  };
  EXPECT_NE(error_for("broken.png").find("broken.png"), std::string::npos) << r.dump();
  EXPECT_NE(error_for("missing.png").find("missing.png"), std::string::npos) << r.dump();
  EXPECT_NE(error_for(empty.string()).find("no image files"), std::string::npos) << r.dump();
  ASSERT_EQ(r.at("images").size(), 2u);
  EXPECT_EQ(r.at("images").at(0).at("source_name"), "a.png");
  EXPECT_EQ(r.at("images").at(0).at("caption"), "sks, red car, street") << "the caption file beside it is used";
  EXPECT_EQ(r.at("images").at(1).at("source_name"), "b.jpg");
  EXPECT_EQ(c->call(m::kDatasetsGet, {{"name", "folder import"}}).at("images").size(), 2u);

  std::string message;
  EXPECT_EQ(code_of([&] { c->call(m::kDatasetsAddImages, {{"name", "folder import"}, {"paths", {"relative/a.png"}}}); }, &message),
            ErrorCode::InvalidParams);
  EXPECT_NE(message.find("absolute"), std::string::npos) << message;
  EXPECT_EQ(code_of([&] { c->call(m::kDatasetsAddImages, {{"name", "folder import"}}); }), ErrorCode::InvalidParams);
  EXPECT_EQ(code_of([&] { c->call(m::kDatasetsAddImages, {{"name", "no such set"}, {"paths", {dir.string()}}}); }),
            ErrorCode::NotFound);
}

TEST_F(Datasets, FindingsTooSmallBlurryNearDuplicateAndTransparent) {
  auto c = daemon_->client();
  c->call(m::kDatasetsCreate, {{"name", "checks"}});
  const cv::Mat sharp = studio::test::scene(768, 768, 21);
  cv::Mat sharp_small;
  cv::resize(sharp, sharp_small, cv::Size(700, 700), 0, 0, cv::INTER_AREA);
  const Json record = add_layers(*c, "checks",
                                 {{"sharp", sharp, std::nullopt},
                                  {"tiny", studio::test::scene(200, 150, 22), std::nullopt},
                                  {"blurred", studio::test::blurred(studio::test::scene(768, 768, 23), 4), std::nullopt},
                                  {"sharp again", sharp_small, std::nullopt},
                                  {"empty layer", cv::Mat(600, 600, CV_8UC4, cv::Scalar(0, 0, 0, 0)), std::nullopt}});
  ASSERT_EQ(record.at("state"), "done") << record.dump();
  const Json d = c->call(m::kDatasetsGet, {{"name", "checks"}});
  ASSERT_EQ(d.at("images").size(), 5u);
  const Json& img = d.at("images");
  EXPECT_FALSE(has(img[0].at("findings"), "blurry")) << img[0].dump();
  EXPECT_FALSE(has(img[0].at("findings"), "too_small"));
  EXPECT_TRUE(has(img[1].at("findings"), "too_small")) << img[1].dump();
  EXPECT_TRUE(has(img[2].at("findings"), "blurry")) << img[2].dump();
  // Only the copy is flagged, naming the picture it repeats (the larger one, to keep) by name and id.
  EXPECT_FALSE(has(img[0].at("findings"), "near_duplicate")) << img[0].dump();
  ASSERT_TRUE(has(img[3].at("findings"), "near_duplicate")) << img[3].dump();
  bool names_other = false;
  for (const Json& f : img[3].at("findings"))
    names_other |= f.at("code") == "near_duplicate" && f.at("message").get<std::string>().find("'sharp'") != std::string::npos &&
                   f.value("other", "") == img[0].at("id") && !f.value("action", "").empty();
  EXPECT_TRUE(names_other) << img[3].dump();
  EXPECT_FALSE(has(img[1].at("findings"), "near_duplicate"));
  EXPECT_TRUE(has(img[4].at("findings"), "transparent")) << img[4].dump();
  EXPECT_TRUE(has(d.at("findings"), "few_images")) << d.at("findings").dump();
  // The import job's result carries the same findings.
  EXPECT_TRUE(has(record.at("result").at("images").at(1).at("findings"), "too_small"));
}

TEST_F(Datasets, TagBatchEditsKeepTheTriggerFirst) {
  auto c = daemon_->client();
  c->call(m::kDatasetsCreate, {{"name", "tags"}, {"trigger", "sks"}});
  const Json record = add_layers(*c, "tags",
                                 {{"one", studio::test::scene(512, 512, 31), "red dress, sks, smile"},
                                  {"two", studio::test::scene(512, 512, 32), "smile, transparent background, red dress"},
                                  {"three", studio::test::scene(512, 512, 33), "hat"}});
  ASSERT_EQ(record.at("state"), "done") << record.dump();

  Json d = c->call(m::kDatasetsTags, {{"name", "tags"},
                                      {"add", "studio light"},
                                      {"remove", Json::array({"smile"})},
                                      {"replace", "red dress=blue dress"},
                                      {"move_to_end", "transparent background"},
                                      {"ids", {"0001", "0002"}}});
  EXPECT_EQ(d.at("images")[0].at("caption"), "sks, blue dress, studio light");
  EXPECT_EQ(d.at("images")[1].at("caption"), "sks, blue dress, studio light, transparent background");
  EXPECT_EQ(d.at("images")[2].at("caption"), "sks, hat") << "not in ids";
  const fs::path folder = d.at("folder").get<std::string>();
  std::string line;
  std::getline(std::ifstream(folder / "10_sks" / "0002.txt"), line);
  EXPECT_EQ(line, "sks, blue dress, studio light, transparent background");

  d = c->call(m::kDatasetsTags, {{"name", "tags"}, {"replace", Json{{"old", "hat"}, {"new", "red hat"}}}, {"add", {"hat", "sks"}}});
  EXPECT_EQ(d.at("images")[2].at("caption"), "sks, red hat, hat");
  EXPECT_EQ(d.at("images")[0].at("caption"), "sks, blue dress, studio light, hat");

  std::string message;
  EXPECT_EQ(code_of([&] { c->call(m::kDatasetsTags, {{"name", "tags"}, {"remove", "sks"}}); }, &message), ErrorCode::InvalidParams);
  EXPECT_NE(message.find("trigger"), std::string::npos) << message;
  EXPECT_EQ(code_of([&] { c->call(m::kDatasetsTags, {{"name", "tags"}, {"replace", "no equals sign"}}); }), ErrorCode::InvalidParams);
  EXPECT_EQ(code_of([&] { c->call(m::kDatasetsTags, {{"name", "tags"}}); }), ErrorCode::InvalidParams);
  EXPECT_EQ(code_of([&] { c->call(m::kDatasetsTags, {{"name", "tags"}, {"add", "x"}, {"ids", {"0009"}}}); }), ErrorCode::NotFound);

  const Json img = c->call(m::kDatasetsSetCaption, {{"name", "tags"}, {"id", "0003"}, {"caption", "cap, sks, cap, Cap"}});
  EXPECT_EQ(img.at("caption"), "sks, cap");
  d = c->call(m::kDatasetsTags, {{"name", "tags"}, {"dedupe", true}});
  EXPECT_EQ(d.at("images")[2].at("caption"), "sks, cap");

  const Json stats = c->call(m::kDatasetsTagStats, {{"name", "tags"}});
  EXPECT_EQ(stats.at("images"), 3);
  ASSERT_GE(stats.at("tags").size(), 2u);
  EXPECT_EQ(stats.at("tags")[0], (Json{{"tag", "sks"}, {"count", 3}}));
  EXPECT_EQ(stats.at("tags")[1], (Json{{"tag", "blue dress"}, {"count", 2}}));
}

TEST_F(Datasets, RemoveImagesDeletesTheirFilesOnly) {
  auto c = daemon_->client();
  c->call(m::kDatasetsCreate, {{"name", "removal"}, {"trigger", "rm"}});
  ASSERT_EQ(add_layers(*c, "removal",
                       {{"a", studio::test::scene(512, 512, 41), "x"},
                        {"b", studio::test::scene(512, 512, 42), "y"},
                        {"c", studio::test::scene(512, 512, 43), "z"}})
                .at("state"),
            "done");
  const fs::path folder = c->call(m::kDatasetsGet, {{"name", "removal"}}).at("folder").get<std::string>();
  ASSERT_TRUE(fs::is_regular_file(folder / "10_rm" / "0002.png"));

  EXPECT_EQ(code_of([&] { c->call(m::kDatasetsRemoveImages, {{"name", "removal"}, {"ids", {"0001", "0099"}}}); }),
            ErrorCode::NotFound);
  EXPECT_EQ(c->call(m::kDatasetsGet, {{"name", "removal"}}).at("images").size(), 3u) << "nothing removed on an unknown id";

  const Json d = c->call(m::kDatasetsRemoveImages, {{"name", "removal"}, {"ids", {"0002"}}});
  ASSERT_EQ(d.at("images").size(), 2u);
  EXPECT_EQ(d.at("images")[0].at("id"), "0001");
  EXPECT_EQ(d.at("images")[1].at("id"), "0003");
  for (const char* gone : {"10_rm/0002.png", "10_rm/0002.txt", "10_rm/0002.caption", "originals/0002.png"})
    EXPECT_FALSE(fs::exists(folder / gone)) << gone;
  EXPECT_TRUE(fs::is_regular_file(folder / "10_rm" / "0003.png"));
  EXPECT_EQ(code_of([&] { c->call(m::kDatasetsRemoveImages, {{"name", "removal"}, {"ids", Json::array()}}); }),
            ErrorCode::InvalidParams);

  c->call(m::kDatasetsRemove, {{"name", "removal"}});
  EXPECT_FALSE(fs::exists(folder));
  EXPECT_EQ(code_of([&] { c->call(m::kDatasetsGet, {{"name", "removal"}}); }), ErrorCode::NotFound);
}

TEST_F(Datasets, ImportJobReportsPerImageProgressAndCanBeCancelled) {
  auto c = daemon_->client();
  c->call(m::kDatasetsCreate, {{"name", "cancel me"}});
  const fs::path dir = inputs("cancel");
  cv::imwrite((dir / "big.png").string(), studio::test::scene(1600, 1600, 51));
  const int n = 60;
  Json paths = Json::array();
  for (int i = 0; i < n; ++i) paths.push_back((dir / "big.png").string());

  std::mutex mutex;
  std::vector<Json> progress;
  const int token = c->add_notification_handler([&](const std::string& method, const Json& params) {
    if (method != protocol::notification::kJobProgress) return;
    std::lock_guard lock(mutex);
    progress.push_back(params.at("job").at("progress"));
  });
  const Json queued = c->call(m::kDatasetsAddImages, {{"name", "cancel me"}, {"paths", paths}});
  EXPECT_EQ(queued.at("priority"), "interactive");
  const std::string id = queued.at("id");
  c->call(m::kJobsSubscribe, {{"id", id}});
  ASSERT_TRUE(eventually([&] {
    const Json r = c->call(m::kJobsGet, {{"id", id}});
    return r.at("progress").at("step").get<int64_t>() >= 2 || (r.at("state") != "running" && r.at("state") != "queued");
  }, std::chrono::seconds(60)));
  c->call(m::kJobsCancel, {{"id", id}});
  const Json record = wait_job(*c, id);
  c->call(m::kJobsUnsubscribe, {{"id", id}});
  c->remove_notification_handler(token);
  ASSERT_EQ(record.at("state"), "cancelled") << record.dump();

  const Json d = c->call(m::kDatasetsGet, {{"name", "cancel me"}});
  const std::size_t kept = d.at("images").size();
  EXPECT_GE(kept, 2u);
  EXPECT_LT(kept, std::size_t(n)) << "cancelled before the end";
  const fs::path folder = d.at("folder").get<std::string>();
  for (const Json& img : d.at("images")) EXPECT_TRUE(fs::is_regular_file(folder / img.at("stored_file").get<std::string>()));
  {
    std::lock_guard lock(mutex);
    ASSERT_FALSE(progress.empty());
    EXPECT_EQ(progress.front().at("total"), n);
    EXPECT_NE(progress.front().at("message").get<std::string>().find("big.png"), std::string::npos) << progress.front().dump();
  }

  // A queued import cancelled before it runs adds nothing.
  const Json busy = c->call(m::kJobsSimulate, {{"steps", 50}, {"step_ms", 20}, {"priority", "interactive"}});
  const std::string queued_id = c->call(m::kDatasetsAddImages, {{"name", "cancel me"}, {"paths", {(dir / "big.png").string()}}}).at("id");
  EXPECT_EQ(c->call(m::kJobsCancel, {{"id", queued_id}}).at("state"), "cancelled");
  c->call(m::kJobsCancel, {{"id", busy.at("id")}});
  EXPECT_EQ(c->call(m::kDatasetsGet, {{"name", "cancel me"}}).at("images").size(), kept);
}

TEST_F(Datasets, KohyaFolderLayoutOnDiskAndRePreparation) {
  auto c = daemon_->client();
  c->call(m::kDatasetsCreate, {{"name", "kohya"}, {"trigger", "acme"}, {"repeats", 12}});
  const fs::path dir = inputs("kohya");
  cv::imwrite((dir / "one.png").string(), studio::test::scene(800, 600, 61));
  cv::imwrite((dir / "two.png").string(), studio::test::scene(600, 800, 62));
  std::ofstream(dir / "two.txt") << "speaker, wood";
  ASSERT_EQ(add_paths(*c, "kohya", {dir / "one.png", dir / "two.png"}).at("state"), "done");

  const fs::path folder = daemon_->data_dir() / "datasets" / "kohya";
  for (const char* f : {"dataset.json", "originals/0001.png", "originals/0002.png", "12_acme/0001.png", "12_acme/0001.txt",
                        "12_acme/0001.caption", "12_acme/0002.png", "12_acme/0002.txt"})
    EXPECT_TRUE(fs::is_regular_file(folder / f)) << f;
  std::string line;
  std::getline(std::ifstream(folder / "12_acme" / "0002.txt"), line);
  EXPECT_EQ(line, "acme, speaker, wood");
  const studio::DatasetFolder kohya = studio::scan_kohya_folder(folder);
  ASSERT_EQ(kohya.subsets.size(), 1u);
  EXPECT_EQ(kohya.subsets[0].repeats, 12);
  EXPECT_EQ(kohya.subsets[0].class_tokens, "acme");
  EXPECT_EQ(kohya.image_count(), 2);
  EXPECT_TRUE(kohya.warnings.empty());

  // Re-prepared with other settings: the folder follows the repeats, flips are added.
  const std::string id = c->call(m::kDatasetsPrepare, {{"name", "kohya"}, {"repeats", 5}, {"flip", true}}).at("id");
  const Json record = wait_job(*c, id);
  ASSERT_EQ(record.at("state"), "done") << record.dump();
  EXPECT_EQ(record.at("result").at("settings").at("repeats"), 5);
  EXPECT_EQ(record.at("result").at("training_images"), 4);
  EXPECT_FALSE(fs::exists(folder / "12_acme"));
  for (const char* f : {"5_acme/0001.png", "5_acme/0001_flip.png", "5_acme/0001_flip.txt", "5_acme/0002.png"})
    EXPECT_TRUE(fs::is_regular_file(folder / f)) << f;
  EXPECT_EQ(studio::scan_kohya_folder(folder).image_count(), 4);
  EXPECT_EQ(code_of([&] { c->call(m::kDatasetsPrepare, {{"name", "kohya"}, {"repeats", 0}}); }), ErrorCode::InvalidParams);
}

TEST_F(Datasets, AutoTagNamesWhatToInstallWhereThenTagsWithAnInstalledTagger) {
  auto c = daemon_->client();
  c->call(m::kDatasetsCreate, {{"name", "autotag"}, {"trigger", "sks"}});
  ASSERT_EQ(add_layers(*c, "autotag",
                       {{"red", cv::Mat(512, 512, CV_8UC3, cv::Scalar(0, 0, 255)), "old tag"},
                        {"blue", cv::Mat(512, 512, CV_8UC3, cv::Scalar(255, 0, 0)), std::nullopt}})
                .at("state"),
            "done");
  const fs::path taggers = daemon_->data_dir() / "taggers" / "wd14";
  std::string message;
  EXPECT_EQ(code_of([&] { c->call(m::kDatasetsAutoTag, {{"name", "autotag"}}); }, &message), ErrorCode::NotFound);
  EXPECT_NE(message.find(taggers.string()), std::string::npos) << message;
  EXPECT_NE(message.find("model.onnx"), std::string::npos) << message;
  EXPECT_NE(message.find("selected_tags.csv"), std::string::npos) << message;

  fs::create_directories(taggers);
  std::ofstream(taggers / "model.onnx", std::ios::binary) << kiln::test::tiny_tagger_onnx();
  std::ofstream(taggers / "selected_tags.csv") << "tag_id,name,category,count\n1,blue_sky,0,5\n2,sensitive,9,5\n3,red_dress,0,5\n";
  Json record = wait_job(*c, c->call(m::kDatasetsAutoTag, {{"name", "autotag"}, {"replace", true}}).at("id"));
  ASSERT_EQ(record.at("state"), "done") << record.dump();
  EXPECT_EQ(record.at("result").at("tagged"), 2);
  Json d = c->call(m::kDatasetsGet, {{"name", "autotag"}});
  EXPECT_EQ(d.at("images")[0].at("caption"), "sks, red dress");
  EXPECT_EQ(d.at("images")[1].at("caption"), "sks, blue sky");

  c->call(m::kDatasetsSetCaption, {{"name", "autotag"}, {"id", "0001"}, {"caption", "mine"}});
  record = wait_job(*c, c->call(m::kDatasetsAutoTag, {{"name", "autotag"}, {"threshold", 0.5}}).at("id"));
  ASSERT_EQ(record.at("state"), "done") << record.dump();
  d = c->call(m::kDatasetsGet, {{"name", "autotag"}});
  EXPECT_EQ(d.at("images")[0].at("caption"), "sks, mine, red dress") << "appended without --replace";
  EXPECT_EQ(code_of([&] { c->call(m::kDatasetsAutoTag, {{"name", "autotag"}, {"threshold", 1.5}}); }), ErrorCode::InvalidParams);
  EXPECT_EQ(code_of([&] { c->call(m::kDatasetsAutoTag, {{"name", "autotag"}, {"tagger", "../wd14"}}); }), ErrorCode::InvalidName);
}

TEST_F(Datasets, CliCreateFromFolderThenCheckJson) {
  const std::vector<std::pair<std::string, std::string>> env{{"KILN_SOCKET", daemon_->socket().string()}};
  const fs::path dir = inputs("cli");
  cv::imwrite((dir / "photo.png").string(),
              studio::test::product_photo(900, 900, cv::Rect(300, 200, 300, 500)));
  cv::imwrite((dir / "small.png").string(), studio::test::scene(240, 200, 71));
  std::ofstream(dir / "broken.png", std::ios::binary) << "\x89PNG\r\n\x1a\ngarbage";

  // A relative --from: the CLI sends it as an absolute path.
  auto [code, out] = run_command({"/bin/sh", "-c",
                                  "cd '" + dir.string() + "' && exec '" + kiln_cli_path() +
                                      "' dataset create clids --from . --preset product --trigger acme --repeats 15"},
                                 env);
  EXPECT_EQ(code, 1) << "one file could not be imported\n" << out;
  EXPECT_NE(out.find("created dataset 'clids'"), std::string::npos) << out;
  EXPECT_NE(out.find("broken.png"), std::string::npos) << out;
  EXPECT_NE(out.find("too_small"), std::string::npos) << out;
  EXPECT_NE(out.find("added 2 image(s)"), std::string::npos) << out;

  auto [check_code, check_out] = run_command({kiln_cli_path(), "dataset", "check", "clids", "--json"}, env);
  ASSERT_EQ(check_code, 0) << check_out;
  const Json check = Json::parse(check_out);
  EXPECT_EQ(check.at("dataset"), "clids");
  ASSERT_EQ(check.at("images").size(), 2u);
  const Json& photo = check.at("images")[0];
  EXPECT_EQ(photo.at("source_name"), "photo.png");
  EXPECT_EQ(photo.at("stored_file"), "15_acme/0001.png");
  EXPECT_EQ(photo.at("caption"), "acme");
  const Json& small = check.at("images")[1];
  EXPECT_EQ(small.at("source_name"), "small.png");
  EXPECT_TRUE(has(small.at("findings"), "too_small")) << small.dump();
  EXPECT_TRUE(has(check.at("findings"), "few_images")) << check.dump();
  EXPECT_GE(check.at("warnings").get<int>(), 2);
  EXPECT_TRUE(fs::is_regular_file(fs::path(check.at("folder").get<std::string>()) / "15_acme" / "0001.txt"));

  auto [list_code, list_out] = run_command({kiln_cli_path(), "dataset", "list", "--json"}, env);
  ASSERT_EQ(list_code, 0);
  bool listed = false;
  const Json datasets = Json::parse(list_out);
  for (const Json& d : datasets.at("datasets")) listed |= d.at("name") == "clids" && d.at("image_count") == 2;
  EXPECT_TRUE(listed) << list_out;

  auto [tags_code, tags_out] =
      run_command({kiln_cli_path(), "dataset", "tags", "clids", "--add", "white background", "--stats", "--json"}, env);
  ASSERT_EQ(tags_code, 0) << tags_out;
  const Json tags = Json::parse(tags_out);
  EXPECT_EQ(tags.at("captions")[0].at("caption"), "acme, white background");
  EXPECT_EQ(tags.at("tags")[0], (Json{{"tag", "acme"}, {"count", 2}}));

  auto [cap_code, cap_out] = run_command({kiln_cli_path(), "dataset", "caption", "clids", "0002", "tiny, acme"}, env);
  EXPECT_EQ(cap_code, 0);
  EXPECT_NE(cap_out.find("acme, tiny"), std::string::npos) << cap_out;

  EXPECT_EQ(run_command({kiln_cli_path(), "dataset", "create"}, env).first, 2);
  EXPECT_EQ(run_command({kiln_cli_path(), "dataset", "create", "x", "--crop", "sideways"}, env).first, 2);
  EXPECT_EQ(run_command({kiln_cli_path(), "dataset", "tags", "clids", "--replace", "noequals"}, env).first, 2);
  EXPECT_EQ(run_command({kiln_cli_path(), "dataset", "show", "no-such-set"}, env).first, 1);
  EXPECT_EQ(run_command({kiln_cli_path(), "dataset", "create", "../evil"}, env).first, 1);
  EXPECT_FALSE(fs::exists(daemon_->data_dir() / "evil"));
  auto [rm_code, rm_out] = run_command({kiln_cli_path(), "dataset", "rm", "clids"}, env);
  EXPECT_EQ(rm_code, 0);
  EXPECT_EQ(run_command({kiln_cli_path(), "dataset", "show", "clids"}, env).first, 1);
}

TEST_F(Datasets, CliCheckGroupsFindingsThenRemoveImagesDropsTheCopy) {
  const std::vector<std::pair<std::string, std::string>> env{{"KILN_SOCKET", daemon_->socket().string()}};
  const fs::path dir = inputs("grouped");
  const cv::Mat b = studio::test::scene(768, 768, 82);
  cv::imwrite((dir / "a.png").string(), studio::test::scene(768, 768, 81));
  cv::imwrite((dir / "b.png").string(), b);
  cv::Mat copy;
  cv::resize(b, copy, cv::Size(640, 640), 0, 0, cv::INTER_AREA);
  cv::imwrite((dir / "b_copy.jpg").string(), copy, {cv::IMWRITE_JPEG_QUALITY, 75});
  cv::imwrite((dir / "c_blurry.png").string(), studio::test::blurred(studio::test::scene(768, 768, 83), 4));
  ASSERT_EQ(run_command({kiln_cli_path(), "dataset", "create", "grouped", "--from", dir.string()}, env).first, 0);

  // The dataset's own findings first, then only the images that have some, each finding with
  // what to do; the clean ones are counted.
  auto [code, out] = run_command({kiln_cli_path(), "dataset", "check", "grouped"}, env);
  ASSERT_EQ(code, 0) << out;
  const auto at = [&](const std::string& s) { return out.find(s); };
  EXPECT_NE(at("dataset 'grouped': 4 image(s)"), std::string::npos) << out;
  ASSERT_NE(at("  the dataset as a whole:\n    ! few_images:"), std::string::npos) << out;
  ASSERT_NE(at("  0003  b_copy.jpg"), std::string::npos) << out;
  ASSERT_NE(at("  0004  c_blurry.png"), std::string::npos) << out;
  EXPECT_LT(at("the dataset as a whole"), at("0003  b_copy.jpg")) << out;
  EXPECT_LT(at("0003  b_copy.jpg"), at("0004  c_blurry.png")) << out;
  EXPECT_NE(at("! near_duplicate: 'b_copy.jpg' is the same picture as 'b.png' (0002)"), std::string::npos) << out;
  EXPECT_NE(at("-> Keep 'b.png' (it came first) and remove this one"), std::string::npos)
      << "both train at 512 px alike, so the first is kept\n" << out;
  EXPECT_NE(at("! blurry: 'c_blurry.png' looks blurry"), std::string::npos) << out;
  EXPECT_NE(at("-> Replace it with a sharper photo, or remove it."), std::string::npos) << out;
  EXPECT_EQ(at("  0001  a.png"), std::string::npos) << "a clean image is only counted\n" << out;
  EXPECT_NE(at("2 of 4 image(s) have no findings"), std::string::npos) << out;
  EXPECT_NE(at("kiln dataset remove-images grouped ID"), std::string::npos) << out;

  auto [rm_code, rm_out] = run_command({kiln_cli_path(), "dataset", "remove-images", "grouped", "0003"}, env);
  ASSERT_EQ(rm_code, 0) << rm_out;
  EXPECT_NE(rm_out.find("removed 1 image(s) from 'grouped'; 3 left"), std::string::npos) << rm_out;
  auto [json_code, json_out] = run_command({kiln_cli_path(), "dataset", "check", "grouped", "--json"}, env);
  ASSERT_EQ(json_code, 0);
  const Json check = Json::parse(json_out);
  ASSERT_EQ(check.at("images").size(), 3u);
  for (const Json& img : check.at("images")) EXPECT_FALSE(has(img.at("findings"), "near_duplicate")) << img.dump();
  EXPECT_EQ(run_command({kiln_cli_path(), "dataset", "remove-images", "grouped", "0099"}, env).first, 1);
}
