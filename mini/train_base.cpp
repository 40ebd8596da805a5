// kiln-train-base: trains Kiln Mini from scratch on scenes Kiln generates (issue 23).
//
//   stage vae   the autoencoder (engine/pretrain/vae_trainer.h) on generated pictures; at its end the
//               latents are rescaled to SD1.x's 0.18215 convention and OUT/vae.safetensors written;
//   stage unet  the UNet and CLIP text encoder together on that frozen VAE
//               (engine/pretrain/diffusion_trainer.h), with EMA;
//   stage all   both, one after the other (the default);
//   stage export  only writes --export from the newest state.
//
// The run folder OUT holds config.json, vae/ and unet/ (state.safetensors for resuming, loss.csv,
// loss.png, val.png, samples/), vae.safetensors and kiln-mini.safetensors (the EMA weights as one
// SD1.x single-file checkpoint, refreshed at every UNet checkpoint). A run started again on the same
// OUT resumes where its last checkpoint left it; the pictures of step s are drawn from seeds that
// depend only on s, so a resumed run sees the same stream as one never stopped.
#include <CLI/CLI.hpp>
#include <opencv2/core.hpp>
#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "engine/io/atomic_file.h"
#include "engine/io/safetensors.h"
#include "engine/models/stable_diffusion.h"
#include "engine/pretrain/diffusion_trainer.h"
#include "engine/pretrain/mini_model.h"
#include "engine/pretrain/sd1_export.h"
#include "engine/pretrain/train_state.h"
#include "engine/pretrain/vae_trainer.h"
#include "scene_batch.h"
#include "engine/sampling/pipeline.h"
#include "studio/grid.h"
#include "studio/mini/scene_generator.h"
#include "studio/plot.h"

namespace fs = std::filesystem;
using namespace kiln::engine;
using namespace kiln::engine::pretrain;
namespace mini = kiln::studio::mini;
using Clock = std::chrono::steady_clock;

namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }

struct Options {
  fs::path out;
  std::string stage = "all";
  int64_t vae_steps = 3000, unet_steps = 20000;
  int64_t steps = 0;  // overrides the selected stage's steps (--stage vae|unet)
  int64_t vae_batch = 16, unet_batch = 32;
  int size = 64;
  int vae_crop = 0;  // 0: whole pictures. Random crops (e.g. 32) are 4× cheaper per step but decoded worse at
                    // 64 px (validation L1 0.120 vs 0.058 in the first run: GroupNorm and the mid attention see other statistics)
  int threads = 2;
  bool resume = true;
  fs::path export_path;
  uint64_t seed = 1;
  double checkpoint_minutes = 4;
  int64_t sample_every = 250;
  int64_t val_every = 100;
  int64_t log_every = 10;
  int64_t validation_images = 64;
  int64_t measure = 0;  // > 0: time this many steps of each stage and exit
  VaeTrainOptions vae;
  DiffusionTrainOptions diffusion;
  // Widths (written to config.json on the first start; a resumed run keeps its own).
  int64_t vae_ch = 32;
  std::vector<int64_t> vae_mult{1, 2, 2, 4};
  int64_t vae_res = 1;
  int64_t unet_ch = 64;
  std::vector<int64_t> unet_mult{1, 2, 2};
  std::vector<int64_t> unet_attn{0, 1, 1};
  int64_t unet_res = 2;
  int64_t te_width = 128, te_layers = 4;
};

MiniConfig config_from(const Options& o) {
  MiniConfig c = MiniConfig::defaults();
  c.vae.channels = o.vae_ch;
  c.vae.channel_mult = o.vae_mult;
  c.vae.num_res_blocks = o.vae_res;
  c.unet.model_channels = o.unet_ch;
  c.unet.channel_mult = o.unet_mult;
  c.unet.attention.clear();
  for (auto a : o.unet_attn) c.unet.attention.push_back(a != 0);
  c.unet.num_res_blocks = o.unet_res;
  c.text.width = o.te_width;
  c.text.heads = o.te_width / 64;
  c.text.layers = o.te_layers;
  c.text.mlp_width = 4 * o.te_width;
  c.unet.context_dim = o.te_width;
  c.validate();
  return c;
}

// ---- data: generated scenes as tensors (scene_batch.h) ----------------------------------------

