#pragma once
// The `train` job: a kohya-compatible LoRA training run on the device worker.
//
//   prepare   the config (preset < file < request < --set, resolved once and saved with the job so
//             a resumed run uses the very same values), the images (decoded, bucketed, cropped),
//             the base model, the network and the trainer; optionally the cached latents
//   train     epochs of shuffled bucket batches; the job yields to interactive work between steps
//             (the network is detached meanwhile, so a generate request sees the plain model)
//   save      <loras>/<name>/<name>-000001.safetensors ... per save_every_n_epochs, the final
//             <name>.safetensors, config.json, a kohya TOML, loss.csv/json, loss.png, samples/
//   resume    the trainer state (weights, optimizer, RNG, counters) goes to jobs/<id>/state with
//             every saved file and at a daemon shutdown; a restarted daemon continues from there and
//             finishes with the weights an uninterrupted run would have
#include <filesystem>
#include <functional>
#include <string>

#include "service/jobs/job_context.h"
#include "service/training/train_config.h"

namespace kiln::service {

struct Compute;
class LoraLibrary;
class ModelRegistry;

// Maps a Kiln dataset name to its kohya folder; throws ServiceError(NotFound) when there is none.
using DatasetResolver = std::function<std::filesystem::path(const std::string& name)>;

struct TrainJobDeps {
  Compute& compute;
  ModelRegistry& models;
  LoraLibrary& loras;
  DatasetResolver dataset_folder;
};

// The config a `train` request asks for, checked as the job would check it. Throws
// ServiceError(InvalidParams) listing every problem (data: {"problems": [...]}).
training::TrainConfig train_config_from_request(const Json& params, const TrainJobDeps& deps);

JobType make_train_job_type(TrainJobDeps deps);

}  // namespace kiln::service
