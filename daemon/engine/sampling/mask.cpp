#include "engine/sampling/mask.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <vector>

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

// Pillow's resampling coefficients for one axis (Resample.c precompute_coeffs, then the 8-bit
// normalisation to 22-bit fixed point): output i reads `size[i]` inputs from `first[i]`.
constexpr int kPrecisionBits = 32 - 8 - 2;

struct AxisCoefficients {
  int taps = 0;                   // row length in `k`
  std::vector<int> first, size;   // per output position
  std::vector<int32_t> k;         // [out][taps]
};

double pillow_bicubic(double x) {
  constexpr double a = -0.5;
  x = std::abs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

AxisCoefficients bicubic_coefficients(int in_size, int out_size) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double filter_scale = std::max(scale, 1.0);
  const double support = 2.0 * filter_scale;
  AxisCoefficients c;
  c.taps = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.first.resize(out_size);
  c.size.resize(out_size);
  c.k.assign(static_cast<size_t>(out_size) * c.taps, 0);
  std::vector<double> w(c.taps);
  for (int i = 0; i < out_size; ++i) {
    const double center = (i + 0.5) * scale;
    const int lo = std::max(static_cast<int>(center - support + 0.5), 0);
    const int hi = std::min(static_cast<int>(center + support + 0.5), in_size);
    double total = 0;
    for (int x = 0; x < hi - lo; ++x) total += w[x] = pillow_bicubic((x + lo - center + 0.5) / filter_scale);
    for (int x = 0; x < hi - lo; ++x) {
      const double v = (total != 0.0 ? w[x] / total : w[x]) * (1 << kPrecisionBits);
      c.k[static_cast<size_t>(i) * c.taps + x] = static_cast<int32_t>(v < 0 ? v - 0.5 : v + 0.5);
    }
    c.first[i] = lo;
    c.size[i] = hi - lo;
  }
  return c;
}

uint8_t clip8(int64_t v) {
  if (v <= 0) return 0;
  return static_cast<uint8_t>(std::min<int64_t>(v >> kPrecisionBits, 255));
}

// One pass: out[y][i] from in[y][first[i] ...] along rows (or columns when `vertical`).
void resample_pass(const uint8_t* in, int64_t in_h, int64_t in_w, uint8_t* out, const AxisCoefficients& c, bool vertical) {
  const int64_t out_len = static_cast<int64_t>(c.first.size());
  const int64_t lines = vertical ? in_w : in_h;
  const int64_t out_w = vertical ? in_w : out_len;
  for (int64_t line = 0; line < lines; ++line)
    for (int64_t i = 0; i < out_len; ++i) {
      int64_t sum = int64_t{1} << (kPrecisionBits - 1);
      const int32_t* k = &c.k[static_cast<size_t>(i) * c.taps];
      for (int x = 0; x < c.size[i]; ++x) {
        const int64_t at = c.first[i] + x;
        sum += int64_t{vertical ? in[at * in_w + line] : in[line * in_w + at]} * k[x];
      }
      out[vertical ? i * out_w + line : line * out_w + i] = clip8(sum);
    }
}

torch::Tensor require_mask(const torch::Tensor& mask_u8) {
  if (mask_u8.scalar_type() != torch::kUInt8 || mask_u8.dim() != 2)
    throw Error(ErrorKind::InvalidArgument, "a mask must be bytes of shape [height, width]");
  return mask_u8.cpu().contiguous();
}
}  // namespace

torch::Tensor mask_channel(const torch::Tensor& mask_u8) {
  if (mask_u8.scalar_type() != torch::kUInt8 || (mask_u8.dim() != 2 && mask_u8.dim() != 3))
    throw Error(ErrorKind::InvalidArgument,
                "a mask must be bytes of shape [height, width] or [height, width, channels]");
  return mask_u8.dim() == 3 ? mask_u8.select(2, 0).contiguous() : mask_u8;
}

