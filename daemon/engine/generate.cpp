#include "engine/generate.h"

#include "engine/conditioning.h"
#include "engine/error.h"
#include "engine/sampling/denoiser.h"

namespace kiln::engine {

namespace {
// The LoRAs a request asks for: its explicit list, then the <lora:...> tags of both prompts.
std::vector<AppliedLora> requested_loras(const GenerateRequest& request, std::vector<ExtraNetworkTag>& unsupported) {
  std::vector<AppliedLora> loras;
  for (const lora::LoraRequest& r : request.loras) {
    AppliedLora a;
    a.name = r.path.stem().string();
    a.path = r.path;
    a.te_multiplier = r.text_encoder_multiplier.value_or(r.multiplier);
    a.unet_multiplier = r.unet_multiplier.value_or(r.multiplier);
    loras.push_back(a);
  }
  for (const std::string* text : {&request.prompt, &request.negative_prompt}) {
    for (const ExtraNetworkTag& tag : extract_extra_networks(*text).networks) {
      if (tag.type != "lora") {
        unsupported.push_back(tag);
        continue;
      }
      const LoraRequest wanted = lora_request(tag);
      if (wanted.dyn_dim != 0)
        throw Error(ErrorKind::Unsupported, "<lora:" + wanted.name + ":...:dyn=...> (a reduced rank) is not supported; remove dyn=");
      std::optional<std::filesystem::path> file = request.find_lora ? request.find_lora(wanted.name) : std::nullopt;
      if (!file)
        throw Error(ErrorKind::NotFound, "the prompt asks for <lora:" + wanted.name + ">, but there is no LoRA of that name; "
                                         "`kiln loras list` shows the library");
      loras.push_back(AppliedLora{wanted.name, *file, wanted.te_multiplier, wanted.unet_multiplier, {}});
    }
  }
  return loras;
}
}  // namespace

GenerateOutput generate_images(LoadedModel& loaded, const GenerateRequest& request, const sampling::PipelineHooks& hooks) {
  sampling::validate(request.params);  // fail fast, before the text encoder runs
  if (request.clip_skip < 1 || request.clip_skip > 12)
    throw Error(ErrorKind::InvalidArgument, "clip skip must be between 1 and 12 (1 = last layer, 2 for anime models)");

  GenerateOutput out;
  out.loras = requested_loras(request, out.unsupported);
  std::vector<lora::LoraRequest> stack;
  for (const AppliedLora& a : out.loras) {
    lora::LoraRequest r;
    r.path = a.path;
    r.multiplier = a.te_multiplier;
    r.text_encoder_multiplier = a.te_multiplier;
    r.unet_multiplier = a.unet_multiplier;
    stack.push_back(r);
  }
  const std::vector<lora::ApplyReport> reports = loaded.loras.set(stack);
  for (std::size_t i = 0; i < reports.size() && i < out.loras.size(); ++i) out.loras[i].report = reports[i];

  const models::StableDiffusion& model = loaded.model;
  PromptOptions options;
  options.clip_skip = request.clip_skip;
  options.width = request.params.width;
  options.height = request.params.height;
  torch::NoGradGuard no_grad;
  PromptConditioning cond = encode_prompt(model, request.prompt, options);
  options.negative = true;
  PromptConditioning uncond = encode_prompt(model, request.negative_prompt, options);
  out.prompt_used = cond.prompt;

  sampling::Conditioning conditioning;
  conditioning.cond = cond.context;
  conditioning.uncond = uncond.context;
  conditioning.cond_vector = cond.vector;
  conditioning.uncond_vector = uncond.vector;
  out.result = sampling::generate(model, conditioning, request.params, hooks);
  return out;
}

}  // namespace kiln::engine
