#pragma once
// A prompt as the model's UNet takes it, built by the rules of the model's family (io/families.h):
// SD1.x with A1111's conditioning (text/conditioning.h), SDXL with A1111's SDXL conditioning
// (text/conditioning_sdxl.h) and its size vector. The one place that turns a family's row into
// the choice of conditioning; the pipeline, the benchmarks and the trainer's samples come here.
#include <cstdint>
#include <string>
#include <vector>

#include <torch/types.h>

#include "engine/models/stable_diffusion.h"
#include "engine/text/conditioning.h"
#include "engine/text/conditioning_sdxl.h"

namespace kiln::engine {

struct PromptOptions {
  int clip_skip = 1;                  // A1111 "Clip skip" (families whose row says it applies)
  bool negative = false;              // the negative prompt (SDXL zeroes an empty one)
  int64_t width = 512, height = 512;  // the image being made (SDXL's size conditioning)
  ConditioningOptions text;           // emphasis and comma backtracking (clip_skip set from above)
};

struct PromptConditioning {
  torch::Tensor context;  // [77·n, C]: the cross-attention states
  torch::Tensor vector;   // SDXL: [P + 6·256], the UNet's y; undefined for SD1.x
  std::string prompt;     // what was encoded: the prompt without its tags
  std::vector<ExtraNetworkTag> networks;
};

// The text encoders of `model` as SDXL's conditioning calls them (no gradients).
SdxlTextEncoders sdxl_text_encoders(const models::StableDiffusion& model);

PromptConditioning encode_prompt(const models::StableDiffusion& model, const std::string& prompt,
                                 const PromptOptions& options);

}  // namespace kiln::engine
