#include "engine/models/layers.h"

#include <torch/torch.h>

namespace kiln::engine::models {

namespace {
// Parameters never require gradients here: inference runs without autograd and LoRA training
// adds its own trainable tensors beside the frozen base weights.
torch::Tensor param(torch::nn::Module& m, const std::string& name, torch::IntArrayRef shape,
                    const torch::TensorOptions& options) {
  return m.register_parameter(name, torch::empty(shape, options), /*requires_grad=*/false);
}
}  // namespace

LinearImpl::LinearImpl(int64_t in, int64_t out, bool with_bias, const torch::TensorOptions& options) {
  weight = param(*this, "weight", {out, in}, options);
  if (with_bias) bias = param(*this, "bias", {out}, options);
}

void Adaptable::add_adapter(std::shared_ptr<const LayerAdapter> adapter) {
  adapters_.push_back(std::move(adapter));
}

bool Adaptable::remove_adapter(const LayerAdapter* adapter) {
  for (auto it = adapters_.begin(); it != adapters_.end(); ++it) {
    if (it->get() == adapter) {
      adapters_.erase(it);
      return true;
    }
  }
  return false;
}

torch::Tensor Adaptable::adapted(const torch::Tensor& x, torch::Tensor y) const {
  for (const auto& a : adapters_) y = y + a->forward(x);
  return y;
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) const {
  return adapted(x, at::linear(x, weight, bias));
}

Conv2dImpl::Conv2dImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride_, int64_t padding_,
                       const torch::TensorOptions& options)
    : stride(stride_), padding(padding_) {
  weight = param(*this, "weight", {out, in, kernel, kernel}, options);
  bias = param(*this, "bias", {out}, options);
}

torch::Tensor Conv2dImpl::forward(const torch::Tensor& x) const {
  if (circular && padding > 0) {
    namespace F = torch::nn::functional;
    const auto wrapped = F::pad(x, F::PadFuncOptions({padding, padding, padding, padding}).mode(torch::kCircular));
    const int64_t no_padding[2] = {0, 0};
    return adapted(x, at::conv2d(wrapped, weight, bias, {stride, stride}, torch::IntArrayRef(no_padding)));
  }
  return adapted(x, at::conv2d(x, weight, bias, {stride, stride}, {padding, padding}));
}

void set_circular_padding(torch::nn::Module& module, bool on) {
  for (const auto& m : module.modules())
    if (auto* conv = dynamic_cast<Conv2dImpl*>(m.get())) conv->circular = on;
}

GroupNormImpl::GroupNormImpl(int64_t groups_, int64_t channels, double eps_, const torch::TensorOptions& options)
    : groups(groups_), eps(eps_) {
  weight = param(*this, "weight", {channels}, options);
  bias = param(*this, "bias", {channels}, options);
}

torch::Tensor GroupNormImpl::forward(const torch::Tensor& x) const {
  return at::group_norm(x, groups, weight, bias, eps);
}

torch::Tensor GroupNormImpl::forward_silu(const torch::Tensor& x) const {
  auto h = forward(x);
  return torch::GradMode::is_enabled() ? torch::silu(h) : torch::silu_(h);
}

LayerNormImpl::LayerNormImpl(int64_t dim, double eps_, const torch::TensorOptions& options) : eps(eps_) {
  weight = param(*this, "weight", {dim}, options);
  bias = param(*this, "bias", {dim}, options);
}

torch::Tensor LayerNormImpl::forward(const torch::Tensor& x) const {
  return at::layer_norm(x, {weight.size(0)}, weight, bias, eps);
}

EmbeddingImpl::EmbeddingImpl(int64_t count, int64_t dim, const torch::TensorOptions& options) {
  weight = param(*this, "weight", {count, dim}, options);
}

torch::Tensor EmbeddingImpl::forward(const torch::Tensor& ids) const {
  return at::embedding(weight, ids);
}

std::shared_ptr<torch::nn::Module> add_container(torch::nn::Module& parent, const std::string& name) {
  return parent.register_module(name, std::make_shared<torch::nn::Module>(name));
}

}  // namespace kiln::engine::models
