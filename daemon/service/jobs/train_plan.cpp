#include "service/jobs/train_plan.h"

#include <algorithm>
#include <fstream>

#include "engine/lora/buckets.h"
#include "service/library/model_registry.h"
#include "service/training/sample_prompts.h"
#include "service/training/train_config_engine.h"
#include "studio/dataset/kohya_folder.h"
#include "studio/error.h"
#include "studio/image.h"

namespace kiln::service {
namespace fs = std::filesystem;
namespace tr = training;
using Json = nlohmann::json;

namespace {

// Width and height of an image file: from a PNG's header (Kiln's datasets are PNGs), else decoded.
std::pair<int, int> image_size(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char h[24] = {};
  if (in.read(reinterpret_cast<char*>(h), sizeof h) && h[0] == 0x89 && h[1] == 'P' && h[2] == 'N' && h[3] == 'G') {
    const auto be32 = [&h](int at) { return (h[at] << 24) | (h[at + 1] << 16) | (h[at + 2] << 8) | h[at + 3]; };
    return {be32(16), be32(20)};
  }
  const cv::Mat decoded = studio::read_image_file(path);
  return {decoded.cols, decoded.rows};
}

// How many times a run of `count` units (epochs or steps) does something every `every` units, not
// counting the last unit (the job's final save and sample cover it).
int64_t times_before_end(const std::optional<int64_t>& every, int64_t count) {
  return every && *every > 0 && count > 0 ? (count - 1) / *every : 0;
}

}  // namespace

Json plan_training(const Json& params, const TrainJobDeps& deps) {
  Json request = params;
  if (request.value("name", "").empty()) {
    // The hosts plan before the user names the LoRA: the dataset's name, as they default to.
    const std::string data = request.value("data", "");
    request["name"] = request.value("dataset", data.empty() ? std::string("lora") : fs::path(data).filename().string());
  }
  const tr::TrainConfig config = train_config_from_request(request, deps);
  const fs::path root = config.dataset.empty() ? fs::path(config.train_data_dir) : deps.dataset_folder(config.dataset);

  std::vector<std::string> warnings;
  studio::DatasetFolder folder;
  try {
    folder = studio::scan_kohya_folder(root, config.is_set("caption_extension") ? config.caption_extension : "");
  } catch (const studio::Error& e) {
    warnings.push_back(std::string("There is nothing to train on yet: ") + e.what());
  }
  for (const auto& w : folder.warnings) warnings.push_back(w);

  tr::DatasetFacts facts;
  std::vector<engine::lora::DatasetImage> sizes;
  Json folders = Json::array();
  const int64_t short_limit = std::min(config.resolution.width, config.resolution.height);
  for (const auto& subset : folder.subsets) {
    tr::DatasetFolder f;
    f.name = subset.dir.filename().string();
    f.repeats = config.num_repeats.value_or(subset.repeats);
    for (const auto& image : subset.images) {
      int w = 0, h = 0;
      try {
        std::tie(w, h) = image_size(image.path);
      } catch (const std::exception& e) {
        warnings.push_back(std::string("This image cannot be read and would stop the training: ") + e.what());
        continue;
      }
      ++f.images;
      sizes.push_back({w, h, f.repeats});
      const int64_t short_side = std::min(w, h);
      facts.min_short_side = facts.min_short_side == 0 ? short_side : std::min(facts.min_short_side, short_side);
      if (short_side < short_limit) ++facts.low_resolution_images;
    }
    facts.folders.push_back(f);
    folders.push_back({{"name", f.name}, {"images", f.images}, {"repeats", f.repeats}});
  }
  engine::lora::StepPlan plan;
  if (!sizes.empty()) {
    plan = engine::lora::plan_steps(sizes, tr::bucket_options(config), tr::step_options(config));
    facts.total_steps = plan.max_train_steps;
  }
  if (!sizes.empty())
    for (const auto& w : tr::training_warnings(config, facts)) warnings.push_back(w);

  // What the run will write: a file per save_every_n_epochs / _steps and the final one; a sample
  // round per sample_every_n_epochs (else _steps), the final weights' and sample_at_first's.
  const bool samples_on = config.sample_every_n_epochs || config.sample_every_n_steps;
  int64_t prompts = 1;
  if (!config.sample_prompts.empty()) prompts = static_cast<int64_t>(tr::parse_sample_prompts(config.sample_prompts).prompts.size());
  const int64_t rounds = (config.sample_at_first ? 1 : 0) +
                         (config.sample_every_n_epochs ? times_before_end(config.sample_every_n_epochs, plan.epochs)
                                                       : times_before_end(config.sample_every_n_steps, plan.max_train_steps)) +
                         (samples_on ? 1 : 0);
  const int64_t files = sizes.empty() ? 0
                                      : times_before_end(config.save_every_n_epochs, plan.epochs) +
                                            times_before_end(config.save_every_n_steps, plan.max_train_steps) + 1;

  return {{"base", deps.models.resolve(config.pretrained_model_name_or_path).name},
          {"data", root.string()},
          {"config", tr::to_json(config)},
          {"origins", config.origins},
          {"resolution", {config.resolution.width, config.resolution.height}},
          {"folders", folders},
          {"images", sizes.size()},
          {"images_with_repeats", plan.images_with_repeats},
          {"batches_per_epoch", plan.batches_per_epoch},
          {"steps_per_epoch", plan.steps_per_epoch},
          {"epochs", plan.epochs},
          {"steps", plan.max_train_steps},
          {"files", files},
          {"sample_images", sizes.empty() ? 0 : rounds * prompts},
          {"warnings", warnings}};
}

}  // namespace kiln::service
