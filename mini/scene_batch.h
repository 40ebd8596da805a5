#pragma once
// Kiln Mini's generated scenes as training tensors, shared by kiln-train-base, the quality gate
// and the learning test: seeded batches of scenes, their pictures as RGB float tensors in [-1, 1],
// their captions as CLIP token ids, and the conversions back to OpenCV pictures.
#include <cstdint>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <torch/types.h>

#include "studio/mini/scene_spec.h"

namespace kiln::mini {

// Seed ranges that never meet: training streams stay below 2^40 (run seed << 32, stage << 36),
// the trainer's validation pictures start at 2^40, the quality gate's held-out captions at 2^41,
// the pictures its classifier learns from at 3·2^40.
constexpr uint64_t kValidationSeedBase = 1ull << 40;
constexpr uint64_t kGateSeedBase = 1ull << 41;
constexpr uint64_t kClassifierSeedBase = 3ull << 40;

struct SceneBatch {
  torch::Tensor images;  // [B, 3, H, W] float32 in [-1, 1], RGB
  std::vector<std::string> captions;
  std::vector<studio::mini::SceneSpec> specs;
  std::vector<cv::Mat> bgr;  // the pictures as drawn (CV_8UC3)
};

// Scenes first_seed … first_seed + count − 1 (random_spec and render_scene with the same seed).
SceneBatch make_scene_batch(uint64_t first_seed, int64_t count, int size);

// BGR uint8 pictures (all the same size) → RGB float [B, 3, H, W] in [-1, 1].
torch::Tensor to_tensor(const std::vector<cv::Mat>& pictures);
// [3, H, W] in [-1, 1] → BGR uint8.
cv::Mat to_bgr(const torch::Tensor& image);
// uint8 [H, W, 3] RGB (the pipeline's images) → BGR uint8.
cv::Mat hwc_to_bgr(const torch::Tensor& rgb);
// Captions → [B, 77] int64 CLIP ids with the bundled vocabulary.
torch::Tensor token_ids(const std::vector<std::string>& captions);

}  // namespace kiln::mini
