#include "engine/lora/trainer.h"

#include <torch/torch.h>

#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "engine/compat.h"
#include "engine/error.h"
#include "engine/io/atomic_file.h"
#include "engine/io/safetensors.h"
#include "engine/sampling/schedule.h"
#include "engine/text/conditioning_sdxl.h"

namespace kiln::engine::lora {

namespace fs = std::filesystem;

namespace {

constexpr int kStateFormat = 1;
constexpr double kFp16InitialScale = 65536.0;  // torch.cuda.amp.GradScaler defaults
constexpr int64_t kFp16GrowthInterval = 2000;

void check(bool ok, const std::string& message) {
  if (!ok) throw Error(ErrorKind::InvalidArgument, message);
}

}  // namespace

LoraTrainer::LoraTrainer(models::StableDiffusion model, LoraNetwork& network, TrainerOptions o)
    : model_(std::move(model)),
      network_(network),
      options_(std::move(o)),
      schedule_([&] {
        auto s = options_.lr_schedule;
        s.base_lr = options_.learning_rate;
        return LrSchedule(s);
      }()),
      generator_(at::detail::createCPUGenerator(options_.seed)) {
  if (model_.inpainting())
    throw Error(ErrorKind::Unsupported,
                "the base model is an inpainting model (its UNet takes 9 input channels), which LoRAs are not trained "
                "on: train on the ordinary version of the model; the LoRA then works with its inpainting version too");
  check(options_.gradient_accumulation_steps >= 1, "gradient_accumulation_steps must be at least 1");
  check(options_.max_grad_norm >= 0, "max_grad_norm cannot be negative (0 turns clipping off)");
  check(options_.min_snr_gamma >= 0, "min_snr_gamma cannot be negative (0 turns it off)");
  check(options_.noise_offset >= 0, "noise_offset cannot be negative");
  check(options_.learning_rate > 0, "the learning rate must be positive");
  const auto& mp = options_.mixed_precision;
  check(mp == "no" || mp == "fp16" || mp == "bf16", "mixed_precision must be no, fp16 or bf16, not \"" + mp + "\"");
  const torch::Device device = model_.unet->device();
  if (mp != "no") {
    if (!device.is_cuda())
      throw Error(ErrorKind::Unsupported,
                  "mixed precision (" + mp + ") needs a CUDA GPU; on " + device.str() + " train with mixed_precision no");
    autocast_ = mp == "fp16" ? torch::kFloat16 : torch::kBFloat16;
    if (mp == "fp16") loss_scale_ = kFp16InitialScale;
  }

  network_.set_multiplier(1.0);
  network_.attach();
  std::vector<ParamGroup> groups;
  auto te = network_.parameters(Component::TextEncoder), unet = network_.parameters(Component::UNet);
  // kohya prepare_optimizer_params: the text encoder group first, each at its own lr.
  if (!te.empty()) groups.push_back({"text_encoder", te, options_.text_encoder_lr.value_or(options_.learning_rate)});
  if (!unet.empty()) groups.push_back({"unet", unet, options_.unet_lr.value_or(options_.learning_rate)});
  check(!groups.empty(), "the LoRA network has no modules to train");
  train_text_encoder_ = !te.empty();
  for (const auto& g : groups) params_.insert(params_.end(), g.params.begin(), g.params.end());
  optimizer_ = make_optimizer(options_.optimizer, std::move(groups));

  alphas_cumprod_ = sampling::alphas_cumprod_diffusers().to(device);
  // kohya prepare_scheduler_for_custom_training: SNR = (√ᾱ / √(1 − ᾱ))².
  snr_ = (alphas_cumprod_.sqrt() / (1.0 - alphas_cumprod_).sqrt()).pow(2);
  model_.unet->set_gradient_checkpointing(options_.gradient_checkpointing);
}

LoraTrainer::~LoraTrainer() { model_.unet->set_gradient_checkpointing(false); }

double LoraTrainer::current_lr(size_t group) const {
  return optimizer_->groups().at(group).lr * schedule_.factor(global_step_);
}

namespace {
// kohya (SD1 and sdxl_train_util): [B, n, 77] chunk states → the first BOS, the 75 tokens of every
// chunk, and the very last state (EOS or padding).
torch::Tensor join_chunks(const torch::Tensor& states, int64_t B, int64_t n) {
  const auto s = states.reshape({B, n * 77, states.size(-1)});
  std::vector<torch::Tensor> parts{s.narrow(1, 0, 1)};
  for (int64_t k = 0; k < n; ++k) parts.push_back(s.narrow(1, k * 77 + 1, 75));
  parts.push_back(s.narrow(1, n * 77 - 1, 1));
  return torch::cat(parts, 1);
}
}  // namespace

torch::Tensor LoraTrainer::encode_text(const torch::Tensor& ids_in) const {
  auto ids = ids_in.to(model_.text_encoder->device(), torch::kLong);
  if (ids.dim() == 2) return model_.text_encoder->encode(ids, options_.clip_skip);
  check(ids.dim() == 3 && ids.size(2) == 77, "input_ids must be [B, 77] or [B, chunks, 77]");
  const int64_t B = ids.size(0), n = ids.size(1);
  const auto states = model_.text_encoder->encode(ids.reshape({B * n, 77}), options_.clip_skip);
  // kohya (SD1): keep the first BOS, the 75 tokens of every chunk, and the very last EOS.
  return join_chunks(states, B, n);
}


LoraTrainer::TextConditioning LoraTrainer::encode_batch_text(const TrainBatch& batch) const {
  if (!model_.traits().size_conditioning) return {encode_text(batch.input_ids), {}};
  // SDXL: kohya get_hidden_states_sdxl, then get_size_embeddings.
  check(batch.input_ids_2.defined(), "an SDXL training batch needs input_ids_2 (the second encoder's ids)");
  check(batch.size_conditioning.defined() && batch.size_conditioning.dim() == 2 && batch.size_conditioning.size(1) == 6,
        "an SDXL training batch needs size_conditioning [B, 6] (original h, w, crop top, left, target h, w)");
  const auto& te1 = model_.text_encoder;
  const auto& te2 = model_.text_encoder_2;
  auto ids1 = batch.input_ids.to(te1->device(), torch::kLong), ids2 = batch.input_ids_2.to(te2->device(), torch::kLong);
  check(ids1.sizes() == ids2.sizes() && (ids1.dim() == 2 || (ids1.dim() == 3 && ids1.size(2) == 77)),
        "input_ids and input_ids_2 must both be [B, 77] or [B, chunks, 77]");
  const int64_t B = ids1.size(0), n = ids1.dim() == 3 ? ids1.size(1) : 1;
  ids1 = ids1.reshape({B * n, 77});
  ids2 = ids2.reshape({B * n, 77});
  const auto h1 = te1->encode(ids1, /*clip_skip=*/2, /*final_norm=*/false);  // kohya hidden_states[11]
  const auto out2 = te2->encode_pooled(ids2, /*clip_skip=*/2);                 // hidden_states[-2], pool_workaround
  torch::Tensor states1 = h1.reshape({B, n * 77, h1.size(-1)}), states2 = out2.hidden.reshape({B, n * 77, out2.hidden.size(-1)});
  auto pooled = out2.pooled;
  if (n > 1) {
    states1 = join_chunks(h1, B, n);
    states2 = join_chunks(out2.hidden, B, n);
    pooled = pooled.reshape({B, n, pooled.size(-1)}).select(1, 0);  // kohya: pool2[::n_size]
  }
  TextConditioning out;
  out.context = torch::cat({states1, states2.to(states1.scalar_type())}, -1);
  const auto sizes = fourier_embedding(batch.size_conditioning.to(pooled.device(), torch::kFloat32));
  out.vector = torch::cat({pooled.to(torch::kFloat32), sizes}, 1);
  return out;
}

torch::Tensor LoraTrainer::latents_of(const TrainBatch& batch) {
  const auto device = model_.unet->device();
  if (batch.latents.defined()) return batch.latents.to(device, torch::kFloat32);
  check(batch.images.defined(), "a training batch needs latents or images");
  torch::NoGradGuard no_grad;
  const auto& vae = model_.vae;
  const auto posterior = vae->encode(batch.images.to(vae->device(), vae->dtype()));
  // A sample of the posterior, as kohya encodes (and caches) latents.
  const auto eps = torch::randn(posterior.mean.sizes(), generator_, torch::kFloat32).to(posterior.mean.device());
  const auto z = posterior.mean.to(torch::kFloat32) + (0.5 * posterior.logvar.to(torch::kFloat32)).exp() * eps;
  return (z * vae->config().scaling_factor).to(device);
}

StepResult LoraTrainer::step(const TrainBatch& batch, bool end_of_epoch) {
  check(batch.input_ids.defined(), "a training batch needs input_ids");
  const auto device = model_.unet->device();
  StepResult result;

  const auto latents = latents_of(batch);
  const int64_t B = latents.size(0);
  check(batch.input_ids.size(0) == B, "input_ids and latents have different batch sizes");
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
  // The draws happen in kohya's order: noise, offset noise, timesteps.
  auto noise = batch.noise.defined() ? batch.noise.to(torch::kFloat32) : torch::randn(latents.sizes(), generator_, f32);
  noise = noise.to(device);
  if (options_.noise_offset > 0) {
    auto offset = batch.offset_noise.defined() ? batch.offset_noise.to(torch::kFloat32)
                                               : torch::randn({B, latents.size(1), 1, 1}, generator_, f32);
    noise = noise + options_.noise_offset * offset.to(device);
  }
  auto t = batch.timesteps.defined() ? batch.timesteps.to(torch::kLong)
                                     : torch::randint(0, alphas_cumprod_.size(0), {B}, generator_,
                                                      torch::TensorOptions().dtype(torch::kLong));
  t = t.to(device);
  check(t.numel() == B, "timesteps must hold one value per sample");
  // diffusers DDPMScheduler.add_noise.
  const auto ac = alphas_cumprod_.index_select(0, t);
  const auto sqrt_ac = ac.pow(0.5).view({B, 1, 1, 1}), sqrt_1m = (1.0 - ac).pow(0.5).view({B, 1, 1, 1});
  const auto noisy = sqrt_ac * latents + sqrt_1m * noise;

  torch::Tensor loss;
  {
    std::unique_ptr<compat::CudaAutocast> autocast;
    if (autocast_) autocast = std::make_unique<compat::CudaAutocast>(*autocast_);
    TextConditioning text;
    {
      torch::AutoGradMode grad(train_text_encoder_);
      text = encode_batch_text(batch);
    }
    const torch::Tensor& ehs = text.context;
    const auto& unet = model_.unet;
    auto pred = unet->forward(noisy.to(unet->dtype()), t, ehs.to(unet->dtype()),
                              text.vector.defined() ? text.vector.to(unet->dtype()) : torch::Tensor());
    auto per_sample = (pred.to(torch::kFloat32) - noise).pow(2).mean({1, 2, 3});
    if (batch.loss_weights.defined()) per_sample = per_sample * batch.loss_weights.to(device, torch::kFloat32);
    if (options_.min_snr_gamma > 0) {
      const auto snr = snr_.index_select(0, t);
      per_sample = per_sample * (torch::clamp_max(snr, options_.min_snr_gamma) / snr);
    }
    loss = per_sample.mean();
    if (options_.keep_trace) {
      result.trace.timesteps = t.cpu();
      result.trace.noisy_latents = noisy.detach().cpu();
      result.trace.encoder_hidden_states = ehs.detach().to(torch::kCPU, torch::kFloat32);
      if (text.vector.defined()) result.trace.vector = text.vector.detach().to(torch::kCPU, torch::kFloat32);
      result.trace.noise_pred = pred.detach().to(torch::kCPU, torch::kFloat32);
      result.trace.target = noise.detach().cpu();
    }
  }
  // accelerate divides the loss by the accumulation steps; fp16 scales it to keep gradients finite.
  (loss * (loss_scale_ / static_cast<double>(options_.gradient_accumulation_steps))).backward();
  result.loss = loss.item<double>();
  ++micro_step_;
  ++pending_;

  const bool sync = pending_ >= options_.gradient_accumulation_steps || end_of_epoch;
  if (sync) {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> grads;
    for (auto& p : params_)
      if (p.grad().defined()) grads.push_back(p.mutable_grad());
    if (loss_scale_ != 1.0)
      for (auto& g : grads) g.div_(loss_scale_);
    if (options_.keep_trace)
      for (auto& p : params_) result.trace.grads.push_back(p.grad().defined() ? p.grad().clone().cpu() : torch::Tensor());
    // torch.nn.utils.clip_grad_norm_: the 2-norm of the per-tensor 2-norms.
    std::vector<torch::Tensor> norms;
    for (const auto& g : grads) norms.push_back(g.norm());
    const auto total = norms.empty() ? torch::zeros({}) : torch::stack(norms).norm();
    result.grad_norm = total.item<double>();
    const bool finite = std::isfinite(result.grad_norm);
    if (options_.max_grad_norm > 0 && finite) {
      const auto coef = torch::clamp_max(options_.max_grad_norm / (total + 1e-6), 1.0);
      for (auto& g : grads) g.mul_(coef);
    }
    for (size_t g = 0; g < optimizer_->groups().size(); ++g) {
      const double lr = current_lr(g);
      optimizer_->set_lr(g, lr);
      result.lrs.push_back(lr);
    }
    if (finite || !autocast_) {
      // (Without a loss scale a non-finite gradient is stepped like torch would, so it shows up.)
      optimizer_->step();
      ++global_step_;
      result.optimizer_stepped = true;
      if (loss_scale_ != 1.0 && ++good_steps_ >= kFp16GrowthInterval) loss_scale_ *= 2.0, good_steps_ = 0;
    } else {
      // GradScaler: skip the step and halve the scale; the lr schedule does not advance.
      result.skipped = true;
      loss_scale_ *= 0.5;
      good_steps_ = 0;
    }
    optimizer_->zero_grad();
    pending_ = 0;
  }
  result.global_step = global_step_;
  return result;
}

void LoraTrainer::save_state(const fs::path& dir) const {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(ErrorKind::InvalidArgument, "cannot create the training state folder " + dir.string() + ": " + ec.message());
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& [k, t] : network_.state_dict())
    if (k.size() < 6 || k.compare(k.size() - 6, 6, ".alpha") != 0) tensors.emplace_back("network." + k, t.cpu());
  for (const auto& [k, t] : optimizer_->state()) tensors.emplace_back("optimizer." + k, t);
  for (size_t i = 0; i < params_.size(); ++i)
    if (params_[i].grad().defined()) tensors.emplace_back("grad." + std::to_string(i), params_[i].grad().cpu());
  tensors.emplace_back("rng.cpu", generator_.get_state());
  const std::map<std::string, std::string> md{{"kiln_global_step", std::to_string(global_step_)},
                                              {"kiln_micro_step", std::to_string(micro_step_)}};
  save_safetensors(dir / "state.safetensors", tensors, md);
  nlohmann::json j = {{"format", kStateFormat},
                      {"global_step", global_step_},
                      {"micro_step", micro_step_},
                      {"pending_micro_batches", pending_},
                      {"loss_scale", loss_scale_},
                      {"good_steps", good_steps_},
                      {"optimizer", options_.optimizer.type},
                      {"seed", options_.seed},
                      {"lora_modules", network_.entries().size()},
                      {"parameters", params_.size()}};
  write_file_atomically(dir / "state.json", j.dump(2));
}

