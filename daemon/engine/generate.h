#pragma once
// The engine's one entry for a generation request: prompt text in, images out. It builds A1111
// conditioning for the prompt and the negative prompt with the model's own text encoder, then runs
// the txt2img / img2img / inpaint pipeline. Extra-network tags (<lora:name:weight>) come back to
// the caller, who decides what to do with them.
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "engine/lora/lora_apply.h"
#include "engine/model_cache.h"
#include "engine/models/stable_diffusion.h"
#include "engine/sampling/pipeline.h"
#include "engine/text/prompt_parser.h"

namespace kiln::engine {

// Maps the name in a <lora:NAME:...> tag to its file; empty when there is no such LoRA.
using LoraResolver = std::function<std::optional<std::filesystem::path>(const std::string& name)>;

struct GenerateRequest {
  std::string prompt;
  std::string negative_prompt;
  int clip_skip = 1;  // A1111 "Clip skip": 1 = last layer
  sampling::GenerationParams params;
  std::vector<lora::LoraRequest> loras;  // applied in addition to the prompt's <lora:...> tags
  LoraResolver find_lora;                // for the tags; without it a tag is an error
};

struct AppliedLora {
  std::string name;  // as the tag or request named it
  std::filesystem::path path;
  double te_multiplier = 1, unet_multiplier = 1;
  lora::ApplyReport report;  // modules matched per part, and keys that matched nothing
};

struct GenerateOutput {
  sampling::GenerationResult result;
  std::string prompt_used;                   // the prompt without its extra-network tags
  std::vector<AppliedLora> loras;            // what was applied, with its report
  std::vector<ExtraNetworkTag> unsupported;  // tags of other network types (hypernet, ...): not applied
};

// Applies the request's LoRAs (tags and explicit ones) to `model` — replacing what was applied
// before — then generates. Throws Error(NotFound) for a LoRA tag naming nothing, Error(Unsupported)
// for a LoRA of another model family, Error(InvalidArgument) for bad parameters (before any work),
// Error(Cancelled) when the hooks ask to stop.
GenerateOutput generate_images(LoadedModel& model, const GenerateRequest& request,
                               const sampling::PipelineHooks& hooks = {});

}  // namespace kiln::engine
