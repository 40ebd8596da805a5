#include "engine/io/weight_source.h"

#include <algorithm>
#include <functional>
#include <numeric>

#include <torch/torch.h>

#include "engine/error.h"
#include "engine/io/safetensors.h"

namespace kiln::engine {

namespace {
int64_t numel_of(const std::vector<int64_t>& shape) {
  return std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<int64_t>());
}
}  // namespace

WeightSource WeightSource::from_tensors(std::string component, const std::map<std::string, torch::Tensor>& tensors) {
  WeightSource source(std::move(component));
  for (const auto& [name, t] : tensors) {
    Entry e;
    e.tensor = t.to(torch::kCPU).contiguous();
    e.shape = e.tensor.sizes().vec();
    source.entries_.emplace(name, std::move(e));
    source.names_.push_back(name);
  }
  return source;  // std::map iteration: names_ already sorted
}

void WeightSource::add(const std::string& name, std::shared_ptr<const SafeTensorsFile> file, const std::string& stored,
                       std::vector<int64_t> shape) {
  const auto& stored_shape = file->info(stored).shape;
  if (numel_of(stored_shape) != numel_of(shape))
    throw Error(ErrorKind::Internal, "cannot view " + stored + " as a tensor of a different size");
  if (entries_.count(name))
    throw Error(ErrorKind::BadFormat, "'" + file->path().string() + "' holds the " + component_ + " weight '" + name +
                                          "' twice (as '" + entries_.at(name).stored + "' and '" + stored +
                                          "'); the checkpoint is malformed, export it again.");
  entries_.emplace(name, Entry{std::move(file), stored, std::move(shape), {}});
  names_.insert(std::upper_bound(names_.begin(), names_.end(), name), name);
}

void WeightSource::add_part(const std::string& name, std::shared_ptr<const SafeTensorsFile> file,
                            const std::string& stored, int64_t part, int64_t parts, bool transpose) {
  std::vector<int64_t> shape = file->info(stored).shape;
  const std::string where = "'" + file->path().string() + "' : '" + stored + "'";
  if (part >= 0) {
    if (shape.empty() || parts < 1 || part >= parts || shape[0] % parts != 0)
      throw Error(ErrorKind::BadFormat, where + " has shape " + c10::str(shape) + ", which does not split into " +
                                            std::to_string(parts) + " equal parts (q, k, v); the file is damaged.");
    shape[0] /= parts;
  }
  if (transpose) {
    if (shape.size() != 2)
      throw Error(ErrorKind::BadFormat, where + " should be a matrix, it has shape " + c10::str(shape) + ".");
    std::swap(shape[0], shape[1]);
  }
  if (entries_.count(name))
    throw Error(ErrorKind::BadFormat, "'" + file->path().string() + "' holds the " + component_ + " weight '" + name +
                                          "' twice; the checkpoint is malformed, export it again.");
  Entry e{std::move(file), stored, std::move(shape), {}};
  e.part = part;
  e.parts = parts;
  e.transpose = transpose;
  entries_.emplace(name, std::move(e));
  names_.insert(std::upper_bound(names_.begin(), names_.end(), name), name);
}

const WeightSource::Entry& WeightSource::entry(const std::string& name) const {
  const auto it = entries_.find(name);
  if (it == entries_.end())
    throw Error(ErrorKind::NotFound, "The " + component_ + " weights have no tensor '" + name +
                                         "'; the checkpoint is incomplete or of a model type Kiln does not support.");
  return it->second;
}

const std::vector<int64_t>& WeightSource::shape(const std::string& name) const { return entry(name).shape; }

torch::ScalarType WeightSource::dtype(const std::string& name) const {
  const Entry& e = entry(name);
  if (!e.file) return e.tensor.scalar_type();
  return scalar_type(e.file->info(e.stored));  // from the header, without touching data
}

torch::Tensor WeightSource::get(const std::string& name) const {
  const Entry& e = entry(name);
  if (!e.file) return e.tensor;
  torch::Tensor t = e.file->tensor(e.stored);
  if (e.part >= 0 || e.transpose) {
    if (e.part >= 0) t = t.chunk(e.parts, 0)[e.part];
    return e.transpose ? t.t() : t;
  }
  return t.sizes() == torch::IntArrayRef(e.shape) ? t : t.view(e.shape);
}

std::string WeightSource::origin(const std::string& name) const {
  const Entry& e = entry(name);
  return e.file ? e.file->path().string() + " : " + e.stored : "(in memory) " + name;
}

}  // namespace kiln::engine
