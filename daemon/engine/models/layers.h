#pragma once
// Minimal layers for inference-first models. Unlike torch::nn's, their parameters are allocated
// uninitialised, directly on the target device and dtype: a checkpoint fills every one of them
// with a single copy, so default initialisation would only cost time and a second allocation.
// make_sd15_random() initialises them explicitly when there is no checkpoint.
#include <torch/nn/module.h>
#include <torch/types.h>

#include <memory>
#include <string>
#include <vector>

namespace kiln::engine::models {

// An extra path added to a layer's output, y = layer(x) + Σ adapter(x). LoRA attaches these
// without touching the base weights, so detaching them restores the layer bit for bit and
// switching LoRAs never reloads the model. Attach and detach only between forward passes.
class LayerAdapter {
 public:
  virtual ~LayerAdapter() = default;
  virtual torch::Tensor forward(const torch::Tensor& x) const = 0;
  // Tensors the adapter computes with that may need gradients (for gradient checkpointing).
  virtual std::vector<torch::Tensor> tensors() const { return {}; }
};

// The adapter list shared by Linear and Conv2d.
class Adaptable {
 public:
  void add_adapter(std::shared_ptr<const LayerAdapter> adapter);
  // False when `adapter` was not attached.
  bool remove_adapter(const LayerAdapter* adapter);
  const std::vector<std::shared_ptr<const LayerAdapter>>& adapters() const { return adapters_; }

 protected:
  // y plus every adapter's output for x; y itself when there are none.
  torch::Tensor adapted(const torch::Tensor& x, torch::Tensor y) const;

 private:
  std::vector<std::shared_ptr<const LayerAdapter>> adapters_;
};

class LinearImpl : public torch::nn::Module, public Adaptable {
 public:
  LinearImpl(int64_t in, int64_t out, bool bias, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x) const;

  torch::Tensor weight;  // [out, in]
  torch::Tensor bias;    // [out] or undefined
};
TORCH_MODULE(Linear);

class Conv2dImpl : public torch::nn::Module, public Adaptable {
 public:
  Conv2dImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding,
             const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x) const;

  torch::Tensor weight;  // [out, in, k, k]
  torch::Tensor bias;    // [out]
  int64_t stride, padding;
  // Pads circularly instead of with zeros (A1111's "Tiling"): the image wraps around, so what leaves
  // one edge comes back at the other and the result tiles seamlessly. Adapters keep zero padding.
  bool circular = false;
};
TORCH_MODULE(Conv2d);

// Switches circular padding on or off for every padded Conv2d inside `module`.
void set_circular_padding(torch::nn::Module& module, bool on);

class GroupNormImpl : public torch::nn::Module {
 public:
  GroupNormImpl(int64_t groups, int64_t channels, double eps, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x) const;
  // silu(forward(x)): the activation runs in place on the norm's fresh output when autograd is not
  // recording (SiLU's backward needs its input), saving one activation-sized buffer per call.
  torch::Tensor forward_silu(const torch::Tensor& x) const;

  torch::Tensor weight, bias;
  int64_t groups;
  double eps;
};
TORCH_MODULE(GroupNorm);

class LayerNormImpl : public torch::nn::Module {
 public:
  LayerNormImpl(int64_t dim, double eps, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x) const;

  torch::Tensor weight, bias;
  double eps;
};
TORCH_MODULE(LayerNorm);

class EmbeddingImpl : public torch::nn::Module {
 public:
  EmbeddingImpl(int64_t count, int64_t dim, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& ids) const;

  torch::Tensor weight;  // [count, dim]
};
TORCH_MODULE(Embedding);

// A plain child module used only as a name in the parameter path, so that parameters land
// under the checkpoint's own names (e.g. the "in_layers" of "in_layers.2.weight").
std::shared_ptr<torch::nn::Module> add_container(torch::nn::Module& parent, const std::string& name);

// Registers `module` under `name` in `parent` and returns it (names may be indices: "0", "2").
template <typename M>
M add(torch::nn::Module& parent, const std::string& name, M module) {
  return parent.register_module(name, std::move(module));
}

}  // namespace kiln::engine::models
