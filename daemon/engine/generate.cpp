#include "engine/generate.h"

#include "engine/error.h"
#include "engine/models/clip_text.h"
#include "engine/sampling/denoiser.h"
#include "engine/text/conditioning.h"

namespace kiln::engine {

GenerateOutput generate_images(const models::StableDiffusion& model, const GenerateRequest& request,
                               const sampling::PipelineHooks& hooks) {
  sampling::validate(request.params);  // fail fast, before the text encoder runs
  if (request.clip_skip < 1 || request.clip_skip > 12)
    throw Error(ErrorKind::InvalidArgument, "clip skip must be between 1 and 12 (1 = last layer, 2 for anime models)");

  const auto encoder = models::text_encoder_fn(model.text_encoder);
  ConditioningOptions options;
  options.clip_skip = request.clip_skip;
  GenerateOutput out;
  torch::NoGradGuard no_grad;
  Conditioning cond = a1111_conditioning(request.prompt, encoder, options);
  Conditioning uncond = a1111_conditioning(request.negative_prompt, encoder, options);
  out.prompt_used = cond.prompt;
  out.tags = cond.networks;
  out.tags.insert(out.tags.end(), uncond.networks.begin(), uncond.networks.end());

  sampling::Conditioning conditioning;
  conditioning.cond = cond.cond;
  conditioning.uncond = uncond.cond;
  out.result = sampling::generate(model, conditioning, request.params, hooks);
  return out;
}

}  // namespace kiln::engine
