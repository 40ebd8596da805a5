#include "studio/dataset/dataset_store.h"

#include <gtest/gtest.h>

#include <fstream>
#include <functional>

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "studio/dataset/kohya_folder.h"
#include "studio/error.h"
#include "studio/png.h"
#include "synthetic.h"
#include "temp_dir.h"

namespace kiln::studio {
namespace {
namespace fs = std::filesystem;

bool has(const std::vector<Finding>& findings, const std::string& code) {
  return std::any_of(findings.begin(), findings.end(), [&](const Finding& f) { return f.code == code; });
}

ImageInput from_mat(const cv::Mat& m, const std::string& name, std::optional<std::string> caption = std::nullopt) {
  ImageInput in;
  in.image = m;
  in.source_name = name;
  in.caption = std::move(caption);
  return in;
}

TEST(DatasetStore, CreateListGetRemove) {
  test::TempDir dir;
  DatasetStore store(dir.path());
  EXPECT_TRUE(store.list().empty());
  const Dataset d = store.create("My Speaker", preset_settings(Preset::Product, "acme"));
  EXPECT_EQ(d.folder, dir / "datasets" / "My Speaker");
  EXPECT_TRUE(fs::is_directory(d.folder / "10_acme"));
  EXPECT_TRUE(fs::is_directory(d.folder / "originals"));
  EXPECT_TRUE(fs::is_regular_file(d.folder / "dataset.json"));
  EXPECT_TRUE(has(d.findings, "few_images"));

  try {
    store.create("My Speaker", {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::AlreadyExists);
  }
  const Dataset plain = store.create("plain", {});
  EXPECT_EQ(plain.settings.trigger, "plain");  // an empty trigger becomes the name
  const auto all = store.list();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].name, "My Speaker");
  EXPECT_EQ(all[0].preset, Preset::Product);

  store.remove("plain");
  EXPECT_EQ(store.list().size(), 1u);
  EXPECT_THROW(store.get("plain"), Error);
  int leftovers = 0;
  for (const auto& e : fs::directory_iterator(dir / "datasets")) leftovers += e.path().filename() != "My Speaker";
  EXPECT_EQ(leftovers, 0);
}

TEST(DatasetStore, HostileNamesNeverBecomePaths) {
  test::TempDir dir;
  DatasetStore store(dir / "data");
  for (const std::string& name : std::vector<std::string>{"../x", "/abs", "", std::string(100, 'n'), "a/b", "..", std::string("a\0b", 3)}) {
    for (const auto& call : std::vector<std::function<void()>>{[&] { store.create(name, {}); }, [&] { store.get(name); },
                                                                [&] { store.remove(name); },
                                                                [&] { store.add_images(name, {}); }}) {
      try {
        call();
        ADD_FAILURE() << "accepted " << name;
      } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::InvalidName) << e.what();
      }
    }
  }
  EXPECT_FALSE(fs::exists(dir / "x"));
  EXPECT_FALSE(fs::exists(dir / "data" / "datasets" / "a"));
}

