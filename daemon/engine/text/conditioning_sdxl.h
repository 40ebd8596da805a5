#pragma once
// AUTOMATIC1111's SDXL prompt conditioning (modules/sd_models_xl.py get_learned_conditioning,
// sd_hijack_clip.FrozenCLIPEmbedderForSDXLWithCustomWords and
// sd_hijack_open_clip.FrozenOpenCLIPEmbedder2WithCustomWords over generative-models'
// GeneralConditioner):
//   1. tags, emphasis, BREAK, 75-token chunks and comma backtracking exactly as SD1 (conditioning.h);
//      both encoders chunk the same token list;
//   2. per chunk: the first encoder's penultimate states (no final LayerNorm) on the ids as they
//      are (EOS-padded), the second encoder's on the same ids with every id after the first EOS
//      set to 0 ("!", OpenCLIP's padding), and its pooled, projected output;
//   3. emphasis ("Original") on each encoder's states separately, each with its own mean;
//   4. crossattn = the two encoders' states concatenated on the channels, chunks joined on tokens;
//      the pooled vector is the first chunk's;
//   5. vector = [pooled, E(original h), E(original w), E(crop top), E(crop left), E(target h),
//      E(target w)], E = sgm's 256-wide Fourier embedding (cos first);
//   6. a negative prompt that is exactly "" has zero crossattn and pooled (force_zero_embeddings);
//      its size part stays.
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

#include "engine/text/conditioning.h"

namespace kiln::engine {

struct SdxlTextEncoders {
  // ids [n, 77] → the first encoder's penultimate states [n, 77, C1].
  std::function<torch::Tensor(const torch::Tensor& ids)> first;
  // ids [n, 77] (already 0 after the first EOS) → the second encoder's penultimate states
  // [n, 77, C2] and its pooled, projected output [n, P].
  std::function<std::pair<torch::Tensor, torch::Tensor>(const torch::Tensor& ids)> second;
};

// sgm's size conditioning: original_size_as_tuple, crop_coords_top_left, target_size_as_tuple.
struct ImageSizes {
  int64_t original_height = 1024, original_width = 1024;
  int64_t crop_top = 0, crop_left = 0;
  int64_t target_height = 1024, target_width = 1024;
  // What A1111 uses for a generation of width × height: original = target = (height, width), no
  // crop (sdxl_crop_top / sdxl_crop_left default 0).
  static ImageSizes of(int64_t width, int64_t height);
};

// sgm timestep_embedding(v, dim) of each value, concatenated: [cos(v·f_j) | sin(v·f_j)] with
// f_j = exp(−ln(10000)·j/(dim/2)), in float32. `values` [B, k] → [B, k·dim].
torch::Tensor fourier_embedding(const torch::Tensor& values, int64_t dim = 256);
// The size part of the vector for one image: [6·256] float32.
torch::Tensor size_embedding(const ImageSizes& sizes);

// The second encoder's ids: every id after the first EOS (49407) set to 0. ids [..., 77] int64.
torch::Tensor zero_after_first_eos(const torch::Tensor& ids);

struct SdxlConditioning {
  torch::Tensor crossattn;   // [77·n, C1 + C2] in the encoders' dtype
  torch::Tensor vector;      // [P + 6·256] float32
  PromptChunks chunks;       // the first encoder's ids and the multipliers
  torch::Tensor tokens_te2;  // [n, 77]: the second encoder's ids
  std::string prompt;        // what was encoded: the prompt without its tags
  std::vector<ExtraNetworkTag> networks;
};

// All steps. `negative`: this is the negative prompt (step 6). options.clip_skip is not used:
// SDXL always takes the penultimate layers (A1111's sdxl_clip_l_skip is off).
SdxlConditioning a1111_conditioning_sdxl(const std::string& prompt, const SdxlTextEncoders& encoders,
                                         const ImageSizes& sizes, bool negative,
                                         const ConditioningOptions& options = {},
                                         const ClipTokenizer* tokenizer = nullptr);

}  // namespace kiln::engine
