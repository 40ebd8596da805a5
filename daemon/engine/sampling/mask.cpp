#include "engine/sampling/mask.h"

#include <torch/torch.h>

#include <cmath>

#include "engine/error.h"

namespace kiln::engine::sampling {

namespace {
namespace F = torch::nn::functional;

// 1-D convolution of [N, C, H, W] along one axis with `taps`, edges mirrored (or repeated when the
// kernel is wider than the image).
torch::Tensor conv_axis(const torch::Tensor& x, const torch::Tensor& taps, bool horizontal) {
  const int64_t r = taps.size(0) / 2, C = x.size(1), len = x.size(horizontal ? 3 : 2);
  const std::vector<int64_t> pad = horizontal ? std::vector<int64_t>{r, r, 0, 0} : std::vector<int64_t>{0, 0, r, r};
  auto padded = r < len ? F::pad(x, F::PadFuncOptions(pad).mode(torch::kReflect))
                        : F::pad(x, F::PadFuncOptions(pad).mode(torch::kReplicate));
  auto k = horizontal ? taps.view({1, 1, 1, -1}) : taps.view({1, 1, -1, 1});
  const auto weight = k.expand({C, 1, k.size(2), k.size(3)}).contiguous();
  const std::vector<int64_t> ones{1, 1}, zeros{0, 0};
  return at::conv2d(padded, weight, torch::Tensor(), ones, torch::IntArrayRef(zeros), ones, C);
}

// Box blur of half-width r along one axis via running sums, edges repeated.
torch::Tensor box_axis(const torch::Tensor& x, int64_t r, int64_t dim) {
  if (r <= 0) return x;
  const int64_t len = x.size(dim);
  auto idx = torch::arange(-r, len + r, torch::kLong).clamp(0, len - 1);
  auto padded = x.index_select(dim, idx).to(torch::kFloat64);
  auto sums = torch::cat({torch::zeros_like(padded.narrow(dim, 0, 1)), padded.cumsum(dim)}, dim);
  const int64_t w = 2 * r + 1;
  return ((sums.narrow(dim, w, len) - sums.narrow(dim, 0, len)) / static_cast<double>(w)).to(x.scalar_type());
}

// Gaussian-like blur of standard deviation sigma: three box blurs per axis.
torch::Tensor soft_blur(const torch::Tensor& x, double sigma) {
  const auto r = static_cast<int64_t>(std::lround(std::max(0.0, sigma - 0.5)));
  auto y = x;
  for (int pass = 0; pass < 3; ++pass) y = box_axis(box_axis(y, r, -1), r, -2);
  return y;
}

void check_mask(const torch::Tensor& mask) {
  if (mask.dim() != 2) throw Error(ErrorKind::InvalidArgument, "a mask must have shape [height, width]");
}
}  // namespace

torch::Tensor mask_from_image(const torch::Tensor& mask_u8) {
  if (mask_u8.scalar_type() != torch::kUInt8 || (mask_u8.dim() != 2 && mask_u8.dim() != 3))
    throw Error(ErrorKind::InvalidArgument,
                "a mask must be bytes of shape [height, width] or [height, width, channels]");
  const auto m = mask_u8.dim() == 3 ? mask_u8.select(2, 0) : mask_u8;
  return m.to(torch::kFloat32) / 255;
}

torch::Tensor blur_mask(const torch::Tensor& mask, double blur) {
  check_mask(mask);
  if (blur <= 0) return mask;
  const int64_t size = 2 * static_cast<int64_t>(2.5 * blur + 0.5) + 1;
  const auto x = torch::arange(size, torch::kFloat64) - (size - 1) / 2.0;
  auto taps = torch::exp(-(x * x) / (2 * blur * blur));
  taps = (taps / taps.sum()).to(torch::kFloat32);
  auto m = mask.to(torch::kFloat32).view({1, 1, mask.size(0), mask.size(1)});
  m = conv_axis(conv_axis(m, taps, true), taps, false);
  return m.view({mask.size(0), mask.size(1)}).clamp(0, 1);
}

torch::Tensor fill_masked(const torch::Tensor& image_u8, const torch::Tensor& mask) {
  check_mask(mask);
  const auto rgb = image_u8.to(torch::kFloat32).permute({2, 0, 1}) / 255;  // [3, H, W]
  const auto alpha = (1 - mask.to(torch::kFloat32)).unsqueeze(0);          // kept pixels are opaque
  const auto premultiplied = torch::cat({rgb * alpha, alpha});             // [4, H, W]
  auto out = torch::zeros_like(premultiplied);
  for (auto [radius, repeats] : {std::pair{256.0, 1}, {64.0, 1}, {16.0, 2}, {4.0, 4}, {2.0, 2}, {0.0, 1}}) {
    const auto layer = radius > 0 ? soft_blur(premultiplied, radius) : premultiplied;
    const auto layer_alpha = layer.narrow(0, 3, 1);
    for (int i = 0; i < repeats; ++i) out = layer + out * (1 - layer_alpha);  // "over"
  }
  const auto a = out.narrow(0, 3, 1);
  const auto colour = torch::where(a > 0, out.narrow(0, 0, 3) / a.clamp_min(1e-12), torch::zeros_like(a));
  return (colour.clamp(0, 1) * 255).round().permute({1, 2, 0}).to(torch::kUInt8).contiguous();
}

torch::Tensor latent_repaint_mask(const torch::Tensor& mask, int64_t h, int64_t w) {
  check_mask(mask);
  const auto m = mask.to(torch::kFloat32).view({1, 1, mask.size(0), mask.size(1)});
  return torch::adaptive_avg_pool2d(m, {h, w}).round();
}

torch::Tensor overlay(const torch::Tensor& generated_u8, const torch::Tensor& original_u8, const torch::Tensor& mask) {
  check_mask(mask);
  const auto m = (mask.to(torch::kFloat32) * 2).clamp(0, 1).unsqueeze(2);
  const auto out = generated_u8.to(torch::kFloat32) * m + original_u8.to(torch::kFloat32) * (1 - m);
  return out.round().clamp(0, 255).to(torch::kUInt8);
}

}  // namespace kiln::engine::sampling