using kiln::mini::hwc_to_bgr;
using kiln::mini::kValidationSeedBase;
using kiln::mini::to_bgr;
using kiln::mini::token_ids;
using Batch = kiln::mini::SceneBatch;

Batch make_batch(uint64_t first_seed, int64_t count, int size) { return kiln::mini::make_scene_batch(first_seed, count, size); }

// The pictures of training step `step`: seeds (run seed, step, index) → never repeat, resumable.
Batch training_batch(const Options& o, int64_t step, int64_t batch, uint64_t stage_stream) {
  const uint64_t first = (o.seed << 32) + (stage_stream << 36) + static_cast<uint64_t>(step * batch);
  return make_batch(first, batch, o.size);
}

// One random square crop per picture (side `crop`; the whole picture when crop ≥ its size), drawn
// from the step's own generator so a resumed run crops alike.
torch::Tensor random_crops(const torch::Tensor& images, int crop, uint64_t seed, int64_t step) {
  const int64_t H = images.size(2), W = images.size(3);
  if (crop <= 0 || crop >= H || crop >= W) return images;
  auto gen = step_generator(seed, step, /*stream=*/7);
  const auto ys = torch::randint(0, (H - crop) / 8 + 1, {images.size(0)}, gen, torch::kInt64) * 8;
  const auto xs = torch::randint(0, (W - crop) / 8 + 1, {images.size(0)}, gen, torch::kInt64) * 8;
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < images.size(0); ++i)
    out.push_back(images[i].narrow(1, ys[i].item<int64_t>(), crop).narrow(2, xs[i].item<int64_t>(), crop));
  return torch::stack(out);
}

// ---- the loss log -----------------------------------------------------------------------------

struct LossLog {
  fs::path csv;
  // Keeps the rows up to `step` (a resumed run redoes the steps after its checkpoint).
  void open(const fs::path& path, int64_t step) {
    csv = path;
    std::vector<std::string> keep;
    std::ifstream in(csv);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == 's') continue;
      if (std::stoll(line.substr(0, line.find(','))) <= step) keep.push_back(line);
    }
    std::ostringstream s;
    s << "step,loss,val_loss,images_per_s\n";
    for (const auto& l : keep) s << l << "\n";
    kiln::write_file_atomically(csv, s.str());
  }
  void add(int64_t step, double loss, double val, double ips) {
    std::ofstream f(csv, std::ios::app);
    f << step << "," << loss << ",";
    if (std::isfinite(val)) f << val;
    f << "," << ips << "\n";
  }
  void plot(const fs::path& dir, const std::string& title) const {
    std::ifstream in(csv);
    std::string line;
    kiln::studio::LossCurveSpec train, val;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == 's') continue;
      std::stringstream s(line);
      std::string step, loss, v;
      std::getline(s, step, ',');
      std::getline(s, loss, ',');
      std::getline(s, v, ',');
      train.steps.push_back(std::stoll(step));
      train.losses.push_back(std::stod(loss));
      if (!v.empty()) {
        val.steps.push_back(std::stoll(step));
        val.losses.push_back(std::stod(v));
      }
    }
    if (train.losses.size() < 2) return;
    train.title = title + " training loss";
    kiln::studio::write_loss_curve(dir / "loss.png", train);
    if (val.losses.size() >= 2) {
      val.title = title + " validation loss";
      val.window = 1;
      kiln::studio::write_loss_curve(dir / "val.png", val);
    }
  }
};

struct Progress {
  Clock::time_point last = Clock::now();
  double avg_step_s = 0;
  int64_t counted = 0;
  double step_done() {
    const auto now = Clock::now();
    const double s = std::chrono::duration<double>(now - last).count();
    last = now;
    avg_step_s = counted == 0 ? s : 0.95 * avg_step_s + 0.05 * s;
    ++counted;
    return s;
  }
  std::string eta(int64_t remaining) const {
    const int64_t secs = static_cast<int64_t>(avg_step_s * static_cast<double>(remaining));
    char buf[32];
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(secs / 3600),
                  static_cast<long long>(secs / 60 % 60), static_cast<long long>(secs % 60));
    return buf;
  }
};

void log_line(const std::string& s) {
  std::cout << s << std::endl;
}

// ---- stage vae -------------------------------------------------------------------------------

fs::path vae_final(const Options& o) { return o.out / "vae.safetensors"; }

