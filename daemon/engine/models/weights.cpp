#include "engine/models/weights.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "engine/error.h"
#include "engine/io/safetensors.h"

namespace kiln::engine::models {

namespace {
std::string shape_str(torch::IntArrayRef s) {
  std::ostringstream out;
  out << s;
  return out.str();
}

// "a, b, c and 12 more"
std::string list_names(const std::vector<std::string>& names, size_t shown = 6) {
  std::string s;
  for (size_t i = 0; i < names.size() && i < shown; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > shown) s += " and " + std::to_string(names.size() - shown) + " more";
  return s;
}
}  // namespace

WeightView view_of_safetensors(std::shared_ptr<const SafeTensorsFile> file, const std::string& prefix,
                               std::string component) {
  WeightView view;
  view.component = std::move(component);
  for (const auto& info : file->tensors())
    if (info.name.compare(0, prefix.size(), prefix) == 0) view.names.push_back(info.name.substr(prefix.size()));
  view.shape = [file, prefix](const std::string& n) { return file->info(prefix + n).shape; };
  view.get = [file, prefix](const std::string& n) { return file->tensor(prefix + n); };
  return view;
}

WeightIndex::WeightIndex(const WeightView& view) : view_(view), names_(view.names.begin(), view.names.end()) {}

std::vector<int64_t> WeightIndex::shape(const std::string& name) const {
  if (!has(name))
    throw Error(ErrorKind::BadFormat, "the " + view_.component + " weights have no '" + name +
                                          "', so this is not a Stable Diffusion 1.x/2.x " + view_.component +
                                          " Kiln can read; check that the file is a complete checkpoint");
  return view_.shape(name);
}

int64_t WeightIndex::dim(const std::string& name, size_t axis) const {
  const auto s = shape(name);
  if (axis >= s.size())
    throw Error(ErrorKind::BadFormat, "the " + view_.component + " weight '" + name + "' has shape " + shape_str(s) +
                                          ", which is not the layout Kiln expects");
  return s[axis];
}

int64_t WeightIndex::count(const std::string& prefix, const std::string& suffix) const {
  int64_t i = 0;
  while (has(prefix + std::to_string(i) + suffix)) ++i;
  return i;
}

void load_weights(torch::nn::Module& module, const WeightView& weights, const std::vector<std::string>& ignored) {
  const auto params = module.named_parameters(/*recurse=*/true);
  std::unordered_set<std::string> available(weights.names.begin(), weights.names.end());
  const std::unordered_set<std::string> skip(ignored.begin(), ignored.end());

  std::vector<std::string> missing, unexpected;
  for (const auto& p : params)
    if (!available.count(p.key())) missing.push_back(p.key());
  std::unordered_set<std::string> wanted;
  for (const auto& p : params) wanted.insert(p.key());
  for (const auto& n : weights.names)
    if (!wanted.count(n) && !skip.count(n)) unexpected.push_back(n);
  if (!missing.empty() || !unexpected.empty()) {
    std::sort(missing.begin(), missing.end());
    std::sort(unexpected.begin(), unexpected.end());
    std::string msg = "the " + weights.component + " weights do not match the architecture read from their shapes:";
    if (!missing.empty()) msg += " missing " + std::to_string(missing.size()) + " (" + list_names(missing) + ")";
    if (!missing.empty() && !unexpected.empty()) msg += ";";
    if (!unexpected.empty())
      msg += " unexpected " + std::to_string(unexpected.size()) + " (" + list_names(unexpected) + ")";
    msg += ". The file is incomplete or belongs to a model family Kiln does not support yet.";
    throw Error(ErrorKind::BadFormat, msg);
  }

  torch::NoGradGuard no_grad;
  for (const auto& p : params) {
    auto target = p.value();
    const auto source = weights.get(p.key());
    if (source.sizes() != target.sizes())
      throw Error(ErrorKind::BadFormat, "the " + weights.component + " weight '" + p.key() + "' has shape " +
                                            shape_str(source.sizes()) + " but the architecture needs " +
                                            shape_str(target.sizes()) + "; the file is damaged or mixes models");
    if (!source.is_floating_point())
      throw Error(ErrorKind::BadFormat, "the " + weights.component + " weight '" + p.key() +
                                            "' is stored as integers; a model weight must be floating point");
    target.copy_(source);  // device and dtype conversion in the same copy
  }
}

void randomize_weights(torch::nn::Module& module, uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (auto& p : module.named_parameters(/*recurse=*/true)) {
    auto t = p.value();
    const auto& name = p.key();
    const bool is_bias = name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0;
    if (is_bias) {
      t.zero_();
    } else if (t.dim() == 1) {
      t.fill_(1.0);  // norm scales
    } else {
      const int64_t fan_in = t.numel() / t.size(0);
      auto values = torch::randn(t.sizes(), gen, torch::kFloat32);
      t.copy_(values.mul_(1.0 / std::sqrt(static_cast<double>(fan_in))));
    }
  }
}

torch::TensorOptions parameter_options(const DeviceChoice& choice) {
  return torch::TensorOptions().device(choice.device).dtype(choice.dtype);
}

}  // namespace kiln::engine::models
