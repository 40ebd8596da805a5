#pragma once
// One LoRA optimisation step with kohya train_network.py semantics:
//   latents  the batch's cached latents (VAE mean-or-sample · 0.18215), or the VAE encodes the
//            pixels now (a posterior sample, as kohya does)
//   noise    randn like the latents, + noise_offset · randn[B, C, 1, 1] when set
//   t        uniform integers in [0, 1000)
//   noisy    √ᾱ_t · latents + √(1 − ᾱ_t) · noise (diffusers float32 ᾱ)
//   context  the LoRA text encoder's states (clip_skip; 75-token chunks joined kohya's way for
//            --max_token_length 150/225); gradients flow through it when the text encoder trains.
//            SDXL (sdxl_train_network.py): both encoders' penultimate states concatenated, and the
//            vector y = [the second encoder's pooled output, the Fourier-embedded original size,
//            crop and target size of each image] (sdxl_train_util.get_size_embeddings)
//   loss     mean over C,H,W of (UNet(noisy, t, context) − noise)², × min(SNR_t, γ)/SNR_t with
//            --min_snr_gamma, mean over the batch
// then backward (divided by gradient_accumulation_steps), and on the last micro-batch of a cycle:
// clip_grad_norm_ (max_grad_norm, 0 = off), lr from the schedule, optimizer step, zero_grad.
// Random draws come from the trainer's own seeded CPU generator, whose state is part of the
// resume state: N steps, save, restore in a new process, M steps equals N+M steps.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>
#include <torch/types.h>

#include "engine/lora/lr_schedule.h"
#include "engine/lora/network.h"
#include "engine/lora/optimizers.h"
#include "engine/models/stable_diffusion.h"

namespace kiln::engine::lora {

struct TrainerOptions {
  double learning_rate = 1e-4;            // --learning_rate: the default of both groups
  std::optional<double> unet_lr;          // --unet_lr
  std::optional<double> text_encoder_lr;  // --text_encoder_lr
  OptimizerOptions optimizer;
  LrScheduleOptions lr_schedule;          // base_lr is filled from learning_rate
  int64_t gradient_accumulation_steps = 1;
  double max_grad_norm = 1.0;             // 0 = no clipping
  double noise_offset = 0;                // 0 = off
  double min_snr_gamma = 0;               // 0 = off
  int clip_skip = 1;
  bool gradient_checkpointing = false;    // recompute UNet blocks in backward
  std::string mixed_precision = "no";     // "no", "fp16", "bf16" (autocast; CUDA only)
  uint64_t seed = 0;
  bool keep_trace = false;                // fill StepResult::trace (tests, debugging)
};

struct TrainBatch {
  torch::Tensor latents;    // [B, 4, h, w], already × 0.18215; or undefined and:
  torch::Tensor images;     // [B, 3, H, W] in [-1, 1], encoded by the VAE each step
  torch::Tensor input_ids;  // [B, 77], or [B, n, 77] for 75·n-token captions
  // SDXL: the second encoder's ids (kohya pads them with 0), shaped as input_ids, and per image
  // [original h, original w, crop top, crop left, target h, target w] ([B, 6]).
  torch::Tensor input_ids_2;
  torch::Tensor size_conditioning;
  torch::Tensor loss_weights;  // [B] (kohya prior_loss_weight for regularisation images); default 1
  // Given values instead of the trainer's random draws (reproducing a reference run):
  torch::Tensor noise;         // [B, 4, h, w]
  torch::Tensor offset_noise;  // [B, 4, 1, 1], used with noise_offset
  torch::Tensor timesteps;     // [B] int64
};

struct StepTrace {
  torch::Tensor timesteps, noisy_latents, encoder_hidden_states, noise_pred, target;
  torch::Tensor vector;  // SDXL's y
  std::vector<torch::Tensor> grads;  // before clipping, in parameters() order (on optimizer steps)
};

struct StepResult {
  double loss = 0;                 // this micro-batch's loss
  bool optimizer_stepped = false;  // this micro-batch completed an accumulation cycle
  bool skipped = false;            // fp16: the step was skipped for inf/nan gradients
  double grad_norm = 0;            // total gradient norm before clipping (on optimizer steps)
  std::vector<double> lrs;         // per parameter group, as used by this optimizer step
  int64_t global_step = 0;         // optimizer steps done after this call
  StepTrace trace;                 // with keep_trace
};

class LoraTrainer {
 public:
  // Attaches `network` (multiplier 1) to `model`, which must be the model it was created for.
  // Throws Error(InvalidArgument) for inconsistent options and Error(Unsupported) for mixed
  // precision off CUDA.
  LoraTrainer(models::StableDiffusion model, LoraNetwork& network, TrainerOptions options);
  ~LoraTrainer();

  // One micro-batch. `end_of_epoch` completes a partial accumulation cycle, as accelerate does at
  // the end of the dataloader.
  StepResult step(const TrainBatch& batch, bool end_of_epoch = false);

  int64_t global_step() const { return global_step_; }
  int64_t micro_step() const { return micro_step_; }
  Optimizer& optimizer() { return *optimizer_; }
  const LrSchedule& lr_schedule() const { return schedule_; }
  double current_lr(size_t group) const;

  // Everything a resume needs, in `dir`: state.safetensors (LoRA weights in float32, optimizer
  // state, accumulated gradients of an unfinished cycle, the generator state) and state.json
  // (counters, loss scale, a summary of the options). Both written atomically.
  void save_state(const std::filesystem::path& dir) const;
  // Restores save_state() into a trainer built with the same options and network layout.
  // Throws Error(NotFound / BadFormat / InvalidArgument) naming what does not match.
  void load_state(const std::filesystem::path& dir);

  // The text conditioning the UNet sees for `input_ids` (kohya get_hidden_states; SD1.x).
  torch::Tensor encode_text(const torch::Tensor& input_ids) const;
  // The UNet's context and, for SDXL, its vector y for a batch (kohya get_hidden_states_sdxl and
  // get_size_embeddings).
  struct TextConditioning {
    torch::Tensor context, vector;
  };
  TextConditioning encode_batch_text(const TrainBatch& batch) const;

 private:
  torch::Tensor latents_of(const TrainBatch& batch);

  models::StableDiffusion model_;
  LoraNetwork& network_;
  TrainerOptions options_;
  std::unique_ptr<Optimizer> optimizer_;
  LrSchedule schedule_;
  std::vector<torch::Tensor> params_;
  bool train_text_encoder_ = false;
  torch::Tensor alphas_cumprod_, snr_;  // float32 on the model's device
  at::Generator generator_;
  int64_t global_step_ = 0, micro_step_ = 0, pending_ = 0;  // pending: micro-batches since the last step
  double loss_scale_ = 1.0;  // fp16 dynamic loss scale
  int64_t good_steps_ = 0;   // fp16 steps since the scale last changed
  std::optional<at::ScalarType> autocast_;
};

}  // namespace kiln::engine::lora
