#include "engine/text/conditioning_sdxl.h"

#include <torch/torch.h>

#include <cmath>

#include "engine/error.h"
#include "engine/text/clip_tokenizer.h"

namespace kiln::engine {

ImageSizes ImageSizes::of(int64_t width, int64_t height) {
  ImageSizes s;
  s.original_height = s.target_height = height;
  s.original_width = s.target_width = width;
  return s;
}

torch::Tensor fourier_embedding(const torch::Tensor& values, int64_t dim) {
  const int64_t half = dim / 2;
  const auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(values.device());
  const auto freqs = torch::exp(torch::arange(half, opts) * -std::log(10000.0) / static_cast<double>(half));
  const auto v = values.to(torch::kFloat32);
  const auto args = v.unsqueeze(-1) * freqs;  // [B, k, half]
  auto emb = torch::cat({torch::cos(args), torch::sin(args)}, -1);  // [B, k, dim]
  return emb.reshape({v.size(0), v.size(1) * dim});
}

torch::Tensor size_embedding(const ImageSizes& s) {
  const auto values = torch::tensor({s.original_height, s.original_width, s.crop_top, s.crop_left, s.target_height,
                                     s.target_width},
                                    torch::kFloat32)
                          .unsqueeze(0);
  return fourier_embedding(values).squeeze(0);
}

torch::Tensor zero_after_first_eos(const torch::Tensor& ids) {
  // A1111 process_tokens: tokens[index(EOS) + 1:] = id_pad. cumsum counts the EOS seen so far.
  const auto is_eos = (ids == ClipTokenizer::kEndOfText).to(torch::kLong);
  const auto seen = is_eos.cumsum(-1);
  const auto after = (seen - is_eos) > 0;  // an EOS came before this position
  return ids.masked_fill(after, 0);
}

SdxlConditioning a1111_conditioning_sdxl(const std::string& prompt, const SdxlTextEncoders& encoders,
                                         const ImageSizes& sizes, bool negative, const ConditioningOptions& options,
                                         const ClipTokenizer* tokenizer) {
  if (!encoders.first || !encoders.second)
    throw Error(ErrorKind::InvalidArgument, "SDXL conditioning needs both text encoders.");
  const ClipTokenizer& tok = tokenizer ? *tokenizer : ClipTokenizer::bundled();
  PromptWithNetworks extracted = extract_extra_networks(prompt);
  SdxlConditioning r;
  r.prompt = std::move(extracted.prompt);
  r.networks = std::move(extracted.networks);
  r.chunks = chunk_prompt(r.prompt, tok, options);
  r.tokens_te2 = zero_after_first_eos(r.chunks.tokens);

  // Each encoder is its own TextEncoderFn for encode_chunks, which applies the emphasis per chunk
  // with that encoder's own mean. clip_skip is ignored: SDXL conditions on the penultimate layers.
  torch::Tensor pooled;
  const TextEncoderFn first = [&](const torch::Tensor& ids, int) { return encoders.first(ids); };
  const TextEncoderFn second = [&](const torch::Tensor&, int) {
    auto [states, p] = encoders.second(r.tokens_te2);
    pooled = p;
    return states;
  };
  const torch::Tensor z1 = encode_chunks(r.chunks, first, options);
  const torch::Tensor z2 = encode_chunks(r.chunks, second, options);
  r.crossattn = torch::cat({z1, z2.to(z1.scalar_type())}, -1);
  torch::Tensor text = pooled[0].to(torch::kFloat32);  // A1111: zs[0].pooled for several chunks
  // sgm force_zero_embeddings=['txt'] for a negative prompt that is exactly "".
  if (negative && r.prompt.empty()) {
    r.crossattn = torch::zeros_like(r.crossattn);
    text = torch::zeros_like(text);
  }
  r.vector = torch::cat({text, size_embedding(sizes).to(text.device())});
  return r;
}

}  // namespace kiln::engine