void write_vae_samples(const VaeTrainer& t, const Batch& val, const fs::path& path, int64_t step) {
  torch::NoGradGuard no_grad;
  const int64_t n = std::min<int64_t>(8, val.images.size(0));
  const auto images = val.images.narrow(0, 0, n);
  const auto rec = t.vae()->decode(t.vae()->encode(images).mean);
  kiln::studio::GridSpec g;
  g.cells.resize(2);
  for (int64_t i = 0; i < n; ++i) {
    g.cells[0].push_back(val.bgr[static_cast<size_t>(i)]);
    g.cells[1].push_back(to_bgr(rec[i]));
    g.column_labels.push_back(std::to_string(i));
  }
  g.row_labels = {"input", "decoded"};
  g.title = "VAE step " + std::to_string(step);
  g.max_cell_side = 128;
  kiln::studio::write_grid(path, g);
}

double vae_validation(const VaeTrainer& t, const Batch& val) {
  double sum = 0;
  int64_t n = 0;
  for (int64_t i = 0; i < val.images.size(0); i += 16) {
    const auto part = val.images.narrow(0, i, std::min<int64_t>(16, val.images.size(0) - i));
    sum += t.evaluate(part).l1 * static_cast<double>(part.size(0));
    n += part.size(0);
  }
  return sum / static_cast<double>(n);
}

void run_vae(const Options& o, const MiniConfig& config, int64_t total) {
  const fs::path dir = o.out / "vae";
  fs::create_directories(dir / "samples");
  const fs::path state_path = dir / "state.safetensors";
  VaeTrainOptions vo = o.vae;
  vo.seed = o.seed;
  VaeTrainer trainer(make_vae(config.vae, o.seed), vo);
  int64_t step = 0;
  if (o.resume && fs::exists(state_path)) {
    const auto state = load_train_state(state_path);
    step = state.meta.at("step").get<int64_t>();
    trainer.load_state(state.tensors, step);
    log_line("vae: resumed at step " + std::to_string(step) + " from " + state_path.string());
  }
  LossLog log;
  log.open(dir / "loss.csv", step);
  const Batch val = make_batch(kValidationSeedBase, o.validation_images, o.size);
  log_line("vae: " + std::to_string(parameter_count(*trainer.vae())) + " parameters, batch " +
           std::to_string(o.vae_batch) + ", steps " + std::to_string(step) + " → " + std::to_string(total));
  const auto save = [&] {
    save_train_state(state_path, trainer.state(),
                     {{"stage", "vae"}, {"step", trainer.steps_done()}, {"config", config.to_json()}});
  };
  auto last_save = Clock::now();
  Progress progress;
  double loss_avg = 0;
  while (step < total && !g_stop) {
    const Batch batch = training_batch(o, step, o.vae_batch, 1);
    const auto losses = trainer.step(random_crops(batch.images, o.vae_crop, o.seed, step));
    ++step;
    const double secs = progress.step_done();
    loss_avg = loss_avg == 0 ? losses.total : 0.98 * loss_avg + 0.02 * losses.total;
    double val_l1 = NAN;
    if (step % o.val_every == 0 || step == total) val_l1 = vae_validation(trainer, val);
    log.add(step, losses.total, val_l1, static_cast<double>(o.vae_batch) / secs);
    if (step % o.log_every == 0 || std::isfinite(val_l1)) {
      char buf[320];
      std::snprintf(buf, sizeof buf,
                    "vae step %lld/%lld loss %.4f (avg %.4f) l1 %.4f mse %.4f kl %.2f zstd %.3f%s %.1f img/s ETA %s",
                    static_cast<long long>(step), static_cast<long long>(total), losses.total, loss_avg, losses.l1,
                    losses.mse, losses.kl, losses.latent_std,
                    std::isfinite(val_l1) ? (" val_l1 " + std::to_string(val_l1)).c_str() : "",
                    static_cast<double>(o.vae_batch) / std::max(1e-9, progress.avg_step_s),
                    progress.eta(total - step).c_str());
      log_line(buf);
    }
    if (step % o.sample_every == 0 || step == total) {
      write_vae_samples(trainer, val, dir / "samples" / ("step_" + std::to_string(step) + ".png"), step);
      log.plot(dir, "VAE");
    }
    if (std::chrono::duration<double>(Clock::now() - last_save).count() > 60 * o.checkpoint_minutes) {
      save();
      last_save = Clock::now();
    }
  }
  save();
  log.plot(dir, "VAE");
  if (step < total) return;
  // Rescale to SD1.x's latent convention (see sd1_export.h) and keep the result for the UNet stage.
  models::AutoencoderKL vae = trainer.vae();
  const double before = latent_std(vae, val.images);
  rescale_latents(vae, (1.0 / kSd1LatentScale) / before);
  const double after = latent_std(vae, val.images);
  save_safetensors(vae_final(o), parameters_state(*vae, ""),
                   {{"kiln.latent_std_trained", std::to_string(before)},
                    {"kiln.latent_std", std::to_string(after)},
                    {"kiln.config", config.to_json().dump()}});
  log_line("vae: done; latent std " + std::to_string(before) + " rescaled to " + std::to_string(after) +
           " (× 0.18215 = " + std::to_string(after * kSd1LatentScale) + "); wrote " + vae_final(o).string());
}

