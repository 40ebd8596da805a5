#include "service/images/pixels.h"

#include <cstring>

#include <torch/torch.h>

namespace kiln::service {
using protocol::PixelType;

namespace {
// The block's samples as a [h, w, c] tensor view (no copy) of the right dtype.
torch::Tensor view_of(const ipc::ShmImage& image) {
  const auto& d = image.desc();
  const auto bytes = static_cast<int64_t>(protocol::bytes_per_sample(d.dtype));
  const torch::Dtype dtype = d.dtype == PixelType::U8 ? torch::kUInt8 : d.dtype == PixelType::F32 ? torch::kFloat32 : torch::kInt16;
  // Strides are in elements; row padding must be a whole number of samples for a view.
  if (d.stride % bytes != 0) throw ipc::ImageError("image row stride is not a multiple of its sample size");
  return torch::from_blob(const_cast<uint8_t*>(image.data()), {d.height, d.width, d.channels},
                          {static_cast<int64_t>(d.stride) / bytes, d.channels, 1}, torch::TensorOptions(dtype));
}

torch::Tensor to_u8(const ipc::ShmImage& image) {
  torch::Tensor v = view_of(image);
  switch (image.desc().dtype) {
    case PixelType::U8: return v.clone();
    // u16 was viewed as int16: reinterpret the bits as unsigned before scaling.
    case PixelType::U16: return v.to(torch::kInt32).bitwise_and(0xffff).div(257).round().to(torch::kUInt8);
    case PixelType::F32: return v.clamp(0, 1).mul(255).round().to(torch::kUInt8);
  }
  return v;
}
}  // namespace

torch::Tensor rgb_from_shm(const ipc::ShmImage& image) {
  torch::Tensor u8 = to_u8(image);
  const auto c = image.desc().channels;
  if (c == 1) return u8.expand({-1, -1, 3}).contiguous();
  return u8.slice(2, 0, 3).contiguous();
}

torch::Tensor straight_u8_from_shm(const ipc::ShmImage& image) {
  torch::Tensor u8 = to_u8(image);
  if (!image.desc().premultiplied || image.desc().channels != 4) return u8;
  const auto alpha = u8.narrow(2, 3, 1).to(torch::kInt32);
  const auto colour = u8.narrow(2, 0, 3).to(torch::kInt32);
  const auto straight = torch::where(alpha > 0, torch::div(colour * 255 + torch::div(alpha, 2, "floor"), alpha.clamp_min(1), "floor"),
                                     torch::zeros_like(colour));
  return torch::cat({straight.clamp_max(255), alpha}, 2).to(torch::kUInt8).contiguous();
}

torch::Tensor mask_from_shm(const ipc::ShmImage& image) {
  torch::Tensor u8 = to_u8(image);
  if (image.desc().channels == 1) return u8.squeeze(2).contiguous();
  torch::Tensor rgb = u8.slice(2, 0, 3).to(torch::kFloat32);
  torch::Tensor weights = torch::tensor({0.299f, 0.587f, 0.114f});
  return rgb.matmul(weights).round().clamp(0, 255).to(torch::kUInt8).contiguous();
}

ipc::ShmImage shm_from_rgb(const torch::Tensor& rgb) {
  TORCH_CHECK(rgb.dim() == 3 && rgb.size(2) == 3 && rgb.dtype() == torch::kUInt8, "expected uint8 [h, w, 3]");
  protocol::ImageDesc d;
  d.width = static_cast<uint32_t>(rgb.size(1));
  d.height = static_cast<uint32_t>(rgb.size(0));
  d.channels = 3;
  ipc::ShmImage image = ipc::ShmImage::create(d);
  const torch::Tensor src = rgb.contiguous().cpu();
  std::memcpy(image.data(), src.data_ptr<uint8_t>(), image.data_size());
  return image;
}

}  // namespace kiln::service
