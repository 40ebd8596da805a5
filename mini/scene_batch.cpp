#include "scene_batch.h"

#include <stdexcept>

#include "engine/text/clip_tokenizer.h"
#include "studio/mini/scene_generator.h"

namespace kiln::mini {

SceneBatch make_scene_batch(uint64_t first_seed, int64_t count, int size) {
  studio::mini::GeneratorOptions g;
  g.size = size;
  SceneBatch b;
  for (int64_t i = 0; i < count; ++i) {
    const uint64_t seed = first_seed + static_cast<uint64_t>(i);
    const auto spec = studio::mini::random_spec(seed, g);
    auto scene = studio::mini::render_scene(spec, seed, g);
    b.bgr.push_back(scene.image);
    b.captions.push_back(scene.caption);
    b.specs.push_back(spec);
  }
  b.images = to_tensor(b.bgr);
  return b;
}

// One copy per picture into a [B, H, W, 3] block, then tensor ops (no per-pixel loops).
torch::Tensor to_tensor(const std::vector<cv::Mat>& pictures) {
  const int64_t B = static_cast<int64_t>(pictures.size());
  const int64_t H = pictures.at(0).rows, W = pictures.at(0).cols;
  auto block = torch::empty({B, H, W, 3}, torch::kUInt8);
  for (int64_t i = 0; i < B; ++i) {
    cv::Mat m = pictures[static_cast<size_t>(i)];
    if (m.type() != CV_8UC3 || m.rows != H || m.cols != W)
      throw std::runtime_error("a scene picture is not " + std::to_string(W) + "×" + std::to_string(H) + " BGR");
    if (!m.isContinuous()) m = m.clone();
    block[i].copy_(torch::from_blob(m.data, {H, W, 3}, torch::kUInt8));
  }
  return block.permute({0, 3, 1, 2}).flip({1}).to(torch::kFloat32).div_(127.5).sub_(1.0).contiguous();
}

cv::Mat to_bgr(const torch::Tensor& image) {
  auto t = image.detach().to(torch::kFloat32).add(1.0).mul(127.5).clamp(0, 255).to(torch::kUInt8);
  t = t.flip({0}).permute({1, 2, 0}).contiguous();
  return cv::Mat(static_cast<int>(t.size(0)), static_cast<int>(t.size(1)), CV_8UC3, t.data_ptr()).clone();
}

cv::Mat hwc_to_bgr(const torch::Tensor& rgb) {
  auto t = rgb.flip({2}).contiguous();
  return cv::Mat(static_cast<int>(t.size(0)), static_cast<int>(t.size(1)), CV_8UC3, t.data_ptr()).clone();
}

torch::Tensor token_ids(const std::vector<std::string>& captions) {
  using engine::ClipTokenizer;
  std::vector<torch::Tensor> rows;
  for (const auto& c : captions)
    rows.push_back(torch::tensor(ClipTokenizer::context_chunk(ClipTokenizer::bundled().encode(c)), torch::kInt64));
  return torch::stack(rows);
}

}  // namespace kiln::mini
