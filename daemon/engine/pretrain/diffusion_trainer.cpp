#include "engine/pretrain/diffusion_trainer.h"

#include <torch/torch.h>

#include <cmath>

#include "engine/error.h"
#include "engine/pretrain/mini_model.h"
#include "engine/pretrain/optim_step.h"
#include "engine/sampling/schedule.h"
#include "engine/text/clip_tokenizer.h"

namespace kiln::engine::pretrain {

namespace {
std::vector<torch::Tensor> joined(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  std::vector<torch::Tensor> out = a;
  out.insert(out.end(), b.begin(), b.end());
  return out;
}
}  // namespace

DiffusionTrainer::DiffusionTrainer(models::UNetModel unet, models::ClipTextModel text_encoder,
                                   models::AutoencoderKL vae, const DiffusionTrainOptions& options)
    : unet_(std::move(unet)), text_encoder_(std::move(text_encoder)), vae_(std::move(vae)), options_(options) {
  set_trainable(*unet_, true);
  set_trainable(*text_encoder_, true);
  set_trainable(*vae_, false);
  unet_->train();
  text_encoder_->train();
  vae_->eval();
  alphas_cumprod_ = sampling::alphas_cumprod_ldm().to(torch::kFloat32);
  empty_ids_ = torch::tensor(ClipTokenizer::context_chunk({}), torch::kInt64);
  lora::OptimizerOptions o;
  o.type = "AdamW";
  o.weight_decay = options_.weight_decay;
  o.beta1 = 0.9;
  o.beta2 = 0.999;
  optimizer_ = lora::make_optimizer(o, {lora::ParamGroup{"unet", unet_->parameters(), options_.unet_lr},
                                        lora::ParamGroup{"text_encoder", text_encoder_->parameters(), options_.text_lr}});
  unet_ema_ = Ema(*unet_, options_.ema_decay);
  text_ema_ = Ema(*text_encoder_, options_.ema_decay);
}

torch::Tensor DiffusionTrainer::encode(const torch::Tensor& images, at::Generator* gen) const {
  torch::NoGradGuard no_grad;
  const auto posterior = vae_->encode(images.to(vae_->dtype()));
  auto z = posterior.mean;
  if (gen) z = z + (0.5 * posterior.logvar).exp() * torch::randn(z.sizes(), *gen, z.scalar_type());
  return (z * vae_->config().scaling_factor).to(torch::kFloat32);
}

torch::Tensor DiffusionTrainer::eps_loss(const torch::Tensor& x0, const torch::Tensor& ids, const torch::Tensor& t,
                                         const torch::Tensor& noise) const {
  const int64_t B = x0.size(0);
  const auto ac = alphas_cumprod_.index_select(0, t).view({B, 1, 1, 1});
  const auto noisy = ac.sqrt() * x0 + (1.0 - ac).sqrt() * noise;
  const auto context = text_encoder_->encode(ids, /*clip_skip=*/1);
  const auto eps = unet_->forward(noisy, t.to(torch::kFloat32), context);
  return torch::mse_loss(eps.to(torch::kFloat32), noise);
}

DiffusionStep DiffusionTrainer::step(const torch::Tensor& images, const torch::Tensor& ids) {
  auto gen = step_generator(options_.seed, step_, /*stream=*/2);
  return step_latents(encode(images, &gen), ids);
}

DiffusionStep DiffusionTrainer::step_latents(const torch::Tensor& latents, const torch::Tensor& ids) {
  if (ids.dim() != 2 || ids.size(0) != latents.size(0))
    throw Error(ErrorKind::InvalidArgument, "one row of token ids per image");
  auto gen = step_generator(options_.seed, step_, /*stream=*/3);
  const int64_t B = latents.size(0);
  const auto t = torch::randint(0, alphas_cumprod_.size(0), {B}, gen, torch::kInt64);
  const auto noise = torch::randn(latents.sizes(), gen, torch::kFloat32);
  const auto drop = torch::rand({B}, gen, torch::kFloat32).lt(options_.caption_dropout).view({B, 1});
  const auto step_ids = torch::where(drop, empty_ids_.view({1, -1}).expand_as(ids), ids.to(torch::kInt64));

  optimizer_->zero_grad();
  const auto loss = eps_loss(latents.to(torch::kFloat32), step_ids, t, noise);
  loss.backward();
  DiffusionStep out;
  out.loss = loss.item<double>();
  out.grad_norm = clip_grad_norm(joined(unet_->parameters(), text_encoder_->parameters()), options_.max_grad_norm);
  optimizer_->set_lr(0, warmup_lr(options_.unet_lr, step_, options_.warmup_steps));
  optimizer_->set_lr(1, warmup_lr(options_.text_lr, step_, options_.warmup_steps));
  if (std::isfinite(out.grad_norm)) {
    optimizer_->step();
    unet_ema_.update(*unet_);
    text_ema_.update(*text_encoder_);
  }
  optimizer_->zero_grad();
  ++step_;
  return out;
}

double DiffusionTrainer::evaluate(const torch::Tensor& images, const torch::Tensor& ids, uint64_t seed) const {
  return evaluate_latents(encode(images, nullptr), ids, seed);
}

double DiffusionTrainer::evaluate_latents(const torch::Tensor& latents, const torch::Tensor& ids, uint64_t seed) const {
  torch::NoGradGuard no_grad;
  const auto x0 = latents.to(torch::kFloat32);
  const int64_t B = x0.size(0);
  auto gen = step_generator(seed, 0, /*stream=*/4);
  const auto t = ((torch::arange(B, torch::kFloat64) + 0.5) * (static_cast<double>(alphas_cumprod_.size(0)) / B))
                     .floor()
                     .to(torch::kInt64);
  const auto noise = torch::randn(x0.sizes(), gen, torch::kFloat32);
  return eps_loss(x0, ids.to(torch::kInt64), t, noise).item<double>();
}

NamedTensors DiffusionTrainer::state() const {
  auto out = parameters_state(*unet_, "unet.");
  append(out, parameters_state(*text_encoder_, "te."));
  append(out, unet_ema_.state("ema.unet."));
  append(out, text_ema_.state("ema.te."));
  for (auto& [name, t] : optimizer_->state()) out.emplace_back("opt." + name, t);
  return out;
}

void DiffusionTrainer::load_state(const std::map<std::string, torch::Tensor>& tensors, int64_t step) {
  load_parameters_state(*unet_, tensors, "unet.");
  load_parameters_state(*text_encoder_, tensors, "te.");
  unet_ema_.load_state(tensors, "ema.unet.");
  text_ema_.load_state(tensors, "ema.te.");
  optimizer_->load_state(strip_prefix(tensors, "opt."));
  step_ = step;
}

}  // namespace kiln::engine::pretrain