TEST(DatasetStore, AddsBuffersAndFilesReportsCorruptOnesAndGoesOn) {
  test::TempDir dir;
  DatasetStore store(dir / "data");
  store.create("acme", preset_settings(Preset::Product, "acme"));

  const cv::Mat layer = test::product_layer(900, 700, cv::Rect(300, 100, 250, 500));
  const cv::Mat rgba = [&] {
    cv::Mat m;
    cv::cvtColor(layer, m, cv::COLOR_BGRA2RGBA);
    return m;
  }();
  fs::create_directories(dir / "in");
  cv::imwrite((dir / "in" / "photo.jpg").string(), test::product_photo(1000, 1000, cv::Rect(300, 250, 300, 500)));
  std::ofstream(dir / "in" / "photo.txt") << "acme, speaker, on a table";
  std::ofstream(dir / "in" / "broken.png", std::ios::binary) << "\x89PNG\r\n\x1a\nthis is not the rest of a PNG";

  std::vector<ImageInput> inputs;
  inputs.push_back(ImageInput::from_pixels(PixelView{rgba.data, rgba.cols, rgba.rows, 4, rgba.step[0]},
                                           ChannelOrder::RGB, "Layer 1", "bottle, blue"));
  inputs.push_back(ImageInput::from_file(dir / "in" / "broken.png"));
  inputs.push_back(ImageInput::from_file(dir / "in" / "photo.jpg"));
  inputs.push_back(ImageInput::from_file(dir / "in" / "missing.png"));
  inputs.push_back(from_mat(test::scene(200, 150), "tiny"));
  inputs.push_back(from_mat(cv::Mat(600, 600, CV_8UC4, cv::Scalar(0, 0, 0, 0)), "empty layer"));

  std::vector<std::string> progress;
  Hooks hooks;
  hooks.progress = [&](int done, int total, const std::string& m) { progress.push_back(std::to_string(done) + "/" + std::to_string(total) + " " + m); };
  const AddResult r = store.add_images("acme", inputs, hooks);
  EXPECT_EQ(r.added, (std::vector<std::string>{"0001", "0002", "0003", "0004"}));
  ASSERT_EQ(r.errors.size(), 2u);
  EXPECT_EQ(r.errors[0].source, "broken.png");
  EXPECT_NE(r.errors[0].message.find("broken.png"), std::string::npos) << r.errors[0].message;
  EXPECT_EQ(r.errors[1].source, "missing.png");
  EXPECT_NE(r.errors[1].message.find("missing.png"), std::string::npos);
  EXPECT_EQ(progress.front(), "0/6 adding Layer 1");
  EXPECT_EQ(progress.back().substr(0, 4), "6/6 ");

  const Dataset d = store.get("acme");
  ASSERT_EQ(d.images.size(), 4u);
  const DatasetImage& a = d.images[0];
  EXPECT_EQ(a.source_name, "Layer 1");
  EXPECT_EQ(a.caption, "acme, bottle, blue");
  EXPECT_EQ(a.stored_file, "10_acme/0001.png");
  EXPECT_EQ(a.original_file, "originals/0001.png");
  EXPECT_EQ(a.width, 900);
  // The original keeps its alpha; the training image is composited on white, 512x512.
  const PngImage original = read_png(d.folder / a.original_file);
  EXPECT_EQ(original.channels, 4);
  const PngImage trained = read_png(d.folder / a.stored_file);
  EXPECT_EQ(trained.channels, 3);
  EXPECT_EQ(trained.width, 512);
  EXPECT_EQ(trained.pixels[0], 255);
  std::ifstream caption(d.folder / "10_acme" / "0001.txt");
  std::string line;
  std::getline(caption, line);
  EXPECT_EQ(line, "acme, bottle, blue");
  EXPECT_TRUE(fs::is_regular_file(d.folder / "10_acme" / "0001.caption"));

  const DatasetImage& photo = d.images[1];
  EXPECT_EQ(photo.caption, "acme, speaker, on a table");  // from photo.txt beside the file
  EXPECT_EQ(photo.original_file, "originals/0002.jpg");
  EXPECT_EQ(read_file_bytes(d.folder / photo.original_file), read_file_bytes(dir / "in" / "photo.jpg"));  // untouched

  ASSERT_TRUE(has(d.images[2].findings, "too_small"));
  EXPECT_NE(d.images[2].findings[0].message.find("enlarged"), std::string::npos) << d.images[2].findings[0].message;
  EXPECT_FALSE(d.images[2].findings[0].action.empty());
  EXPECT_TRUE(has(d.images[3].findings, "transparent"));
  EXPECT_EQ(d.keep_tokens, 1);
  EXPECT_TRUE(has(d.findings, "few_images"));

  // kohya reads the folder as it is.
  const DatasetFolder kohya = scan_kohya_folder(d.folder);
  ASSERT_EQ(kohya.subsets.size(), 1u);
  EXPECT_EQ(kohya.subsets[0].repeats, 10);
  EXPECT_EQ(kohya.subsets[0].class_tokens, "acme");
  EXPECT_EQ(kohya.image_count(), 4);
  EXPECT_EQ(kohya.subsets[0].images[0].caption, "acme, bottle, blue");
  EXPECT_TRUE(kohya.warnings.empty());

  // dataset.json has what `kiln dataset show --json` needs.
  const auto json = nlohmann::json::parse(std::ifstream(d.folder / "dataset.json"));
  EXPECT_EQ(json["images"][2]["findings"][0]["code"], "too_small");
  EXPECT_EQ(json["settings"]["preset"], "product");
  const nlohmann::json client = d;
  EXPECT_EQ(client["images"].size(), 4u);
  EXPECT_EQ(client["keep_tokens"], 1);
}

