#include "service/training/training_data.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

using namespace kiln::service::training;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("kiln-training-data-" + std::to_string(::getpid()) + "-" +
                                               std::to_string(reinterpret_cast<std::uintptr_t>(this)));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
};

void write_image(const fs::path& file, int w, int h, const std::string& caption = "") {
  fs::create_directories(file.parent_path());
  cv::imwrite(file.string(), cv::Mat(h, w, CV_8UC3, cv::Scalar(10, 20, 30)));
  if (!caption.empty()) std::ofstream(fs::path(file).replace_extension(".txt")) << caption;
}

TrainConfig config(std::vector<std::pair<std::string, std::string>> set = {}) {
  TrainConfig c;
  c.resolution = {512, 512};
  c.enable_bucket = true;
  c.train_batch_size = 2;
  c.max_train_epochs = 3;
  for (auto& [k, v] : set) {
    if (k == "keep_tokens") c.keep_tokens = std::stoll(v);
    if (k == "shuffle") c.shuffle_caption = true;
    if (k == "dropout") c.caption_dropout_rate = std::stod(v);
  }
  return c;
}

}  // namespace

TEST(TrainingData, ReadsBucketsCropsAndCountsStepsAsKohya) {
  TempDir dir;
  // 3 square, 2 portrait images in "4_sks"; 1 landscape in "2_style" without a caption file.
  for (int i = 0; i < 3; ++i) write_image(dir.path / "4_sks" / ("sq" + std::to_string(i) + ".png"), 600, 600, "sks, bottle");
  for (int i = 0; i < 2; ++i) write_image(dir.path / "4_sks" / ("pt" + std::to_string(i) + ".png"), 512, 768, "sks, tall");
  write_image(dir.path / "2_style" / "wide.jpg", 900, 600);
  const TrainingSet set = read_training_set(dir.path, config());
  ASSERT_EQ(set.images.size(), 6u);
  // kohya sorts the subsets by folder name: 2_style first.
  EXPECT_EQ(set.images[0].folder, "2_style");
  EXPECT_EQ(set.images[0].caption, "style") << "no caption file: the folder's class tokens, as kohya";
  EXPECT_EQ(set.images[0].repeats, 2);
  for (const auto& image : set.images) {
    EXPECT_EQ(image.pixels.cols, image.bucket.bucket.width);
    EXPECT_EQ(image.pixels.rows, image.bucket.bucket.height);
    EXPECT_EQ(image.pixels.type(), CV_8UC3);
    EXPECT_TRUE(image.pixels.isContinuous());
  }
  // Then 4_sks by file name: pt0, pt1, sq0, sq1, sq2.
  EXPECT_EQ(set.images[1].path.filename(), "pt0.png");
  EXPECT_LT(set.images[1].bucket.bucket.width, set.images[1].bucket.bucket.height);  // portrait stays portrait
  EXPECT_EQ(set.images[3].bucket.bucket, (kiln::engine::lora::Resolution{512, 512}));  // a square at the 512² budget
  // Σ images × repeats = 2 + 5·4 = 22; per bucket ceil(n / 2).
  EXPECT_EQ(set.plan.images_with_repeats, 22);
  int64_t batches = 0;
  for (const auto& b : set.plan.buckets) batches += (b.images + 1) / 2;
  EXPECT_EQ(set.plan.batches_per_epoch, batches);
  EXPECT_EQ(set.plan.max_train_steps, 3 * batches);

  const auto dirs = set.dataset_dirs();
  EXPECT_EQ(dirs.at("4_sks").at("img_count"), 5);
  EXPECT_EQ(dirs.at("4_sks").at("n_repeats"), 4);
  EXPECT_EQ(set.tag_frequency().at("4_sks").at("sks"), 5);
  EXPECT_EQ(set.tag_frequency().at("4_sks").at("tall"), 2);
  EXPECT_EQ(set.facts().images(), 6);
  EXPECT_EQ(set.facts().min_short_side, 512);
}

