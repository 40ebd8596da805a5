#include "engine/pretrain/vae_trainer.h"

#include <torch/torch.h>

#include <cmath>

#include "engine/error.h"
#include "engine/pretrain/mini_model.h"
#include "engine/pretrain/optim_step.h"

namespace kiln::engine::pretrain {

double warmup_lr(double base, int64_t step, int64_t warmup_steps) {
  if (warmup_steps <= 0) return base;
  return base * std::min(1.0, static_cast<double>(step + 1) / static_cast<double>(warmup_steps));
}

double clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads, norms;
  for (const auto& p : params)
    if (p.grad().defined()) {
      grads.push_back(p.grad());
      norms.push_back(p.grad().norm());
    }
  if (grads.empty()) return 0;
  const auto total = torch::stack(norms).norm();
  const double norm = total.item<double>();
  if (max_norm > 0 && std::isfinite(norm) && norm > max_norm)
    for (auto& g : grads) g.mul_(max_norm / (norm + 1e-6));
  return norm;
}

namespace {
struct LossTerms {
  torch::Tensor total, l1, mse, edge, kl, mean;
};

LossTerms vae_loss(const models::AutoencoderKL& vae, const torch::Tensor& images, const VaeTrainOptions& o,
                   at::Generator* gen) {
  const auto posterior = vae->encode(images);
  auto z = posterior.mean;
  if (gen) z = z + (0.5 * posterior.logvar).exp() * torch::randn(z.sizes(), *gen, z.scalar_type());
  const auto rec = vae->decode(z);
  LossTerms t;
  const auto diff = rec - images;
  t.l1 = diff.abs().mean();
  t.mse = diff.pow(2).mean();
  using torch::indexing::Slice;
  const auto dx = diff.index({Slice(), Slice(), Slice(), Slice(1, torch::indexing::None)}) -
                  diff.index({Slice(), Slice(), Slice(), Slice(torch::indexing::None, -1)});
  const auto dy = diff.index({Slice(), Slice(), Slice(1, torch::indexing::None), Slice()}) -
                  diff.index({Slice(), Slice(), Slice(torch::indexing::None, -1), Slice()});
  t.edge = 0.5 * (dx.abs().mean() + dy.abs().mean());
  t.kl = 0.5 * (posterior.mean.pow(2) + posterior.logvar.exp() - 1.0 - posterior.logvar).mean();
  t.total = o.l1_weight * t.l1 + o.mse_weight * t.mse + o.edge_weight * t.edge + o.kl_weight * t.kl;
  t.mean = posterior.mean;
  return t;
}

VaeLosses to_values(const LossTerms& t) {
  VaeLosses v;
  v.total = t.total.item<double>();
  v.l1 = t.l1.item<double>();
  v.mse = t.mse.item<double>();
  v.edge = t.edge.item<double>();
  v.kl = t.kl.item<double>();
  v.latent_std = t.mean.detach().std().item<double>();
  return v;
}

void check_images(const torch::Tensor& images) {
  if (images.dim() != 4 || images.size(1) != 3 || images.size(2) % 8 || images.size(3) % 8)
    throw Error(ErrorKind::InvalidArgument, "VAE training takes images [B, 3, H, W] with H and W multiples of 8");
}
}  // namespace

VaeTrainer::VaeTrainer(models::AutoencoderKL vae, const VaeTrainOptions& options)
    : vae_(std::move(vae)), options_(options) {
  set_trainable(*vae_, true);
  vae_->train();
  lora::OptimizerOptions o;
  o.type = "AdamW";
  o.weight_decay = options_.weight_decay;
  o.beta1 = 0.9;
  o.beta2 = 0.99;
  optimizer_ = lora::make_optimizer(o, {lora::ParamGroup{"vae", vae_->parameters(), options_.lr}});
}

VaeLosses VaeTrainer::step(const torch::Tensor& images) {
  check_images(images);
  auto gen = step_generator(options_.seed, step_, /*stream=*/1);
  optimizer_->zero_grad();
  const auto terms = vae_loss(vae_, images.to(vae_->dtype()), options_, &gen);
  terms.total.backward();
  VaeLosses v = to_values(terms);
  v.grad_norm = clip_grad_norm(vae_->parameters(), options_.max_grad_norm);
  optimizer_->set_lr(0, warmup_lr(options_.lr, step_, options_.warmup_steps));
  if (std::isfinite(v.grad_norm)) optimizer_->step();
  optimizer_->zero_grad();
  ++step_;
  return v;
}

VaeLosses VaeTrainer::evaluate(const torch::Tensor& images) const {
  check_images(images);
  torch::NoGradGuard no_grad;
  return to_values(vae_loss(vae_, images.to(vae_->dtype()), options_, nullptr));
}

NamedTensors VaeTrainer::state() const {
  auto out = parameters_state(*vae_, "vae.");
  for (auto& [name, t] : optimizer_->state()) out.emplace_back("opt." + name, t);
  return out;
}

void VaeTrainer::load_state(const std::map<std::string, torch::Tensor>& tensors, int64_t step) {
  load_parameters_state(*vae_, tensors, "vae.");
  optimizer_->load_state(strip_prefix(tensors, "opt."));
  step_ = step;
}

}  // namespace kiln::engine::pretrain
