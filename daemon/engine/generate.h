#pragma once
// The engine's one entry for a generation request: prompt text in, images out. It builds A1111
// conditioning for the prompt and the negative prompt with the model's own text encoder, then runs
// the txt2img / img2img / inpaint pipeline. Extra-network tags (<lora:name:weight>) come back to
// the caller, who decides what to do with them.
#include <string>
#include <vector>

#include "engine/models/stable_diffusion.h"
#include "engine/sampling/pipeline.h"
#include "engine/text/prompt_parser.h"

namespace kiln::engine {

struct GenerateRequest {
  std::string prompt;
  std::string negative_prompt;
  int clip_skip = 1;  // A1111 "Clip skip": 1 = last layer
  sampling::GenerationParams params;
};

struct GenerateOutput {
  sampling::GenerationResult result;
  std::string prompt_used;                 // the prompt without its extra-network tags
  std::vector<ExtraNetworkTag> tags;       // every <name:args> tag found in either prompt
};

// Throws Error(InvalidArgument) for bad parameters before any work, Error(Cancelled) when the
// hooks ask to stop.
GenerateOutput generate_images(const models::StableDiffusion& model, const GenerateRequest& request,
                               const sampling::PipelineHooks& hooks = {});

}  // namespace kiln::engine
