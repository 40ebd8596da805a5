#pragma once
// Filling a model from a checkpoint component. Modules register their parameters under the
// checkpoint's own (LDM / Hugging Face) names, so loading is one loop with no key tables.
#include <torch/nn/module.h>
#include <torch/types.h>

#include <functional>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "engine/device.h"

namespace kiln::engine {
class SafeTensorsFile;
}

namespace kiln::engine::models {

// One component's weights, by name without the component prefix: what the checkpoint loader's
// WeightSource provides. `get` may return a memory-mapped CPU view of any stored dtype.
struct WeightView {
  std::string component;  // for messages: "UNet", "VAE", "text encoder"
  std::vector<std::string> names;
  std::function<std::vector<int64_t>(const std::string&)> shape;
  std::function<torch::Tensor(const std::string&)> get;

  // Adapts anything with names(), shape(name) and get(name) (e.g. io::WeightSource). The source
  // must outlive the view.
  template <typename Source>
  static WeightView of(const Source& source, std::string component) {
    WeightView view;
    view.component = std::move(component);
    for (const auto& n : source.names()) view.names.emplace_back(n);
    view.shape = [&source](const std::string& n) {
      const auto s = source.shape(n);
      return std::vector<int64_t>(s.begin(), s.end());
    };
    view.get = [&source](const std::string& n) { return torch::Tensor(source.get(n)); };
    return view;
  }
};

// The tensors of `file` whose names start with `prefix`, with the prefix removed.
WeightView view_of_safetensors(std::shared_ptr<const SafeTensorsFile> file, const std::string& prefix,
                               std::string component);

// Name lookups for inferring an architecture from the weights.
class WeightIndex {
 public:
  explicit WeightIndex(const WeightView& view);
  bool has(const std::string& name) const { return names_.count(name) != 0; }
  // Shape of `name`; Error(BadFormat) naming the component when it is absent.
  std::vector<int64_t> shape(const std::string& name) const;
  int64_t dim(const std::string& name, size_t axis) const;
  // How many consecutive indices i = 0, 1, … have `prefix + i + suffix`.
  int64_t count(const std::string& prefix, const std::string& suffix) const;
  const WeightView& view() const { return view_; }

 private:
  const WeightView& view_;
  std::unordered_set<std::string> names_;
};

// Copies every parameter of `module` from `weights`, converting to the parameter's own device and
// dtype in that one copy. Missing or unexpected names, or a shape that differs, throw
// Error(BadFormat) naming them. `ignored` names (e.g. "text_model.embeddings.position_ids") may be
// present or not.
void load_weights(torch::nn::Module& module, const WeightView& weights, const std::vector<std::string>& ignored = {});

// Fills every parameter with seeded random values for benchmarks: weights ~ N(0, 1/fan_in),
// norm scales 1, biases 0. Deterministic for a seed on any device.
void randomize_weights(torch::nn::Module& module, uint64_t seed);

// Options for a module's parameters on `choice`.
torch::TensorOptions parameter_options(const DeviceChoice& choice);

}  // namespace kiln::engine::models