models::AutoencoderKL load_final_vae(const Options& o, const MiniConfig& config) {
  if (!fs::exists(vae_final(o)))
    throw std::runtime_error("'" + vae_final(o).string() + "' is missing: run --stage vae first");
  models::AutoencoderKL vae(config.vae, torch::TensorOptions().dtype(torch::kFloat32));
  const auto file = SafeTensorsFile::open(vae_final(o));
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& info : file->tensors()) tensors.emplace(info.name, file->tensor(info.name));
  load_parameters_state(*vae, tensors, "");
  set_trainable(*vae, false);
  vae->eval();
  return vae;
}

// ---- stage unet ------------------------------------------------------------------------------

// The EMA weights in fresh modules beside the frozen VAE: the model the samples and the export use.
models::StableDiffusion ema_model(const DiffusionTrainer& t, const MiniConfig& config) {
  models::StableDiffusion sd;
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
  sd.text_encoder = models::ClipTextModel(config.text, f32);
  sd.unet = models::UNetModel(config.unet, f32);
  t.text_ema().copy_to(*sd.text_encoder);
  t.unet_ema().copy_to(*sd.unet);
  sd.vae = t.vae();
  sd.text_encoder->eval();
  sd.unet->eval();
  return sd;
}

std::vector<std::string> sample_prompts(const Batch& val) {
  std::vector<std::string> p{"a red bottle on a wooden table"};
  for (size_t i = 0; p.size() < 4 && i < val.captions.size(); ++i) p.push_back(val.captions[i]);
  return p;
}

void write_unet_samples(const models::StableDiffusion& sd, const std::vector<std::string>& prompts, int size,
                        const fs::path& path, int64_t step) {
  torch::NoGradGuard no_grad;
  kiln::studio::GridSpec g;
  const auto uncond = sd.text_encoder->encode(token_ids({""}));
  for (const auto& prompt : prompts) {
    sampling::Conditioning c;
    c.cond = sd.text_encoder->encode(token_ids({prompt}));
    c.uncond = uncond;
    sampling::GenerationParams p;
    p.width = p.height = size;
    p.steps = 20;
    p.cfg_scale = 5;
    p.sampler = "Euler";
    p.seed = 1;
    p.batch_size = 4;
    p.preview_every = 0;
    const auto r = sampling::generate(sd, c, p);
    std::vector<cv::Mat> row;
    for (const auto& im : r.images) row.push_back(hwc_to_bgr(im));
    g.cells.push_back(row);
    g.row_labels.push_back(prompt.size() > 40 ? prompt.substr(0, 40) + "..." : prompt);
  }
  for (int i = 0; i < 4; ++i) g.column_labels.push_back("seed " + std::to_string(1 + i));
  g.title = "UNet EMA step " + std::to_string(step) + " (Euler 20, CFG 5)";
  g.max_cell_side = 128;
  kiln::studio::write_grid(path, g);
}

// ModelSpec keys (modelspec.*) as other tools read them; "modelspec.resolution" also tells Kiln
// to generate and train at 64 px by default with this model.
std::map<std::string, std::string> export_metadata(const MiniConfig& config, int64_t step, int size) {
  const std::string side = std::to_string(size);
  return {{"kiln.model", "Kiln Mini"},
          {"modelspec.sai_model_spec", "1.0.0"},
          {"modelspec.title", "Kiln Mini"},
          {"modelspec.resolution", side + "x" + side},
          {"kiln.config", config.to_json().dump()},
          {"kiln.unet_step", std::to_string(step)},
          {"kiln.weights", "EMA"},
          {"modelspec.architecture", "stable-diffusion-v1"}};
}