torch::Tensor blur_mask(const torch::Tensor& mask_u8, double blur) {
  const auto mask = require_mask(mask_u8);
  if (blur <= 0) return mask;
  const int64_t size = 2 * static_cast<int64_t>(2.5 * blur + 0.5) + 1;
  const auto x = torch::arange(size, torch::kFloat64) - (size - 1) / 2.0;
  auto taps = torch::exp(-(x * x) / (2 * blur * blur));
  taps = (taps / taps.sum()).to(torch::kFloat32);
  auto m = mask.to(torch::kFloat32).view({1, 1, mask.size(0), mask.size(1)});
  m = conv_axis(conv_axis(m, taps, true), taps, false);
  return m.view({mask.size(0), mask.size(1)}).round().clamp(0, 255).to(torch::kUInt8);
}

torch::Tensor fill_masked(const torch::Tensor& image_u8, const torch::Tensor& mask_u8) {
  const auto mask = require_mask(mask_u8).to(torch::kFloat32) / 255;
  const auto rgb = image_u8.to(torch::kFloat32).permute({2, 0, 1}) / 255;  // [3, H, W]
  const auto alpha = (1 - mask).unsqueeze(0);                              // kept pixels are opaque
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

torch::Tensor resize_bicubic_pillow(const torch::Tensor& image_u8, int64_t out_h, int64_t out_w) {
  const auto in = require_mask(image_u8);
  if (out_h < 1 || out_w < 1) throw Error(ErrorKind::InvalidArgument, "a resized mask needs at least one pixel");
  const int64_t in_h = in.size(0), in_w = in.size(1);
  auto rows = in;
  if (out_w != in_w) {  // Pillow skips a pass whose size does not change
    rows = torch::empty({in_h, out_w}, torch::kUInt8);
    resample_pass(in.data_ptr<uint8_t>(), in_h, in_w, rows.data_ptr<uint8_t>(),
                  bicubic_coefficients(static_cast<int>(in_w), static_cast<int>(out_w)), false);
  }
  if (out_h == in_h) return rows;
  auto out = torch::empty({out_h, out_w}, torch::kUInt8);
  resample_pass(rows.data_ptr<uint8_t>(), in_h, out_w, out.data_ptr<uint8_t>(),
                bicubic_coefficients(static_cast<int>(in_h), static_cast<int>(out_h)), true);
  return out;
}

torch::Tensor latent_repaint_mask(const torch::Tensor& mask_u8, int64_t h, int64_t w) {
  return resize_bicubic_pillow(mask_u8, h, w).ge(128).to(torch::kFloat32).view({1, 1, h, w});
}

torch::Tensor conditioning_mask(const torch::Tensor& mask_u8) {
  const auto mask = require_mask(mask_u8);
  return mask.ge(128).to(torch::kFloat32).view({1, 1, mask.size(0), mask.size(1)});
}

torch::Tensor overlay(const torch::Tensor& generated_u8, const torch::Tensor& original_u8, const torch::Tensor& mask_u8) {
  const auto mask = require_mask(mask_u8);
  if (generated_u8.sizes() != original_u8.sizes() || generated_u8.dim() != 3 || generated_u8.size(0) != mask.size(0) ||
      generated_u8.size(1) != mask.size(1))
    throw Error(ErrorKind::InvalidArgument, "the overlay needs two images and a mask of one size");
  // Pillow: paste the original with alpha a = 255 − min(2·mask, 255) onto RGBa, un-premultiply,
  // then alpha_composite over the generated image; all in integers.
  const auto div = [](const torch::Tensor& v, int64_t d) { return torch::div(v, d, "floor"); };
  const auto a = 255 - (mask.to(torch::kInt32) * 2).clamp_max(255).unsqueeze(2);
  const auto orig = original_u8.to(torch::kInt32), gen = generated_u8.to(torch::kInt32);
  const auto v = orig * a + 128;
  const auto p = div(v + div(v, 256), 256);  // DIV255
  const auto u = torch::where(a == 255, p, torch::div(255 * p, a.clamp_min(1), "floor").clamp_max(255));
  const auto t = u * a * 128 + gen * (255 - a) * 128 + 16384;
  const auto out = div(div(t + div(t, 256), 256), 128);
  return torch::where(a == 0, gen, out).to(torch::kUInt8);
}

}  // namespace kiln::engine::sampling
