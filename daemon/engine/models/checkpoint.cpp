#include "engine/models/checkpoint.h"

#include <torch/torch.h>

#include "engine/models/layers.h"

namespace kiln::engine::models {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// What backward needs, held by the autograd node: the function and detached inputs (no graph).
struct Saved : torch::CustomClassHolder {
  CheckpointedFn fn;
  std::vector<torch::Tensor> inputs;
  std::vector<bool> input_needs_grad;
  std::vector<torch::Tensor> params;
};

struct Recompute : torch::autograd::Function<Recompute> {
  // `all` is inputs then params, so autograd sees every tensor that may need a gradient.
  static torch::Tensor forward(AutogradContext* ctx, c10::intrusive_ptr<Saved> saved, torch::TensorList all) {
    (void)all;
    auto out = saved->fn(saved->inputs);  // grad mode is off here: nothing is kept
    ctx->saved_data["saved"] = c10::IValue::make_capsule(std::move(saved));
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    auto saved = c10::static_intrusive_pointer_cast<Saved>(ctx->saved_data["saved"].toCapsule());
    std::vector<torch::Tensor> inputs, wrt;
    std::vector<int> wrt_slot;  // position of each differentiated tensor in the returned list
    for (size_t i = 0; i < saved->inputs.size(); ++i) {
      auto x = saved->inputs[i];
      if (saved->input_needs_grad[i]) {
        x = x.detach().requires_grad_(true);
        wrt.push_back(x);
        wrt_slot.push_back(static_cast<int>(i));
      }
      inputs.push_back(x);
    }
    for (size_t i = 0; i < saved->params.size(); ++i) {
      if (saved->params[i].requires_grad()) {
        wrt.push_back(saved->params[i]);
        wrt_slot.push_back(static_cast<int>(saved->inputs.size() + i));
      }
    }
    torch::Tensor out;
    {
      torch::AutoGradMode enable(true);
      out = saved->fn(inputs);
    }
    // Slot 0 is the (non-tensor) Saved argument, then one per tensor of `all`.
    variable_list grads(1 + saved->inputs.size() + saved->params.size());
    if (!wrt.empty() && out.requires_grad()) {
      auto g = torch::autograd::grad({out}, wrt, {grad_out[0]}, /*retain_graph=*/false, /*create_graph=*/false,
                                     /*allow_unused=*/true);
      for (size_t k = 0; k < g.size(); ++k) grads[1 + wrt_slot[k]] = g[k];
    }
    return grads;
  }
};

}  // namespace

torch::Tensor checkpointed(const CheckpointedFn& fn, const std::vector<torch::Tensor>& inputs,
                           const std::vector<torch::Tensor>& params) {
  if (!torch::GradMode::is_enabled()) return fn(inputs);
  auto saved = c10::make_intrusive<Saved>();
  saved->fn = fn;
  std::vector<torch::Tensor> all;
  for (const auto& x : inputs) {
    TORCH_CHECK(x.defined(), "checkpointed(): every input must be a defined tensor");
    saved->inputs.push_back(x.detach());
    saved->input_needs_grad.push_back(x.requires_grad());
    all.push_back(x);
  }
  saved->params = params;
  all.insert(all.end(), params.begin(), params.end());
  return Recompute::apply(std::move(saved), torch::TensorList(all));
}

std::vector<torch::Tensor> tensors_needing_grad(const torch::nn::Module& module) {
  std::vector<torch::Tensor> out;
  for (const auto& p : module.parameters())
    if (p.requires_grad()) out.push_back(p);
  auto visit = [&out](const torch::nn::Module& m) {
    if (const auto* layer = dynamic_cast<const Adaptable*>(&m))
      for (const auto& a : layer->adapters())
        for (const auto& t : a->tensors())
          if (t.requires_grad()) out.push_back(t);
  };
  visit(module);
  for (const auto& child : module.modules(/*include_self=*/false)) visit(*child);
  return out;
}

}  // namespace kiln::engine::models