void export_model(const DiffusionTrainer& t, const MiniConfig& config, const fs::path& path, int size) {
  const auto sd = ema_model(t, config);
  save_sd1_checkpoint(path, sd.text_encoder, sd.unet, sd.vae, export_metadata(config, t.steps_done(), size));
}

void run_unet(const Options& o, const MiniConfig& config, int64_t total, bool export_only) {
  const fs::path dir = o.out / "unet";
  fs::create_directories(dir / "samples");
  const fs::path state_path = dir / "state.safetensors";
  DiffusionTrainOptions dopt = o.diffusion;
  dopt.seed = o.seed;
  DiffusionTrainer trainer(make_unet(config.unet, o.seed + 1), make_text_encoder(config.text, o.seed + 2),
                           load_final_vae(o, config), dopt);
  int64_t step = 0;
  if ((o.resume || export_only) && fs::exists(state_path)) {
    const auto state = load_train_state(state_path);
    step = state.meta.at("step").get<int64_t>();
    trainer.load_state(state.tensors, step);
    log_line("unet: resumed at step " + std::to_string(step) + " from " + state_path.string());
  }
  if (export_only) {
    export_model(trainer, config, o.export_path, o.size);
    log_line("exported step " + std::to_string(step) + " (EMA) to " + o.export_path.string());
    return;
  }
  LossLog log;
  log.open(dir / "loss.csv", step);
  const Batch val = make_batch(kValidationSeedBase, o.validation_images, o.size);
  const auto val_latents = trainer.encode(val.images, nullptr);
  const auto val_ids = token_ids(val.captions);
  const auto prompts = sample_prompts(val);
  log_line("unet: " + std::to_string(parameter_count(*trainer.unet())) + " UNet + " +
           std::to_string(parameter_count(*trainer.text_encoder())) + " text-encoder parameters, batch " +
           std::to_string(o.unet_batch) + ", steps " + std::to_string(step) + " → " + std::to_string(total));
  const auto save = [&] {
    save_train_state(state_path, trainer.state(),
                     {{"stage", "unet"}, {"step", trainer.steps_done()}, {"config", config.to_json()}});
    export_model(trainer, config, o.out / "kiln-mini.safetensors", o.size);
  };
  auto last_save = Clock::now();
  Progress progress;
  double loss_avg = 0;
  while (step < total && !g_stop) {
    const Batch batch = training_batch(o, step, o.unet_batch, 2);
    const auto r = trainer.step(batch.images, token_ids(batch.captions));
    ++step;
    const double secs = progress.step_done();
    loss_avg = loss_avg == 0 ? r.loss : 0.98 * loss_avg + 0.02 * r.loss;
    double val_loss = NAN;
    if (step % o.val_every == 0 || step == total) val_loss = trainer.evaluate_latents(val_latents, val_ids, 12345);
    log.add(step, r.loss, val_loss, static_cast<double>(o.unet_batch) / secs);
    if (step % o.log_every == 0 || std::isfinite(val_loss)) {
      char buf[320];
      std::snprintf(buf, sizeof buf, "unet step %lld/%lld loss %.4f (avg %.4f) grad %.3f%s %.1f img/s ETA %s",
                    static_cast<long long>(step), static_cast<long long>(total), r.loss, loss_avg, r.grad_norm,
                    std::isfinite(val_loss) ? (" val " + std::to_string(val_loss)).c_str() : "",
                    static_cast<double>(o.unet_batch) / std::max(1e-9, progress.avg_step_s),
                    progress.eta(total - step).c_str());
      log_line(buf);
    }
    if (step % o.sample_every == 0 || step == total) {
      write_unet_samples(ema_model(trainer, config), prompts, o.size,
                         dir / "samples" / ("step_" + std::to_string(step) + ".png"), step);
      log.plot(dir, "UNet + text encoder");
    }
    if (std::chrono::duration<double>(Clock::now() - last_save).count() > 60 * o.checkpoint_minutes) {
      save();
      last_save = Clock::now();
    }
  }
  save();
  log.plot(dir, "UNet + text encoder");
  if (!o.export_path.empty()) {
    export_model(trainer, config, o.export_path, o.size);
    log_line("exported step " + std::to_string(step) + " (EMA) to " + o.export_path.string());
  }
}

