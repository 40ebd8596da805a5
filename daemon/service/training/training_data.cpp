#include "service/training/training_data.h"

#include <algorithm>
#include <map>

#include "studio/dataset/captions.h"
#include "studio/dataset/kohya_folder.h"
#include "studio/dataset/training_image.h"
#include "studio/error.h"
#include "studio/image.h"
#include "service/training/text_util.h"
#include "service/training/train_steps.h"

namespace kiln::service::training {
namespace fs = std::filesystem;

TrainingSet read_training_set(const fs::path& root, const TrainConfig& config, const ReadProgress& progress) {
  TrainingSet set;
  set.root = root;
  const studio::DatasetFolder folder =
      studio::scan_kohya_folder(root, config.is_set("caption_extension") ? config.caption_extension : "");
  set.warnings = folder.warnings;

  const engine::lora::BucketManager buckets(bucket_options(config));
  std::vector<std::string> unreadable;
  std::size_t total = 0, done = 0;
  for (const auto& subset : folder.subsets) total += subset.images.size();
  for (const auto& subset : folder.subsets) {
    const std::string folder_name = subset.dir.filename().string();
    for (const auto& file : subset.images) {
      TrainingImage image;
      image.path = file.path;
      image.folder = folder_name;
      image.repeats = config.num_repeats.value_or(subset.repeats);
      image.caption = file.caption.value_or(subset.class_tokens);
      try {
        const cv::Mat decoded = studio::read_image_file(file.path);
        image.width = decoded.cols;
        image.height = decoded.rows;
        image.bucket = buckets.select(decoded.cols, decoded.rows);
        image.pixels = studio::prepare_training_image(
            decoded,
            {static_cast<int>(image.bucket.resized_size.width), static_cast<int>(image.bucket.resized_size.height),
             static_cast<int>(image.bucket.bucket.width), static_cast<int>(image.bucket.bucket.height)},
            file.path.string());
        set.images.push_back(std::move(image));
      } catch (const std::exception& e) {
        unreadable.push_back(e.what());
      }
      if (progress) progress(++done, total, file.path.filename().string());
    }
  }
  if (!unreadable.empty()) {
    std::vector<std::string> problems;
    for (const auto& u : unreadable)
      problems.push_back("train_data_dir: " + u + " (fix or remove the file, then start the training again)");
    throw ConfigError(problems);
  }

  std::vector<engine::lora::DatasetImage> sizes;
  for (const auto& image : set.images) sizes.push_back({image.width, image.height, image.repeats});
  set.plan = engine::lora::plan_steps(sizes, bucket_options(config), step_options(config));
  return set;
}

DatasetFacts TrainingSet::facts() const {
  DatasetFacts facts;
  std::map<std::string, DatasetFolder> folders;
  int64_t min_short = 0;
  for (const auto& image : images) {
    auto& f = folders[image.folder];
    f.name = image.folder;
    f.repeats = image.repeats;
    ++f.images;
    const int64_t short_side = std::min(image.width, image.height);
    min_short = min_short == 0 ? short_side : std::min(min_short, short_side);
  }
  for (auto& [name, f] : folders) facts.folders.push_back(f);
  facts.min_short_side = min_short;
  facts.total_steps = plan.max_train_steps;
  return facts;
}

nlohmann::json TrainingSet::tag_frequency() const {
  // kohya: per subset folder, how many captions hold each tag (split on ",", stripped).
  std::map<std::string, std::vector<std::string>> captions;
  for (const auto& image : images) captions[image.folder].push_back(image.caption);
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [folder, list] : captions) {
    nlohmann::json tags = nlohmann::json::object();
    for (const auto& [tag, count] : studio::tag_frequency(list)) tags[tag] = count;
    out[folder] = tags;
  }
  return out;
}

nlohmann::json TrainingSet::dataset_dirs() const {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& image : images) {
    auto& dir = out[image.folder];
    dir["n_repeats"] = image.repeats;
    dir["img_count"] = dir.value("img_count", 0) + 1;
  }
  return out;
}

nlohmann::json TrainingSet::bucket_info() const {
  // kohya: {"buckets": {"0": {"resolution": [w, h], "count": n}, ...}, "mean_img_ar_error": e}
  nlohmann::json buckets = nlohmann::json::object();
  for (std::size_t i = 0; i < plan.buckets.size(); ++i)
    buckets[std::to_string(i)] = {{"resolution", {plan.buckets[i].resolution.width, plan.buckets[i].resolution.height}},
                                  {"count", plan.buckets[i].images}};
  double error = 0;
  for (const auto& choice : plan.per_image) error += std::abs(choice.ar_error);
  return {{"buckets", buckets}, {"mean_img_ar_error", plan.per_image.empty() ? 0.0 : error / double(plan.per_image.size())}};
}

std::mt19937_64 batch_rng(uint64_t seed, int64_t epoch, std::size_t batch_index) {
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), static_cast<uint32_t>(epoch),
                    static_cast<uint32_t>(batch_index), 0x6b696c6eu};
  return std::mt19937_64(seq);
}

std::vector<TrainingBatch> epoch_batches(const TrainingSet& set, int64_t batch_size, uint64_t seed, int64_t epoch) {
  std::map<engine::lora::Resolution, std::vector<int>> buckets;  // sorted by resolution, as kohya
  for (std::size_t i = 0; i < set.images.size(); ++i)
    for (int64_t r = 0; r < set.images[i].repeats; ++r) buckets[set.images[i].bucket.bucket].push_back(static_cast<int>(i));
  std::mt19937_64 rng = batch_rng(seed, epoch, static_cast<std::size_t>(-1));
  std::vector<TrainingBatch> batches;
  for (auto& [resolution, entries] : buckets) {
    std::shuffle(entries.begin(), entries.end(), rng);
    for (std::size_t at = 0; at < entries.size(); at += static_cast<std::size_t>(batch_size)) {
      TrainingBatch b;
      b.bucket = resolution;
      b.images.assign(entries.begin() + static_cast<std::ptrdiff_t>(at),
                      entries.begin() + static_cast<std::ptrdiff_t>(std::min(entries.size(), at + static_cast<std::size_t>(batch_size))));
      batches.push_back(std::move(b));
    }
  }
  std::shuffle(batches.begin(), batches.end(), rng);
  return batches;
}

std::string training_caption(const std::string& caption, const TrainConfig& config, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  if (config.caption_dropout_rate > 0 && uniform(rng) < config.caption_dropout_rate) return "";
  if (!config.shuffle_caption) return caption;
  // kohya splits on "," and strips each piece (empty pieces stay, as in kohya).
  std::vector<std::string> tokens;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = caption.find(',', start);
    tokens.push_back(trim(caption.substr(start, comma == std::string::npos ? std::string::npos : comma - start)));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  const auto keep = static_cast<std::size_t>(std::min<int64_t>(config.keep_tokens, static_cast<int64_t>(tokens.size())));
  std::shuffle(tokens.begin() + static_cast<std::ptrdiff_t>(keep), tokens.end(), rng);
  std::string out;
  for (std::size_t i = 0; i < tokens.size(); ++i) out += (i ? ", " : "") + tokens[i];
  return out;
}

}  // namespace kiln::service::training
