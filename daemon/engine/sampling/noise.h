#pragma once
// Seeds and noise as A1111 makes them with its "CPU" RNG source, so a seed gives the same image as
// there: image i of a generation gets seed + i and its own CPU generator seeded with it. The
// generator's first draw is the initial latent noise; ancestral samplers keep drawing from the same
// generator, one latent-shaped draw per step.
#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <cstdint>
#include <vector>

namespace kiln::engine::sampling {

// −1 (or any negative seed) → a random seed in [0, 2³²−1), as A1111 picks them; others unchanged.
int64_t resolve_seed(int64_t seed);

class ImageNoise {
 public:
  // One stream per seed; `shape` is one image's latent shape [C, h, w].
  ImageNoise(const std::vector<int64_t>& seeds, std::vector<int64_t> shape);

  // [seeds, C, h, w] on `device` as `dtype`: each image's next standard-normal draw.
  torch::Tensor next(const torch::Device& device, torch::Dtype dtype = torch::kFloat32);

 private:
  std::vector<at::Generator> generators_;
  std::vector<int64_t> shape_;
};

}  // namespace kiln::engine::sampling
