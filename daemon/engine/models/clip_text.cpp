#include "engine/models/clip_text.h"

#include <torch/torch.h>

#include "engine/error.h"
#include "engine/models/attention.h"

namespace kiln::engine::models {

ClipTextConfig ClipTextConfig::open_clip_bigg() {
  ClipTextConfig c;
  c.width = 1280;
  c.layers = 32;
  c.heads = 20;
  c.mlp_width = 5120;
  c.activation = Activation::Gelu;
  c.projection_dim = 1280;
  return c;
}

ClipTextConfig ClipTextConfig::infer(const WeightIndex& w, ClipActivation activation) {
  ClipTextConfig c;
  c.vocab_size = w.dim("text_model.embeddings.token_embedding.weight", 0);
  c.width = w.dim("text_model.embeddings.token_embedding.weight", 1);
  c.max_positions = w.dim("text_model.embeddings.position_embedding.weight", 0);
  c.layers = w.count("text_model.encoder.layers.", ".layer_norm1.weight");
  c.mlp_width = w.dim("text_model.encoder.layers.0.mlp.fc1.weight", 0);
  if (c.width % 64 != 0)
    throw Error(ErrorKind::BadFormat, "the text encoder is " + std::to_string(c.width) +
                                          " wide, which is not a multiple of its 64-wide attention heads");
  c.heads = c.width / 64;
  switch (activation) {
    case ClipActivation::ByWidth: c.activation = c.width == 1024 ? Activation::Gelu : Activation::QuickGelu; break;
    case ClipActivation::QuickGelu: c.activation = Activation::QuickGelu; break;
    case ClipActivation::Gelu: c.activation = Activation::Gelu; break;
  }
  if (w.has("text_projection.weight")) {
    c.projection_dim = w.dim("text_projection.weight", 0);
    if (w.dim("text_projection.weight", 1) != c.width)
      throw Error(ErrorKind::BadFormat, "the text encoder's projection does not take its " + std::to_string(c.width) +
                                            "-wide states");
  }
  return c;
}

ClipEncoderLayerImpl::ClipEncoderLayerImpl(const ClipTextConfig& c, const torch::TensorOptions& o)
    : heads_(c.heads), activation_(c.activation) {
  auto attn = add_container(*this, "self_attn");
  q_proj_ = add(*attn, "q_proj", Linear(c.width, c.width, true, o));
  k_proj_ = add(*attn, "k_proj", Linear(c.width, c.width, true, o));
  v_proj_ = add(*attn, "v_proj", Linear(c.width, c.width, true, o));
  out_proj_ = add(*attn, "out_proj", Linear(c.width, c.width, true, o));
  layer_norm1_ = add(*this, "layer_norm1", LayerNorm(c.width, c.layer_norm_eps, o));
  auto mlp = add_container(*this, "mlp");
  fc1_ = add(*mlp, "fc1", Linear(c.width, c.mlp_width, true, o));
  fc2_ = add(*mlp, "fc2", Linear(c.mlp_width, c.width, true, o));
  layer_norm2_ = add(*this, "layer_norm2", LayerNorm(c.width, c.layer_norm_eps, o));
}

torch::Tensor ClipEncoderLayerImpl::forward(const torch::Tensor& x) const {
  const int64_t n = x.size(0), T = x.size(1), C = x.size(2), D = C / heads_;
  auto h = layer_norm1_->forward(x);
  auto split = [&](const torch::Tensor& t) { return t.view({n, T, heads_, D}).transpose(1, 2); };
  auto a =
      attention(split(q_proj_->forward(h)), split(k_proj_->forward(h)), split(v_proj_->forward(h)), /*causal=*/true);
  auto y = x + out_proj_->forward(a.transpose(1, 2).reshape({n, T, C}));
  h = fc1_->forward(layer_norm2_->forward(y));
  h = activation_ == ClipTextConfig::Activation::QuickGelu ? h * torch::sigmoid(h * 1.702) : torch::gelu(h);
  return y + fc2_->forward(h);
}

ClipTextModelImpl::ClipTextModelImpl(const ClipTextConfig& c, const torch::TensorOptions& o) : config_(c) {
  auto text_model = add_container(*this, "text_model");
  auto embeddings = add_container(*text_model, "embeddings");
  token_embedding_ = add(*embeddings, "token_embedding", Embedding(c.vocab_size, c.width, o));
  position_embedding_ = add(*embeddings, "position_embedding", Embedding(c.max_positions, c.width, o));
  auto encoder = add_container(*text_model, "encoder");
  auto layers = add_container(*encoder, "layers");
  for (int64_t i = 0; i < c.layers; ++i) layers_.push_back(add(*layers, std::to_string(i), ClipEncoderLayer(c, o)));
  final_layer_norm_ = add(*text_model, "final_layer_norm", LayerNorm(c.width, c.layer_norm_eps, o));
  if (c.projection_dim > 0) text_projection_ = add(*this, "text_projection", Linear(c.width, c.projection_dim, false, o));
}

torch::Tensor ClipTextModelImpl::embed(const torch::Tensor& ids) const {
  if (ids.dim() != 2 || ids.scalar_type() != torch::kLong)
    throw Error(ErrorKind::InvalidArgument, "text encoder input must be token ids of shape [n, tokens] (int64)");
  const int64_t T = ids.size(1);
  if (T > config_.max_positions)
    throw Error(ErrorKind::InvalidArgument, "the text encoder reads at most " + std::to_string(config_.max_positions) +
                                                " tokens at once, got " + std::to_string(T) +
                                                "; split longer prompts into chunks");
  auto x = token_embedding_->forward(ids.to(device()));
  return x + position_embedding_->weight.narrow(0, 0, T);
}

torch::Tensor ClipTextModelImpl::encode(const torch::Tensor& ids, int clip_skip, bool final_norm) const {
  if (clip_skip < 1 || clip_skip > config_.layers)
    throw Error(ErrorKind::InvalidArgument, "clip skip must be between 1 and " + std::to_string(config_.layers) +
                                                ", got " + std::to_string(clip_skip));
  auto x = embed(ids);
  const int64_t run = config_.layers - (clip_skip - 1);
  for (int64_t i = 0; i < run; ++i) x = layers_[i]->forward(x);
  return final_norm ? final_layer_norm_->forward(x) : x;
}

PooledTextOutput ClipTextModelImpl::encode_pooled(const torch::Tensor& ids, int clip_skip) const {
  if (clip_skip < 1 || clip_skip > config_.layers)
    throw Error(ErrorKind::InvalidArgument, "clip skip must be between 1 and " + std::to_string(config_.layers) +
                                                ", got " + std::to_string(clip_skip));
  PooledTextOutput out;
  auto x = embed(ids);
  const int64_t keep = config_.layers - (clip_skip - 1);
  for (int64_t i = 0; i < config_.layers; ++i) {
    x = layers_[i]->forward(x);
    if (i + 1 == keep) out.hidden = x;
  }
  // sgm / HF pooling: the state at the first EOS, which has the largest id of the vocabulary.
  const auto eos = ids.to(x.device()).argmax(-1);
  const auto last = final_layer_norm_->forward(x);
  out.pooled = last.index({torch::arange(last.size(0), eos.options()), eos});
  if (text_projection_) out.pooled = text_projection_->forward(out.pooled);
  return out;
}

ClipTextOutput ClipTextModelImpl::forward_all(const torch::Tensor& ids) const {
  ClipTextOutput out;
  auto x = embed(ids);
  out.hidden_states.push_back(x);
  for (const auto& layer : layers_) {
    x = layer->forward(x);
    out.hidden_states.push_back(x);
  }
  out.last_hidden_state = final_layer_norm_->forward(x);
  return out;
}

ClipTextModel load_clip_text(const WeightView& weights, const DeviceChoice& choice, ClipActivation activation) {
  const WeightIndex index(weights);
  ClipTextModel model(ClipTextConfig::infer(index, activation), parameter_options(choice));
  // position_ids is a buffer (0..76) some files carry; positions are implicit here.
  load_weights(*model, weights, {"text_model.embeddings.position_ids"});
  model->eval();
  return model;
}

TextEncoderFn text_encoder_fn(const ClipTextModel& model) {
  return [model](const torch::Tensor& ids, int clip_skip) {
    torch::NoGradGuard no_grad;
    return model->encode(ids, clip_skip);
  };
}

}  // namespace kiln::engine::models
