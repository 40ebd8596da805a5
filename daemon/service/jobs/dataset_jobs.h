#pragma once
// The dataset jobs: datasets.add_images (import, prepare and check images), datasets.prepare
// (prepare every image again, with changed settings) and datasets.auto_tag (an installed WD1.4
// tagger). They are interactive: someone is waiting for them in a plugin or at the prompt, and
// they take seconds to minutes, so a training job yields to them between its steps. Each image is
// a unit of progress and a point where a cancel takes effect; images done before a cancel stay.
#include <filesystem>
#include <vector>

#include "service/jobs/job_context.h"
#include "studio/dataset/dataset_store.h"

namespace kiln::service {

// Pixels of datasets.add_images' "images", copied out of the clients' blocks at submission.
struct DatasetImportInputs {
  std::vector<studio::ImageInput> images;
};

// The dataset settings among a request's params (datasets.create / datasets.prepare), over
// `base`; a "preset" resets the defaults first. nullopt when the params name none.
// Throws studio::Error(InvalidArgument) naming the key.
std::optional<studio::DatasetSettings> dataset_settings_from_params(const Json& params, const studio::DatasetSettings& base);

// `tagger` is a folder name under `taggers_dir` (default "wd14"); validated as a library name.
std::filesystem::path tagger_folder(const std::filesystem::path& taggers_dir, const Json& params);

JobType make_dataset_add_images_job_type(studio::DatasetStore& store);
JobType make_dataset_prepare_job_type(studio::DatasetStore& store);
JobType make_dataset_auto_tag_job_type(studio::DatasetStore& store, std::filesystem::path taggers_dir);

}  // namespace kiln::service