// ---- --measure: step times of the chosen widths ------------------------------------------------

void measure(const Options& o, const MiniConfig& config) {
  const auto time_steps = [&](const std::string& what, int64_t batch, const std::function<void(int64_t)>& one) {
    one(0);  // warm-up
    const auto t0 = Clock::now();
    for (int64_t i = 1; i <= o.measure; ++i) one(i);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count() / static_cast<double>(o.measure);
    std::printf("%s: %.3f s/step, %.1f images/s (batch %lld)\n", what.c_str(), s, static_cast<double>(batch) / s,
                static_cast<long long>(batch));
    std::fflush(stdout);
  };
  {
    const auto t0 = Clock::now();
    const auto b = training_batch(o, 0, 64, 1);
    std::printf("scene generator: %.2f ms/picture\n",
                std::chrono::duration<double, std::milli>(Clock::now() - t0).count() / 64.0);
  }
  VaeTrainer vt(make_vae(config.vae, 1), o.vae);
  std::printf("vae %lld·(%s): %lld parameters\n", static_cast<long long>(config.vae.channels),
              config.to_json()["vae"]["channel_mult"].dump().c_str(), static_cast<long long>(parameter_count(*vt.vae())));
  const auto vb = random_crops(training_batch(o, 0, o.vae_batch, 1).images, o.vae_crop, o.seed, 0);
  time_steps("vae step (" + std::to_string(vb.size(2)) + " px crops)", o.vae_batch, [&](int64_t) { vt.step(vb); });
  auto vae = vt.vae();
  DiffusionTrainer dt(make_unet(config.unet, 2), make_text_encoder(config.text, 3), vae, o.diffusion);
  std::printf("unet %lld·%s attn %s res %lld: %lld parameters; text encoder %lld×%lld: %lld parameters\n",
              static_cast<long long>(config.unet.model_channels), config.to_json()["unet"]["channel_mult"].dump().c_str(),
              config.to_json()["unet"]["attention"].dump().c_str(), static_cast<long long>(config.unet.num_res_blocks),
              static_cast<long long>(parameter_count(*dt.unet())), static_cast<long long>(config.text.width),
              static_cast<long long>(config.text.layers), static_cast<long long>(parameter_count(*dt.text_encoder())));
  const auto ub = training_batch(o, 0, o.unet_batch, 2);
  const auto ids = token_ids(ub.captions);
  time_steps("vae encode of a UNet batch", o.unet_batch, [&](int64_t) { dt.encode(ub.images, nullptr); });
  const auto latents = dt.encode(ub.images, nullptr);
  time_steps("unet+te step on latents", o.unet_batch, [&](int64_t) { dt.step_latents(latents, ids); });
  const fs::path tmp = fs::temp_directory_path() / "kiln-mini-measure.safetensors";
  export_model(dt, config, tmp, o.size);
  std::printf("fp16 single file: %.1f MB\n", static_cast<double>(fs::file_size(tmp)) / 1e6);
  fs::remove(tmp);
}