void LoraTrainer::load_state(const fs::path& dir) {
  std::ifstream in(dir / "state.json");
  if (!in) throw Error(ErrorKind::NotFound, "no training state in " + dir.string() + " (state.json is missing)");
  const auto j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || j.value("format", 0) != kStateFormat)
    throw Error(ErrorKind::BadFormat, (dir / "state.json").string() + " is not a Kiln training state");
  const auto file = SafeTensorsFile::open(dir / "state.safetensors");
  const auto& md = file->metadata();
  auto it = md.find("kiln_global_step");
  if (it == md.end() || it->second != std::to_string(j.at("global_step").get<int64_t>()))
    throw Error(ErrorKind::BadFormat, "the training state in " + dir.string() +
                                          " is inconsistent (state.json and state.safetensors are from different steps)");
  if (j.at("parameters").get<size_t>() != params_.size() || j.at("optimizer").get<std::string>() != options_.optimizer.type)
    throw Error(ErrorKind::InvalidArgument, "the training state in " + dir.string() +
                                                " was saved with another network or optimizer");
  std::map<std::string, torch::Tensor> network, optimizer;
  std::map<size_t, torch::Tensor> grads;
  torch::Tensor rng;
  for (const auto& info : file->tensors()) {
    const std::string& k = info.name;
    auto t = file->tensor(k).clone();  // own the memory: the mapping goes away with `file`
    if (k.rfind("network.", 0) == 0) network[k.substr(8)] = t;
    else if (k.rfind("optimizer.", 0) == 0) optimizer[k.substr(10)] = t;
    else if (k.rfind("grad.", 0) == 0) grads[std::stoul(k.substr(5))] = t;
    else if (k == "rng.cpu") rng = t;
  }
  check(rng.defined(), "the training state lacks the random generator state");
  // Alphas are fixed by the network's construction; only the weights are restored.
  network_.load_state_dict(network);
  optimizer_->load_state(optimizer);
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    auto g = grads.find(i);
    params_[i].mutable_grad() = g == grads.end() ? torch::Tensor() : g->second.to(params_[i].options().requires_grad(false));
  }
  generator_.set_state(rng);
  global_step_ = j.at("global_step");
  micro_step_ = j.at("micro_step");
  pending_ = j.at("pending_micro_batches");
  loss_scale_ = j.at("loss_scale");
  good_steps_ = j.at("good_steps");
}

}  // namespace kiln::engine::lora