TEST(TrainingData, NumRepeatsOverridesTheFolderNames) {
  TempDir dir;
  write_image(dir.path / "10_a" / "x.png", 512, 512);
  TrainConfig c = config();
  c.num_repeats = 3;
  EXPECT_EQ(read_training_set(dir.path, c).plan.images_with_repeats, 3);
}

TEST(TrainingData, EveryUndecodableImageIsNamedBeforeAnyWork) {
  TempDir dir;
  write_image(dir.path / "5_a" / "good.png", 512, 512);
  std::ofstream(dir.path / "5_a" / "broken.png") << "not a png";
  std::ofstream(dir.path / "5_a" / "cut.jpg") << "\xff\xd8\xff";
  try {
    read_training_set(dir.path, config());
    FAIL() << "undecodable images must stop the run";
  } catch (const ConfigError& e) {
    ASSERT_EQ(e.problems().size(), 2u);
    const std::string all = e.what();
    EXPECT_NE(all.find("broken.png"), std::string::npos) << all;
    EXPECT_NE(all.find("cut.jpg"), std::string::npos) << all;
  }
}

TEST(TrainingData, EpochOrderDependsOnlyOnSeedAndEpochAndCoversEveryRepeat) {
  TempDir dir;
  for (int i = 0; i < 5; ++i) write_image(dir.path / "3_a" / ("s" + std::to_string(i) + ".png"), 512, 512);
  for (int i = 0; i < 2; ++i) write_image(dir.path / "3_a" / ("p" + std::to_string(i) + ".png"), 512, 768);
  const TrainingSet set = read_training_set(dir.path, config());
  const auto a = epoch_batches(set, 2, 42, 1), again = epoch_batches(set, 2, 42, 1), next = epoch_batches(set, 2, 42, 2),
             other = epoch_batches(set, 2, 43, 1);
  auto flat = [](const std::vector<TrainingBatch>& batches) {
    std::vector<int> out;
    for (const auto& b : batches) out.insert(out.end(), b.images.begin(), b.images.end());
    return out;
  };
  EXPECT_EQ(flat(a), flat(again));
  EXPECT_NE(flat(a), flat(next));
  EXPECT_NE(flat(a), flat(other));
  EXPECT_EQ(static_cast<int64_t>(a.size()), set.plan.batches_per_epoch);
  std::map<int, int> seen;
  for (const auto& b : a) {
    EXPECT_LE(b.images.size(), 2u);
    for (int i : b.images) {
      ++seen[i];
      EXPECT_EQ(set.images[static_cast<std::size_t>(i)].bucket.bucket, b.bucket) << "a batch never mixes buckets";
    }
  }
  ASSERT_EQ(seen.size(), 7u);
  for (auto [image, n] : seen) EXPECT_EQ(n, 3) << "each image once per repeat";
}

TEST(TrainingData, CaptionsShuffleAfterKeepTokensAndDropOut) {
  const std::string caption = "sks, red, bottle, marble, studio light, shadow";
  TrainConfig plain = config();
  auto rng = batch_rng(1, 1, 0);
  EXPECT_EQ(training_caption(caption, plain, rng), caption);

  TrainConfig shuffle = config({{"shuffle", ""}, {"keep_tokens", "1"}});
  bool changed = false;
  for (std::size_t b = 0; b < 20; ++b) {
    auto r = batch_rng(1, 1, b);
    const std::string out = training_caption(caption, shuffle, r);
    EXPECT_EQ(out.rfind("sks, ", 0), 0u) << "keep_tokens 1 keeps the trigger first: " << out;
    EXPECT_EQ(out.size(), caption.size());
    changed = changed || out != caption;
    auto r2 = batch_rng(1, 1, b);
    EXPECT_EQ(out, training_caption(caption, shuffle, r2)) << "the same batch draws the same caption";
  }
  EXPECT_TRUE(changed);

  TrainConfig dropout = config({{"dropout", "0.5"}});
  int empty = 0;
  for (std::size_t b = 0; b < 200; ++b) {
    auto r = batch_rng(7, 1, b);
    empty += training_caption(caption, dropout, r).empty();
  }
  EXPECT_GT(empty, 60);
  EXPECT_LT(empty, 140);
}
