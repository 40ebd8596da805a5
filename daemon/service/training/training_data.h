#pragma once
// What a training run trains on, prepared once when the job starts: every image of the kohya
// folder decoded, assigned its bucket and cropped (kohya's BucketManager + trim_and_resize), its
// caption read; then, per epoch, the batches in a shuffled order that depends only on the seed and
// the epoch number, so a resumed run sees exactly the batches an uninterrupted one would.
// No LibTorch: the train job turns the pixels into tensors.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "engine/lora/buckets.h"
#include "service/training/train_config.h"

namespace kiln::service::training {

struct TrainingImage {
  std::filesystem::path path;
  std::string folder;   // "20_product": the kohya subset it came from
  int64_t repeats = 1;
  std::string caption;  // as read (kohya: the folder's class tokens when there is no caption file)
  int width = 0, height = 0;         // of the file
  engine::lora::BucketChoice bucket;
  cv::Mat pixels;                    // RGB u8, bucket-sized, continuous
};

struct TrainingSet {
  std::filesystem::path root;             // the kohya train_data_dir
  std::vector<TrainingImage> images;      // sorted as kohya sorts them (folder, then file)
  engine::lora::StepPlan plan;
  std::vector<std::string> warnings;      // from reading the folder (ignored folders, ...)
  DatasetFacts facts() const;             // for training_warnings()
  // kohya's metadata about the data: ss_tag_frequency, ss_dataset_dirs, ss_bucket_info (JSON text).
  nlohmann::json tag_frequency() const;
  nlohmann::json dataset_dirs() const;
  nlohmann::json bucket_info() const;
};

// Called after each image is read (done of total), to report progress and let the job stop.
using ReadProgress = std::function<void(std::size_t done, std::size_t total, const std::string& file)>;

// Reads `root` (config.train_data_dir, or the folder of a Kiln dataset). Repeats come from the
// "N_name" folder names unless config.num_repeats is set, which then applies to every folder.
// Images that cannot be decoded are one ConfigError listing every such file, thrown before any
// training work (the run would otherwise fail halfway).
TrainingSet read_training_set(const std::filesystem::path& root, const TrainConfig& config,
                              const ReadProgress& progress = {});

struct TrainingBatch {
  engine::lora::Resolution bucket;
  std::vector<int> images;  // indices into TrainingSet::images (an image appears once per repeat)
};

// Epoch `epoch` (1-based): each bucket's entries (image × repeats) shuffled and cut into batches
// of batch_size, then the batches shuffled (kohya shuffle_buckets). Same seed and epoch, same order.
std::vector<TrainingBatch> epoch_batches(const TrainingSet& set, int64_t batch_size, uint64_t seed, int64_t epoch);

// The caption one step trains with (kohya process_caption): dropped to "" with
// caption_dropout_rate, else with shuffle_caption the tags after the first keep_tokens shuffled.
std::string training_caption(const std::string& caption, const TrainConfig& config, std::mt19937_64& rng);

// The generator for the caption draws of one batch: a function of seed, epoch and batch index.
std::mt19937_64 batch_rng(uint64_t seed, int64_t epoch, std::size_t batch_index);

}  // namespace kiln::service::training
