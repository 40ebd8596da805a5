#include "engine/conditioning.h"

#include <torch/torch.h>

#include "engine/error.h"
#include "engine/models/clip_text.h"

namespace kiln::engine {

SdxlTextEncoders sdxl_text_encoders(const models::StableDiffusion& model) {
  if (model.text_encoder_2.is_empty())
    throw Error(ErrorKind::InvalidArgument, "this model has one text encoder; SDXL conditioning needs two");
  SdxlTextEncoders e;
  e.first = [te = model.text_encoder](const torch::Tensor& ids) {
    torch::NoGradGuard no_grad;
    return te->encode(ids, /*clip_skip=*/2, /*final_norm=*/false);
  };
  e.second = [te = model.text_encoder_2](const torch::Tensor& ids) {
    torch::NoGradGuard no_grad;
    auto out = te->encode_pooled(ids, /*clip_skip=*/2);
    return std::make_pair(out.hidden, out.pooled);
  };
  return e;
}

PromptConditioning encode_prompt(const models::StableDiffusion& model, const std::string& prompt,
                                 const PromptOptions& o) {
  PromptConditioning out;
  ConditioningOptions text = o.text;
  text.clip_skip = o.clip_skip;
  if (model.traits().size_conditioning) {
    SdxlConditioning c = a1111_conditioning_sdxl(prompt, sdxl_text_encoders(model), ImageSizes::of(o.width, o.height),
                                                 o.negative, text);
    out.context = std::move(c.crossattn);
    out.vector = std::move(c.vector);
    out.prompt = std::move(c.prompt);
    out.networks = std::move(c.networks);
    return out;
  }
  Conditioning c = a1111_conditioning(prompt, models::text_encoder_fn(model.text_encoder), text);
  out.context = std::move(c.cond);
  out.prompt = std::move(c.prompt);
  out.networks = std::move(c.networks);
  return out;
}

}  // namespace kiln::engine