std::vector<int64_t> parse_list(const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) out.push_back(std::stoll(item));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kiln-train-base — train Kiln Mini (a small SD1.x-architecture model) from scratch on generated scenes"};
  Options o;
  std::string vae_mult = "1,2,2,4", unet_mult = "1,2,2", unet_attn = "0,1,1";
  app.add_option("--out", o.out, "Run folder (checkpoints, loss.csv, loss.png, samples/)")->required();
  app.add_option("--stage", o.stage, "vae, unet, all (vae then unet), or export")
      ->check(CLI::IsMember({"vae", "unet", "all", "export"}));
  app.add_option("--steps", o.steps, "Steps of the one stage selected with --stage vae|unet");
  app.add_option("--vae-steps", o.vae_steps, "VAE steps")->capture_default_str();
  app.add_option("--unet-steps", o.unet_steps, "UNet + text encoder steps")->capture_default_str();
  app.add_option("--batch", o.unet_batch, "UNet + text encoder batch")->capture_default_str();
  app.add_option("--vae-batch", o.vae_batch, "VAE batch")->capture_default_str();
  app.add_option("--size", o.size, "Picture size (multiple of 8)")->capture_default_str();
  app.add_option("--vae-crop", o.vae_crop, "VAE training crop side (multiple of 8; 0: whole pictures)")
      ->capture_default_str();
  app.add_option("--threads", o.threads, "CPU threads")->capture_default_str();
  app.add_flag("--resume,!--no-resume", o.resume, "Resume from OUT's checkpoints (default on)");
  app.add_option("--export", o.export_path, "Also write the EMA weights as one SD1.x .safetensors file here");
  app.add_option("--seed", o.seed, "Run seed (initialisation, noise, the picture stream)")->capture_default_str();
  app.add_option("--checkpoint-minutes", o.checkpoint_minutes, "Minutes between resume checkpoints")
      ->capture_default_str();
  app.add_option("--sample-every", o.sample_every, "Steps between sample grids")->capture_default_str();
  app.add_option("--val-every", o.val_every, "Steps between validation losses")->capture_default_str();
  app.add_option("--log-every", o.log_every, "Steps between progress lines")->capture_default_str();
  app.add_option("--validation-images", o.validation_images, "Held-out pictures")->capture_default_str();
  app.add_option("--measure", o.measure, "Time this many steps of each stage at these widths, then exit");
  app.add_option("--vae-lr", o.vae.lr)->capture_default_str();
  app.add_option("--vae-kl", o.vae.kl_weight, "KL weight (per latent element)")->capture_default_str();
  app.add_option("--unet-lr", o.diffusion.unet_lr)->capture_default_str();
  app.add_option("--te-lr", o.diffusion.text_lr)->capture_default_str();
  app.add_option("--warmup", o.diffusion.warmup_steps, "UNet warm-up steps")->capture_default_str();
  app.add_option("--caption-dropout", o.diffusion.caption_dropout)->capture_default_str();
  app.add_option("--ema-decay", o.diffusion.ema_decay)->capture_default_str();
  app.add_option("--vae-ch", o.vae_ch)->capture_default_str();
  app.add_option("--vae-mult", vae_mult)->capture_default_str();
  app.add_option("--vae-res", o.vae_res, "ResBlocks per VAE level")->capture_default_str();
  app.add_option("--unet-ch", o.unet_ch)->capture_default_str();
  app.add_option("--unet-mult", unet_mult)->capture_default_str();
  app.add_option("--unet-attn", unet_attn, "Attention per level (0/1)")->capture_default_str();
  app.add_option("--unet-res", o.unet_res, "ResBlocks per UNet level")->capture_default_str();
  app.add_option("--te-width", o.te_width)->capture_default_str();
  app.add_option("--te-layers", o.te_layers)->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    o.vae_mult = parse_list(vae_mult);
    o.unet_mult = parse_list(unet_mult);
    o.unet_attn = parse_list(unet_attn);
    at::set_num_threads(o.threads);
    at::set_num_interop_threads(1);
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    fs::create_directories(o.out);
    // The sizes of a run are fixed at its first start.
    MiniConfig config = config_from(o);
    const fs::path config_path = o.out / "config.json";
    if (o.measure > 0) {
      measure(o, config);
      return 0;
    }
    if (fs::exists(config_path)) {
      std::ifstream in(config_path);
      config = MiniConfig::from_json(nlohmann::json::parse(in));
    } else {
      kiln::write_file_atomically(config_path, config.to_json().dump(2) + "\n");
    }
    if (o.stage == "export") {
      if (o.export_path.empty()) throw std::runtime_error("--stage export needs --export PATH");
      run_unet(o, config, 0, /*export_only=*/true);
      return 0;
    }
    if (o.stage == "vae" || o.stage == "all") {
      const int64_t total = o.stage == "vae" && o.steps > 0 ? o.steps : o.vae_steps;
      if (!fs::exists(vae_final(o)) || o.stage == "vae") run_vae(o, config, total);
    }
    if (!g_stop && (o.stage == "unet" || o.stage == "all")) {
      const int64_t total = o.stage == "unet" && o.steps > 0 ? o.steps : o.unet_steps;
      run_unet(o, config, total, false);
    }
    if (g_stop) log_line("stopped by a signal; state saved, run again with the same --out to resume");
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "kiln-train-base: " << e.what() << std::endl;
    return 1;
  }
}