TEST(DatasetStore, NearDuplicatesAreFoundAcrossTheSet) {
  test::TempDir dir;
  DatasetStore store(dir.path());
  store.create("set", {});
  const cv::Mat a = test::scene(800, 800, 5);
  cv::Mat a2;
  cv::resize(a, a2, cv::Size(700, 700), 0, 0, cv::INTER_AREA);
  store.add_images("set", {from_mat(a, "a.png"), from_mat(test::scene(800, 800, 6), "b.png")});
  store.add_images("set", {from_mat(a2, "a-small.png")});  // compared with those already there
  Dataset d = store.get("set");
  // Only the copy is flagged, naming the picture to keep; the picture it repeats is left alone.
  EXPECT_FALSE(has(d.images[0].findings, "near_duplicate"));
  EXPECT_FALSE(has(d.images[1].findings, "near_duplicate"));
  ASSERT_TRUE(has(d.images[2].findings, "near_duplicate"));
  const Finding& f = d.images[2].findings.back();
  EXPECT_NE(f.message.find("'a-small.png' is the same picture as 'a.png' (0001)"), std::string::npos) << f.message;
  EXPECT_EQ(f.other, "0001");
  EXPECT_NE(f.action.find("Keep 'a.png'"), std::string::npos) << f.action;

  // What it is found from: a signature per picture beside dataset.json, which kohya skips.
  for (const char* id : {"0001", "0002", "0003"}) EXPECT_TRUE(fs::is_regular_file(d.folder / "signatures" / (std::string(id) + ".png")));
  EXPECT_TRUE(scan_kohya_folder(d.folder).warnings.empty());
  const auto manifest = nlohmann::json::parse(std::ifstream(d.folder / "dataset.json"));
  EXPECT_FALSE(manifest["similar"].empty());
  EXPECT_FALSE(nlohmann::json(d)["images"][0].contains("signature")) << "clients do not get the signature";

  // Prepared again with other settings, the pairs are compared again and still found.
  DatasetSettings product = preset_settings(Preset::Product, "set");
  d = store.prepare("set", product);
  EXPECT_TRUE(has(d.images[2].findings, "near_duplicate"));
  // Without the picture it repeats, the copy is fine.
  store.remove_images("set", {"0001"});
  d = store.get("set");
  EXPECT_FALSE(has(d.images[1].findings, "near_duplicate"));
  EXPECT_FALSE(fs::exists(d.folder / "signatures" / "0001.png"));
}

