#pragma once
// The CLIP text transformer (Hugging Face CLIPTextModel layout, as SD1.x checkpoints store it under
// "cond_stage_model.transformer."): token + position embeddings, pre-LN blocks with causal
// self-attention, final LayerNorm. Parameters are named "text_model.…" exactly as in the file.
#include <torch/nn/module.h>
#include <torch/types.h>

#include <functional>
#include <vector>

#include "engine/device.h"
#include "engine/io/families.h"
#include "engine/models/layers.h"
#include "engine/models/weights.h"

namespace kiln::engine::models {

struct ClipTextConfig {
  enum class Activation { QuickGelu, Gelu };
  int64_t vocab_size = 49408;
  int64_t max_positions = 77;
  int64_t width = 768;
  int64_t layers = 12;
  int64_t heads = 12;  // width / 64
  int64_t mlp_width = 3072;
  double layer_norm_eps = 1e-5;
  Activation activation = Activation::QuickGelu;
  int64_t projection_dim = 0;  // text_projection (OpenCLIP / CLIPTextModelWithProjection); 0 = none

  static ClipTextConfig sd15() { return {}; }  // OpenAI CLIP ViT-L/14
  // SDXL's two encoders: CLIP ViT-L/14 (as sd15()) and OpenCLIP ViT-bigG/14 (1280 wide, 32 layers,
  // 20 heads, MLP 5120, gelu, a 1280×1280 text projection).
  static ClipTextConfig open_clip_bigg();
  // Widths from the tensor shapes; 64-dim heads; a projection when "text_projection.weight" is
  // there. The activation is the family's (families.h); ByWidth: gelu for the 1024-wide OpenCLIP
  // ViT-H of SD2.x, quick_gelu otherwise.
  static ClipTextConfig infer(const WeightIndex& weights, ClipActivation activation = ClipActivation::ByWidth);
};

class ClipEncoderLayerImpl : public torch::nn::Module {
 public:
  ClipEncoderLayerImpl(const ClipTextConfig& config, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x) const;

 private:
  int64_t heads_;
  ClipTextConfig::Activation activation_;
  LayerNorm layer_norm1_{nullptr}, layer_norm2_{nullptr};
  Linear q_proj_{nullptr}, k_proj_{nullptr}, v_proj_{nullptr}, out_proj_{nullptr};
  Linear fc1_{nullptr}, fc2_{nullptr};
};
TORCH_MODULE(ClipEncoderLayer);

struct ClipTextOutput {
  std::vector<torch::Tensor> hidden_states;  // embeddings output, then each layer's output [n, T, C]
  torch::Tensor last_hidden_state;           // final LayerNorm of the last layer's output
};

// What SDXL takes from a text encoder: a layer's raw output and the pooled vector.
struct PooledTextOutput {
  torch::Tensor hidden;  // [n, T, C]: the output of layer L − (clip_skip − 1), no final LayerNorm
  torch::Tensor pooled;  // [n, P]: final LayerNorm of the last layer at the first EOS (argmax of the
                         // ids), through text_projection when the model has one ([n, C] otherwise)
};

class ClipTextModelImpl : public torch::nn::Module {
 public:
  ClipTextModelImpl(const ClipTextConfig& config, const torch::TensorOptions& options);

  // ids [n, T] int64 (T ≤ max_positions) → [n, T, width]: the output of layer L − (clip_skip − 1)
  // with the final LayerNorm applied (clip_skip 1 is the last layer, 2 is A1111's "Clip skip 2").
  // final_norm false returns that layer's raw output (SDXL conditions on it). Only the layers
  // needed run. Error(InvalidArgument) for clip_skip outside 1..layers.
  torch::Tensor encode(const torch::Tensor& ids, int clip_skip = 1, bool final_norm = true) const;
  // The layer before the last (clip_skip 2) raw and the pooled vector, running the tower once.
  PooledTextOutput encode_pooled(const torch::Tensor& ids, int clip_skip = 2) const;
  // Every layer's output, for tests and tools.
  ClipTextOutput forward_all(const torch::Tensor& ids) const;

  const ClipTextConfig& config() const { return config_; }
  torch::Device device() const { return token_embedding_->weight.device(); }

 private:
  torch::Tensor embed(const torch::Tensor& ids) const;

  ClipTextConfig config_;
  Embedding token_embedding_{nullptr}, position_embedding_{nullptr};
  std::vector<ClipEncoderLayer> layers_;
  LayerNorm final_layer_norm_{nullptr};
  Linear text_projection_{nullptr};
};
TORCH_MODULE(ClipTextModel);

// Builds the text encoder from `weights` (shapes give the widths) on `choice`.
ClipTextModel load_clip_text(const WeightView& weights, const DeviceChoice& choice,
                             ClipActivation activation = ClipActivation::ByWidth);

// The text encoder as the conditioning code's callback: ids [n, 77] int64 (any device) → states
// [n, 77, C] on the model's device and dtype. The model must outlive the callback.
using TextEncoderFn = std::function<torch::Tensor(const torch::Tensor& ids, int clip_skip)>;
TextEncoderFn text_encoder_fn(const ClipTextModel& model);

}  // namespace kiln::engine::models
