#include "engine/sampling/noise.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <random>

namespace kiln::engine::sampling {

int64_t resolve_seed(int64_t seed) {
  if (seed >= 0) return seed;
  std::random_device rd;
  std::uniform_int_distribution<int64_t> pick(0, 4294967293LL);
  return pick(rd);
}

ImageNoise::ImageNoise(const std::vector<int64_t>& seeds, std::vector<int64_t> shape) : shape_(std::move(shape)) {
  generators_.reserve(seeds.size());
  for (auto s : seeds) generators_.push_back(at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(s)));
}

torch::Tensor ImageNoise::next(const torch::Device& device, torch::Dtype dtype) {
  std::vector<torch::Tensor> draws;
  draws.reserve(generators_.size());
  // Drawn on the CPU in float32 whatever the device, so seeds reproduce everywhere.
  for (auto& g : generators_) draws.push_back(torch::randn(shape_, g, torch::kFloat32));
  return torch::stack(draws).to(device, dtype);
}

}  // namespace kiln::engine::sampling
