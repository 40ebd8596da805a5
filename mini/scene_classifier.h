#pragma once
// The quality gate's judge (issue 23): a small convolutional classifier trained on the scene
// generator's own labels that reads a 64×64 picture's object class, object colour and surface.
// It is trained on generated scenes passed through Kiln Mini's VAE (encode, decode), so it sees
// the same softness as the pictures the model generates, and its accuracy on held-out generated
// scenes is reported beside the model's, as the ceiling of what it can read.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>
#include <torch/types.h>

#include "studio/mini/scene_spec.h"

namespace kiln::mini {

struct SceneLabels {
  torch::Tensor object, colour, surface;  // int64 [B]: indexes into object_classes() … surface_names()
};
SceneLabels labels_of(const std::vector<studio::mini::SceneSpec>& specs);

struct SceneLogits {
  torch::Tensor object, colour, surface;  // [B, classes]
};

class SceneClassifierImpl : public torch::nn::Module {
 public:
  SceneClassifierImpl();
  // pictures: [B, 3, H, W] RGB in [-1, 1] (any H, W ≥ 16: global pooling at the end).
  SceneLogits forward(const torch::Tensor& pictures);

 private:
  torch::nn::Sequential features_{nullptr};
  torch::nn::Linear object_{nullptr}, colour_{nullptr}, surface_{nullptr};
};
TORCH_MODULE(SceneClassifier);

struct ClassifierTraining {
  int64_t steps = 1500;
  int64_t batch = 64;
  double lr = 2e-3;
  uint64_t seed = 7;
  std::function<void(int64_t step, double loss)> on_progress;  // every 50 steps
};

// Trains on `pictures` (uint8 [N, 3, H, W] RGB) with `labels`: AdamW, cosine decay, random
// horizontal flips. Deterministic for a given seed and thread count.
void train_scene_classifier(SceneClassifier& model, const torch::Tensor& pictures, const SceneLabels& labels,
                            const ClassifierTraining& options);

struct SceneGuess {
  torch::Tensor object, colour, surface;  // int64 [B]: the arg-max class
};
// pictures: uint8 [B, 3, H, W] RGB.
SceneGuess classify(SceneClassifier& model, const torch::Tensor& pictures);

void save_scene_classifier(SceneClassifier& model, const std::filesystem::path& path);
// Error(NotFound / BadFormat) naming the file.
void load_scene_classifier(SceneClassifier& model, const std::filesystem::path& path);

}  // namespace kiln::mini
