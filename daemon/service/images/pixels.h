#pragma once
// Moving pixels between shared-memory blocks and the engine's uint8 tensors.
#include <torch/types.h>

#include "ipc/shm_image.h"

namespace kiln::service {

// An image block as uint8 RGB [height, width, 3] (alpha dropped, u16/f32 scaled to 0..255).
torch::Tensor rgb_from_shm(const ipc::ShmImage& image);
// A block as uint8 [height, width, channels] with its channels as they are, straight alpha (a
// premultiplied RGBA block is un-premultiplied; u16/f32 scaled to 0..255).
torch::Tensor straight_u8_from_shm(const ipc::ShmImage& image);
// A mask block as uint8 [height, width]: the single channel, or the luminance of RGB(A).
torch::Tensor mask_from_shm(const ipc::ShmImage& image);
// A uint8 [h, w, 3] tensor copied into a new RGB8 block (sRGB).
ipc::ShmImage shm_from_rgb(const torch::Tensor& rgb);

}  // namespace kiln::service