TEST(DatasetStore, CaptionsTagsRemovalAndRePreparation) {
  test::TempDir dir;
  DatasetStore store(dir.path());
  DatasetSettings s = preset_settings(Preset::Custom, "acme");
  store.create("set", s);
  store.add_images("set", {from_mat(test::scene(800, 600, 1), "one", "red, watermark"),
                           from_mat(test::scene(800, 600, 2), "two", "blue, transparent background, watermark"),
                           from_mat(test::scene(800, 600, 3), "three")});

  store.set_caption("set", "0003", "green, acme, green");
  EXPECT_EQ(store.get("set").find("0003")->caption, "acme, green");
  EXPECT_THROW(store.set_caption("set", "9999", "x"), Error);

  TagEdit edit;
  edit.remove = {"watermark"};
  edit.move_to_end = {"transparent background"};
  edit.add = {"photo"};
  const Dataset edited = store.edit_tags("set", edit);
  EXPECT_EQ(edited.find("0002")->caption, "acme, blue, photo, transparent background");
  const auto stats = store.tag_stats("set");
  EXPECT_EQ(stats[0], (std::pair<std::string, int>{"acme", 3}));
  EXPECT_EQ(stats[1], (std::pair<std::string, int>{"photo", 3}));

  // Re-prepare with other settings: new repeat folder and trigger, bucketing, flips.
  DatasetSettings other = s;
  other.trigger = "acmeco";
  other.repeats = 5;
  other.size = SizeMode::Bucket;
  other.flip = true;
  std::vector<int> seen;
  Hooks hooks;
  hooks.progress = [&](int done, int, const std::string&) { seen.push_back(done); };
  const Dataset re = store.prepare("set", other, hooks);
  EXPECT_FALSE(fs::exists(re.folder / "10_acme"));
  EXPECT_TRUE(fs::is_regular_file(re.folder / "5_acmeco" / "0001_flip.png"));
  EXPECT_EQ(re.find("0002")->caption, "acmeco, blue, photo, transparent background");
  EXPECT_EQ(re.training_images, 6);
  EXPECT_EQ(re.estimated_steps, 6 * 5 * 10);
  const PngImage bucketed = read_png(re.folder / re.find("0001")->stored_file);
  EXPECT_EQ(bucketed.width % 64, 0);
  EXPECT_GT(bucketed.width, bucketed.height);
  EXPECT_EQ(seen.back(), 3);
  const DatasetFolder kohya = scan_kohya_folder(re.folder);
  EXPECT_EQ(kohya.image_count(), 6);
  EXPECT_EQ(kohya.subsets[0].images[1].caption, "acmeco, red, photo");  // 0001_flip.png

  store.remove_images("set", {"0001"});
  const Dataset after = store.get("set");
  EXPECT_EQ(after.images.size(), 2u);
  EXPECT_FALSE(fs::exists(after.folder / "5_acmeco" / "0001.png"));
  EXPECT_FALSE(fs::exists(after.folder / "5_acmeco" / "0001_flip.txt"));
  EXPECT_FALSE(fs::exists(after.folder / "originals" / "0001.png"));
  EXPECT_THROW(store.remove_images("set", {"0002", "nope"}), Error);
  EXPECT_EQ(store.get("set").images.size(), 2u);  // nothing removed when one id is unknown
}

TEST(DatasetStore, CancellationKeepsWhatWasDone) {
  test::TempDir dir;
  DatasetStore store(dir.path());
  store.create("set", {});
  int calls = 0;
  Hooks hooks;
  hooks.cancelled = [&] { return ++calls > 2; };
  std::vector<ImageInput> inputs;
  for (int i = 0; i < 5; ++i) inputs.push_back(from_mat(test::scene(600, 600, 40 + i), "img" + std::to_string(i)));
  try {
    store.add_images("set", inputs, hooks);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Cancelled);
    EXPECT_NE(std::string(e.what()).find("2 of 5"), std::string::npos) << e.what();
  }
  EXPECT_EQ(store.get("set").images.size(), 2u);

  // A cancelled re-preparation leaves the previous one in place.
  calls = 0;
  hooks.cancelled = [&] { return ++calls > 1; };
  DatasetSettings other = store.get("set").settings;
  other.repeats = 7;
  EXPECT_THROW(store.prepare("set", other, hooks), Error);
  const Dataset d = store.get("set");
  EXPECT_EQ(d.settings.repeats, 10);
  EXPECT_TRUE(fs::is_regular_file(d.folder / d.images[1].stored_file));
  EXPECT_FALSE(fs::exists(d.folder / "7_set"));
}

TEST(DatasetStore, InputsFromFoldersAndFiles) {
  test::TempDir dir;
  fs::create_directories(dir / "in" / "sub");
  for (const char* f : {"in/b.PNG", "in/a.jpg", "in/c.webp", "in/sub/d.png", "in/.hidden.png"})
    cv::imwrite((dir / f).string(), test::scene(32, 32));
  std::ofstream(dir / "in" / "a.txt") << "caption";
  std::ofstream(dir / "in" / "notes.md") << "#";
  const auto inputs = inputs_from_paths({dir / "in", dir / "gone.png"});
  std::vector<std::string> names;
  for (const auto& in : inputs) names.push_back(in.source_name);
  EXPECT_EQ(names, (std::vector<std::string>{"a.jpg", "b.PNG", "c.webp", "gone.png"}));
}

TEST(DatasetStore, AutoTagWithoutTaggerNamesWhatToInstall) {
  test::TempDir dir;
  DatasetStore store(dir.path());
  store.create("set", {});
  try {
    store.auto_tag("set", dir / "taggers" / "wd14");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::NotFound);
    EXPECT_NE(std::string(e.what()).find((dir / "taggers" / "wd14").string()), std::string::npos);
  }
}

}  // namespace
}  // namespace kiln::studio
