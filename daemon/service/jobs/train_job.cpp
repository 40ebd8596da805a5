#include "service/jobs/train_job.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <random>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "engine/error.h"
#include "engine/generate.h"
#include "engine/lora/caption_ids.h"
#include "engine/lora/network.h"
#include "engine/lora/trainer.h"
#include "engine/memory.h"
#include "engine/text/clip_tokenizer.h"
#include "service/errors.h"
#include "service/images/pixels.h"
#include "service/jobs/compute.h"
#include "service/jobs/model_hash.h"
#include "service/jobs/train_plan.h"
#include "service/library/file_hash.h"
#include "service/library/lora_library.h"
#include "service/library/model_registry.h"
#include "service/training/lora_metadata.h"
#include "service/training/sample_prompts.h"
#include "service/training/train_config_engine.h"
#include "service/training/training_data.h"
#include "studio/atomic_write.h"
#include "studio/infotext.h"
#include "studio/names.h"
#include "studio/plot.h"
#include "studio/png.h"

namespace kiln::service {
namespace fs = std::filesystem;
namespace tr = training;
using protocol::ErrorCode;

namespace {

constexpr int kStateVersion = 1;

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

tr::TrainEnvironment environment(const TrainJobDeps& deps) {
  tr::TrainEnvironment env;
  const Compute& compute = deps.compute;
  env.cuda_available = compute.device.device.is_cuda();
  // For train_batch_size = "auto": MemAvailable on the CPU, the GPU's free memory on CUDA.
  if (const auto memory = engine::device_memory(compute.device)) env.free_memory_bytes = memory->free_bytes;
  env.working_dir = "/";  // requests carry absolute paths (the CLI makes them so)
  // The presets follow the base model's family (SDXL: 1024², U-Net only, gradient checkpointing).
  ModelRegistry& registry = deps.models;
  env.model_family = [&registry](const std::string& base) {
    try {
      return registry.family_of(registry.resolve(base));
    } catch (const std::exception&) {
      return engine::ModelFamily::Unknown;  // the missing base is reported by validation
    }
  };
  env.model_native_size = [&registry](const std::string& base) -> int64_t {
    try {
      const ModelEntry entry = registry.resolve(base);
      const int64_t side = registry.default_size_of(entry);
      return side == engine::family_traits(registry.family_of(entry)).default_size ? 0 : side;
    } catch (const std::exception&) {
      return 0;
    }
  };
  return env;
}

[[noreturn]] void config_problems(const std::vector<std::string>& problems) {
  std::string message = "train: the configuration has " + std::to_string(problems.size()) +
                        (problems.size() == 1 ? " problem:" : " problems:");
  for (const auto& p : problems) message += "\n  - " + p;
  throw ServiceError(ErrorCode::InvalidParams, message, {{"problems", problems}});
}

tr::ConfigSources sources_of(const Json& p) {
  tr::ConfigSources s;
  s.preset = p.value("preset", "");
  s.config_file = p.value("config_file", "");
  Json request = p.value("config", Json::object());
  // The request's own shortcuts, as the CLI's flags name them.
  if (p.contains("base")) request["pretrained_model_name_or_path"] = p.at("base");
  if (p.contains("data")) request["train_data_dir"] = p.at("data");
  if (p.contains("dataset")) request["dataset"] = p.at("dataset");
  if (p.contains("name")) request["output_name"] = p.at("name");
  s.request = request;
  for (const Json& o : p.value("set", Json::array())) s.overrides.push_back(o.get<std::string>());
  return s;
}

// A job's own files: jobs/<id>/config.json (the resolved config) and state-<n>/ (the trainer's
// state after n micro-batches, with the losses so far). The job record names the newest complete
// one, so a crash while a state is being written leaves the previous one in force.
fs::path config_file_of(const JobContext& ctx) { return ctx.dir() / "config.json"; }

void write_text(const fs::path& path, const std::string& text) { studio::write_atomically(path, text); }

std::string epoch_file_name(const std::string& name, int64_t epoch) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%06lld", static_cast<long long>(epoch));
  return name + "-" + buf + ".safetensors";
}

// kohya's tokenisation of a training caption for each of the family's text encoders: 77 ids, or
// n×77 for max_token_length 75·n, padded as that encoder's tokenizer pads (engine/lora/caption_ids.h).
std::vector<torch::Tensor> caption_ids(const std::string& caption, int64_t max_token_length,
                                       const engine::FamilyTraits& family) {
  const std::vector<int> tokens = engine::ClipTokenizer::bundled().encode(caption);
  std::vector<torch::Tensor> out;
  for (const auto& encoder : family.text_encoders)
    out.push_back(engine::lora::kohya_input_ids(tokens, max_token_length, encoder.pad_id));
  return out;
}

// kohya's size conditioning of one image (SDXL): its file's size, where it sits in its bucket
// (BucketManager.get_crop_ltrb) and the bucket, as [h, w, top, left, h, w].
torch::Tensor size_conditioning(const tr::TrainingImage& image) {
  const engine::lora::Resolution bucket = image.bucket.bucket;
  const engine::lora::Resolution crop = engine::lora::kohya_crop_left_top(bucket, {image.width, image.height});
  return torch::tensor({int64_t{image.height}, int64_t{image.width}, crop.height, crop.width, bucket.height, bucket.width},
                       torch::kFloat32);
}

torch::Tensor image_tensor(const cv::Mat& rgb) {
  // HWC u8 → CHW float in [-1, 1] (kohya IMAGE_TRANSFORMS: ToTensor, Normalize(0.5, 0.5)).
  const auto hwc = torch::from_blob(const_cast<uint8_t*>(rgb.ptr<uint8_t>()), {rgb.rows, rgb.cols, 3}, torch::kUInt8);
  return hwc.permute({2, 0, 1}).to(torch::kFloat32).div(127.5).sub(1.0);
}

struct LossPoint {
  int64_t step = 0;  // optimizer steps done after this micro-batch
  int64_t epoch = 0;
  double loss = 0, lr = 0;
};

Json losses_json(const std::vector<LossPoint>& losses) {
  Json out = Json::array();
  for (const auto& l : losses) out.push_back({{"step", l.step}, {"epoch", l.epoch}, {"loss", l.loss}, {"lr", l.lr}});
  return out;
}

std::vector<LossPoint> losses_from_json(const Json& j) {
  std::vector<LossPoint> out;
  for (const Json& l : j) out.push_back({l.at("step"), l.at("epoch"), l.at("loss"), l.at("lr")});
  return out;
}

// One training run from prepare to the final file.
class TrainRun {
 public:
  TrainRun(JobContext& ctx, TrainJobDeps& deps) : ctx_(ctx), deps_(deps) {}

  Json run() {
    prepare();
    const bool resumed = restore();
    open_live_log(resumed);
    if (!resumed && config_.sample_at_first) sample_all(0, 0);
    for (int64_t epoch = epoch_; epoch <= set_.plan.epochs && !finished(); ++epoch) {
      epoch_ = epoch;
      train_epoch(epoch);  // leaves batch_ past the epoch's last batch
      const bool last = epoch == set_.plan.epochs || finished();
      if (!last && config_.save_every_n_epochs && epoch % *config_.save_every_n_epochs == 0)
        save_file(epoch_file_name(config_.output_name, epoch), epoch);
      if (config_.sample_every_n_epochs && epoch % *config_.sample_every_n_epochs == 0 && !last)
        sample_all(epoch, trainer_->global_step());
      if (last) break;
      // The next epoch starts from a saved state: a crash from here loses nothing of this epoch.
      epoch_ = epoch + 1;
      batch_ = 0;
      save_state();
    }
    return finish();
  }

 private:
  bool finished() const { return trainer_->global_step() >= set_.plan.max_train_steps; }

  // ---- prepare -------------------------------------------------------------------------------

  void prepare() {
    const tr::TrainEnvironment env = environment(deps_);
    const Json& p = ctx_.params();
    if (fs::exists(config_file_of(ctx_))) {
      // Resuming (or re-running) the job: the values resolved when it first started.
      std::ifstream in(config_file_of(ctx_));
      config_ = tr::train_config_from_json(Json::parse(in), env);
    } else {
      config_ = train_config_from_request(p, deps_);
      if (!config_.seed) config_.seed = static_cast<int64_t>(std::random_device{}() & 0x7fffffff);
      write_text(config_file_of(ctx_), tr::to_json(config_).dump(2));
    }
    data_root_ = config_.dataset.empty() ? fs::path(config_.train_data_dir) : deps_.dataset_folder(config_.dataset);

    ctx_.report(0, 0, "reading the images of " + data_root_.string());
    set_ = tr::read_training_set(data_root_, config_, [&](std::size_t done, std::size_t total, const std::string& file) {
      ctx_.report(0, 0, "reading images: " + std::to_string(done) + "/" + std::to_string(total) + " (" + file + ")");
      ctx_.checkpoint();
    });
    if (set_.images.empty()) config_problems({"train_data_dir " + data_root_.string() + " holds no images to train on."});
    warnings_ = set_.warnings;
    for (const auto& w : tr::training_warnings(config_, set_.facts())) warnings_.push_back(w);
    for (const auto& w : warnings_) spdlog::warn("job {}: {}", ctx_.id(), w);

    model_entry_ = deps_.models.resolve(config_.pretrained_model_name_or_path);
    model_sha_ = model_sha256(deps_.compute, deps_.models, model_entry_, ctx_);
    load_model();

    folder_ = deps_.loras.folder_for(config_.output_name);
    fs::create_directories(folder_ / "samples");
    // A new run of this name: an earlier "use this epoch" choice no longer applies.
    std::error_code ignored;
    fs::remove(folder_ / "chosen.json", ignored);
    write_text(folder_ / "config.json", tr::to_json(config_).dump(2));
    tr::KohyaTomlOptions toml;
    toml.train_data_dir = data_root_.string();
    toml.output_dir = folder_.string();
    if (!config_.sample_prompts.empty()) {
      toml.sample_prompts_file = (folder_ / "sample_prompts.txt").string();
      write_text(folder_ / "sample_prompts.txt", tr::sample_prompts_text(config_));
    }
    write_text(folder_ / "config.toml", tr::to_kohya_toml(config_, toml));

    prompts_ = sample_prompts();
    run_facts();

    network_ = engine::lora::LoraNetwork::create(model(), tr::network_options(config_), static_cast<uint64_t>(*config_.seed));
    trainer_ = std::make_unique<engine::lora::LoraTrainer>(model(), *network_,
                                                           tr::trainer_options(config_, set_.plan.max_train_steps));
    if (config_.caches_latents()) cache_latents();
  }

  const engine::models::StableDiffusion& model() const { return loaded_->model; }

  void load_model() {
    ctx_.report(0, 0, "loading " + model_entry_.name);
    // kohya casts the frozen model to the mixed-precision dtype; without it, float32.
    engine::DeviceChoice device = deps_.compute.device;
    device.dtype = config_.mixed_precision == "fp16"   ? torch::kFloat16
                   : config_.mixed_precision == "bf16" ? torch::kBFloat16
                                                        : torch::kFloat32;
    if (device.dtype == deps_.compute.device.dtype) {
      // The model generate requests use: no second copy in memory. The network is detached
      // whenever the job yields, and LoRAs a generation left applied are cleared before training.
      loaded_ = deps_.compute.models.get(model_entry_.path);
      loaded_->loras.clear();
    } else {
      loaded_ = std::make_shared<engine::LoadedModel>(engine::models::StableDiffusion::open(model_entry_.path, device));
    }
  }

  std::vector<tr::SamplePrompt> sample_prompts() {
    const bool sampling = config_.sample_every_n_steps || config_.sample_every_n_epochs || config_.sample_at_first;
    if (!sampling) return {};
    if (!config_.sample_prompts.empty()) {
      auto prompts = tr::parse_sample_prompts(config_.sample_prompts).prompts;  // errors were reported at load
      for (auto& p : prompts) {
        if (!p.width) p.width = config_.resolution.width;
        if (!p.height) p.height = config_.resolution.height;
      }
      return prompts;
    }
    // No prompts given: the trigger word alone (the first folder's class tokens), at the training
    // resolution with the run's seed, so the samples show what the LoRA has learnt so far
    // (training_warnings() tells the user).
    tr::SamplePrompt prompt;
    prompt.prompt = set_.images.front().folder.substr(set_.images.front().folder.find('_') + 1);
    prompt.width = config_.resolution.width;
    prompt.height = config_.resolution.height;
    prompt.seed = *config_.seed;
    prompt.steps = 20;
    return {prompt};
  }

  void run_facts() {
    facts_.session_id = std::to_string(std::mt19937(static_cast<uint32_t>(*config_.seed))() % 2147483647);
    facts_.started_at = unix_now();
    facts_.base_model_name = model_entry_.path.filename().string();
    facts_.base_model_sha256 = model_sha_;
    facts_.base_model_hash = model_sha_.empty() ? "" : model_sha_.substr(0, 8);  // kohya: sd-webui's old 8-digit hash
    facts_.num_train_images = set_.plan.images_with_repeats;
    facts_.num_batches_per_epoch = set_.plan.batches_per_epoch;
    facts_.num_epochs = set_.plan.epochs;
    facts_.max_train_steps = set_.plan.max_train_steps;
    facts_.seed = *config_.seed;
    facts_.tag_frequency = set_.tag_frequency();
    facts_.dataset_dirs = set_.dataset_dirs();
    facts_.bucket_info = set_.bucket_info();
  }

  void cache_latents() {
    // kohya cache_latents: one posterior sample per image, drawn once (here from the run's seed).
    auto gen = at::detail::createCPUGenerator(static_cast<uint64_t>(*config_.seed) ^ 0x5eedull);
    torch::NoGradGuard no_grad;
    const auto& vae = model().vae;
    latents_.resize(set_.images.size());
    for (std::size_t i = 0; i < set_.images.size(); ++i) {
      ctx_.report(0, 0, "caching latents: " + std::to_string(i + 1) + "/" + std::to_string(set_.images.size()));
      ctx_.checkpoint();
      const auto image = image_tensor(set_.images[i].pixels).unsqueeze(0).to(vae->device(), vae->dtype());
      const auto posterior = vae->encode(image);
      const auto eps = torch::randn(posterior.mean.sizes(), gen, torch::kFloat32).to(posterior.mean.device());
      const auto z = posterior.mean.to(torch::kFloat32) + (0.5 * posterior.logvar.to(torch::kFloat32)).exp() * eps;
      latents_[i] = (z * vae->config().scaling_factor).squeeze(0).to(torch::kCPU);
    }
  }

  // ---- resume --------------------------------------------------------------------------------

  bool restore() {
    const Json& state = ctx_.resume_state();
    const fs::path dir = state.is_object() ? ctx_.dir() / state.value("state", std::string("-")) : fs::path();
    if (!state.is_object() || state.value("version", 0) != kStateVersion || !fs::exists(dir / "state.json")) {
      epoch_ = 1;
      batch_ = 0;
      return false;
    }
    trainer_->load_state(dir);
    epoch_ = state.at("epoch");
    batch_ = state.at("batch");
    std::ifstream in(dir / "losses.json");
    if (in) losses_ = losses_from_json(Json::parse(in));
    facts_.started_at = state.value("started_at", facts_.started_at);
    spdlog::info("job {}: resuming at epoch {}, batch {}, step {}", ctx_.id(), epoch_, batch_, trainer_->global_step());
    return true;
  }

  void save_state() {
    const std::string name = "state-" + std::to_string(trainer_->micro_step());
    const fs::path dir = ctx_.dir() / name;
    fs::create_directories(dir);
    trainer_->save_state(dir);
    write_text(dir / "losses.json", losses_json(losses_).dump());
    ctx_.save_resume_state({{"version", kStateVersion}, {"state", name}, {"epoch", epoch_}, {"batch", batch_},
                            {"global_step", trainer_->global_step()}, {"started_at", facts_.started_at}});
    // Only now are older states superseded.
    for (const auto& entry : fs::directory_iterator(ctx_.dir())) {
      const std::string other = entry.path().filename().string();
      if (other.rfind("state-", 0) == 0 && other != name) fs::remove_all(entry.path());
    }
  }

  // ---- training ------------------------------------------------------------------------------

  // Lets interactive jobs run on the plain model, then takes the model back.
  void yield() {
    network_->detach();
    try {
      ctx_.checkpoint();
    } catch (const JobInterrupted&) {
      network_->attach();
      save_state();  // a shutdown: continue exactly here at the next start
      throw;
    } catch (...) {
      network_->attach();
      throw;
    }
    loaded_->loras.clear();
    network_->attach();
  }

  void train_epoch(int64_t epoch) {
    const auto batches = tr::epoch_batches(set_, config_.train_batch_size, static_cast<uint64_t>(*config_.seed), epoch);
    const int64_t max_tokens = config_.max_token_length.value_or(75);
    const auto device = model().unet->device();
    for (std::size_t b = static_cast<std::size_t>(batch_); b < batches.size() && !finished(); ++b) {
      yield();
      auto rng = tr::batch_rng(static_cast<uint64_t>(*config_.seed), epoch, b);
      engine::lora::TrainBatch batch;
      const engine::FamilyTraits& family = model().traits();
      std::vector<torch::Tensor> pixels, latents, sizes;
      std::vector<std::vector<torch::Tensor>> ids(family.text_encoders.size());
      for (int index : batches[b].images) {
        const tr::TrainingImage& image = set_.images[static_cast<std::size_t>(index)];
        const auto caption = caption_ids(tr::training_caption(image.caption, config_, rng), max_tokens, family);
        for (std::size_t k = 0; k < caption.size(); ++k) ids[k].push_back(caption[k]);
        if (family.size_conditioning) sizes.push_back(size_conditioning(image));
        if (!latents_.empty()) latents.push_back(latents_[static_cast<std::size_t>(index)]);
        else pixels.push_back(image_tensor(image.pixels));
      }
      if (!latents.empty()) batch.latents = torch::stack(latents).to(device);
      else batch.images = torch::stack(pixels).to(device);
      batch.input_ids = torch::stack(ids[0]).to(device);
      if (ids.size() > 1) batch.input_ids_2 = torch::stack(ids[1]).to(device);  // SDXL's second encoder
      if (!sizes.empty()) batch.size_conditioning = torch::stack(sizes).to(device);

      const auto t0 = std::chrono::steady_clock::now();
      const engine::lora::StepResult result = trainer_->step(batch, b + 1 == batches.size());
      step_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (!std::isfinite(result.loss))
        throw ServiceError(ErrorCode::JobFailed, "the loss became " + std::to_string(result.loss) + " at step " +
                                                     std::to_string(trainer_->global_step()) +
                                                     "; lower the learning rate (or use mixed_precision bf16)");
      const double lr = trainer_->current_lr(trainer_->optimizer().groups().size() - 1);
      losses_.push_back({trainer_->global_step(), epoch, result.loss, lr});
      log_loss(losses_.back());
      step_times_.push_back(step_seconds_);
      batch_ = static_cast<int64_t>(b + 1);
      report(epoch, result.loss, lr);
      if (result.optimizer_stepped) after_optimizer_step();
    }
  }

  void after_optimizer_step() {
    const int64_t step = trainer_->global_step();
    if (config_.save_every_n_steps && step % *config_.save_every_n_steps == 0 && step < set_.plan.max_train_steps) {
      char buf[48];
      std::snprintf(buf, sizeof buf, "-step%08lld.safetensors", static_cast<long long>(step));
      save_file(config_.output_name + buf, epoch_);
    }
    if (!config_.sample_every_n_epochs && config_.sample_every_n_steps && step % *config_.sample_every_n_steps == 0 &&
        step < set_.plan.max_train_steps)
      sample_all(epoch_, step);
  }

  double average_loss() const {
    // kohya's avr_loss: the mean over the last epoch's worth of steps.
    const std::size_t window = static_cast<std::size_t>(std::max<int64_t>(1, set_.plan.batches_per_epoch));
    const std::size_t n = std::min(window, losses_.size());
    double sum = 0;
    for (std::size_t i = losses_.size() - n; i < losses_.size(); ++i) sum += losses_[i].loss;
    return n ? sum / double(n) : 0.0;
  }

  void report(int64_t epoch, double loss, double lr) {
    const int64_t step = trainer_->global_step(), total = set_.plan.max_train_steps;
    char msg[160];
    std::snprintf(msg, sizeof msg, "epoch %lld/%lld  loss %.4f (avg %.4f)  lr %.2e", static_cast<long long>(epoch),
                  static_cast<long long>(set_.plan.epochs), loss, average_loss(), lr);
    Json extra{{"epoch", epoch},     {"epochs", set_.plan.epochs}, {"loss", loss},
               {"loss_avg", average_loss()}, {"lr", lr},        {"step_seconds", step_seconds_}};
    if (!last_sample_.empty()) extra["last_sample"] = last_sample_;
    // How many of each train.history lists: a live view fetches them again when these grow.
    extra["samples"] = live_samples_.size();
    extra["files"] = live_files_.size();
    ctx_.report(step, total, msg, extra);
  }

  // ---- outputs -------------------------------------------------------------------------------

  void save_file(const std::string& file_name, int64_t epoch) {
    engine::lora::SaveOptions options;
    options.dtype = tr::save_dtype(config_);
    options.metadata = tr::kohya_metadata(config_, facts_, {epoch, trainer_->global_step(), unix_now()});
    network_->save(folder_ / file_name, options);
    saved_.push_back((folder_ / file_name).string());
    add_live(live_files_, {{"epoch", epoch}, {"step", trainer_->global_step()}, {"path", (folder_ / file_name).string()}});
    write_losses();
    save_state();
    spdlog::info("job {}: saved {}", ctx_.id(), (folder_ / file_name).string());
  }

  void write_losses() {
    std::string csv = "step,epoch,loss,lr\n";
    for (const auto& l : losses_) csv += loss_line(l);
    write_text(folder_ / "loss.csv", csv);
    write_text(folder_ / "loss.json", losses_json(losses_).dump());
    studio::LossCurveSpec spec;
    for (const auto& l : losses_) spec.losses.push_back(l.loss);
    for (std::size_t i = 1; i < losses_.size(); ++i)
      if (losses_[i].epoch != losses_[i - 1].epoch) spec.epoch_ends.push_back(static_cast<int64_t>(i));
    spec.title = "Training loss: " + config_.output_name;
    if (!spec.losses.empty()) studio::write_loss_curve(folder_ / "loss.png", spec);
  }

  void sample_all(int64_t epoch, int64_t step) {
    if (prompts_.empty()) return;
    for (std::size_t i = 0; i < prompts_.size(); ++i) {
      yield();
      const tr::SamplePrompt& sp = prompts_[i];
      engine::GenerateRequest request;
      request.prompt = sp.prompt;
      request.negative_prompt = sp.negative_prompt;
      request.clip_skip = static_cast<int>(config_.effective_clip_skip());
      request.params.width = *sp.width;  // sample_prompts() filled in the training resolution
      request.params.height = *sp.height;
      request.params.steps = static_cast<int>(sp.steps);
      request.params.cfg_scale = sp.cfg_scale;
      request.params.seed = sp.seed.value_or(*config_.seed);
      const std::string kohya_sampler = sp.sampler.empty() ? config_.sample_sampler : sp.sampler;
      request.params.sampler = tr::engine_sampler_name(kohya_sampler);
      if (request.params.sampler.empty()) request.params.sampler = "Euler a";
      request.params.preview_every = 0;
      ctx_.report(trainer_->global_step(), set_.plan.max_train_steps, "sample " + std::to_string(i + 1) + "/" +
                                                                          std::to_string(prompts_.size()) + ": " + sp.prompt);
      const engine::GenerateOutput out = engine::generate_images(*loaded_, request);
      const torch::Tensor rgb = out.result.images.at(0).contiguous();
      char name[96];
      std::snprintf(name, sizeof name, "%s_e%06lld_s%06lld_%02zu.png", config_.output_name.c_str(),
                    static_cast<long long>(epoch), static_cast<long long>(step), i);
      studio::GenerationInfo info;
      info.prompt = sp.prompt;
      info.negative_prompt = sp.negative_prompt;
      info.steps = request.params.steps;
      info.sampler = request.params.sampler;
      info.cfg_scale = sp.cfg_scale;
      info.seed = out.result.seeds.at(0);
      info.width = static_cast<int>(*sp.width);
      info.height = static_cast<int>(*sp.height);
      info.model = model_entry_.name;
      info.model_hash = model_sha_.empty() ? "" : a1111_short_hash(model_sha_);
      info.clip_skip = request.clip_skip;
      const fs::path png = folder_ / "samples" / name;
      studio::write_png(png,
                        studio::PixelView{rgb.data_ptr<uint8_t>(), static_cast<int>(rgb.size(1)), static_cast<int>(rgb.size(0)),
                                          3, static_cast<std::size_t>(rgb.size(1) * 3)},
                        {{"parameters", studio::format_infotext(info)}});
      last_sample_ = png.string();
      samples_.push_back(png.string());
      add_live(live_samples_, {{"epoch", epoch}, {"step", step}, {"index", i}, {"prompt", sp.prompt}, {"path", png.string()}});
      ctx_.preview(shm_from_rgb(rgb));
    }
  }

  Json finish() {
    const std::string final_name = config_.output_name + ".safetensors";
    save_file(final_name, set_.plan.epochs);
    if (!prompts_.empty() && (config_.sample_every_n_epochs || config_.sample_every_n_steps))
      sample_all(set_.plan.epochs, trainer_->global_step());
    Json result{{"lora", config_.output_name},
                {"folder", folder_.string()},
                {"final", (folder_ / final_name).string()},
                {"files", saved_},
                {"samples", samples_},
                {"loss_curve", (folder_ / "loss.png").string()},
                {"config", (folder_ / "config.json").string()},
                {"epochs", set_.plan.epochs},
                {"steps", trainer_->global_step()},
                {"images", set_.images.size()},
                {"images_with_repeats", set_.plan.images_with_repeats},
                {"seed", *config_.seed},
                {"final_loss_avg", average_loss()},
                {"seconds_per_step", seconds_per_step()},
                {"base", model_entry_.name},
                {"resolution", {config_.resolution.width, config_.resolution.height}},
                {"train_batch_size", config_.train_batch_size},
                {"warnings", warnings_}};
    return result;
  }

  // ---- what train.history reads while the job runs (jobs/<id>/loss.csv and live.json) -------

  // loss.csv gets a line per micro-batch, appended and flushed as it trains; a resumed run first
  // rewrites it from the restored losses, so it never holds the steps a crash undid.
  void open_live_log(bool resumed) {
    std::string csv = "step,epoch,loss,lr\n";
    for (const auto& l : losses_) csv += loss_line(l);
    write_text(ctx_.dir() / "loss.csv", csv);
    loss_log_.open(ctx_.dir() / "loss.csv", std::ios::app);
    if (resumed) {
      std::ifstream in(ctx_.dir() / "live.json");
      const Json live = in ? Json::parse(in, nullptr, false) : Json();
      if (live.is_object()) {
        for (const Json& e : live.value("samples", Json::array())) live_samples_.push_back(e);
        for (const Json& e : live.value("files", Json::array())) live_files_.push_back(e);
      }
    } else {
      write_live();
    }
  }

  static std::string loss_line(const LossPoint& l) {
    char line[96];
    std::snprintf(line, sizeof line, "%lld,%lld,%.6f,%.6g\n", static_cast<long long>(l.step), static_cast<long long>(l.epoch),
                  l.loss, l.lr);
    return line;
  }

  void log_loss(const LossPoint& l) {
    loss_log_ << loss_line(l);
    loss_log_.flush();
  }

  // A sample or file entry; one with the same path (redone after a resume) replaces the old one.
  void add_live(std::vector<Json>& list, Json entry) {
    const auto same = std::find_if(list.begin(), list.end(), [&](const Json& e) { return e.value("path", "") == entry.value("path", ""); });
    if (same != list.end()) *same = std::move(entry);
    else list.push_back(std::move(entry));
    write_live();
  }

  void write_live() {
    write_text(ctx_.dir() / "live.json", Json{{"samples", live_samples_}, {"files", live_files_}}.dump());
  }

  double seconds_per_step() const {
    // The median of this run's steps: what the next run of the same size can expect per step.
    if (step_times_.empty()) return 0.0;
    std::vector<double> t = step_times_;
    std::nth_element(t.begin(), t.begin() + static_cast<std::ptrdiff_t>(t.size() / 2), t.end());
    return t[t.size() / 2] * static_cast<double>(config_.gradient_accumulation_steps);
  }

  JobContext& ctx_;
  TrainJobDeps& deps_;
  tr::TrainConfig config_;
  fs::path data_root_, folder_;
  tr::TrainingSet set_;
  std::vector<std::string> warnings_;
  ModelEntry model_entry_;
  std::string model_sha_;
  std::shared_ptr<engine::LoadedModel> loaded_;
  std::unique_ptr<engine::lora::LoraNetwork> network_;
  std::unique_ptr<engine::lora::LoraTrainer> trainer_;
  std::vector<torch::Tensor> latents_;  // per image, when cache_latents
  std::vector<tr::SamplePrompt> prompts_;
  tr::RunFacts facts_;
  std::vector<LossPoint> losses_;
  std::vector<std::string> saved_, samples_;
  std::vector<Json> live_samples_, live_files_;  // jobs/<id>/live.json
  std::ofstream loss_log_;                       // jobs/<id>/loss.csv
  std::vector<double> step_times_;
  std::string last_sample_;
  int64_t epoch_ = 1, batch_ = 0;
  double step_seconds_ = 0;
};

}  // namespace

tr::TrainConfig train_config_from_request(const Json& params, const TrainJobDeps& deps) {
  tr::TrainConfig config;
  try {
    config = tr::load_train_config(sources_of(params), environment(deps));
  } catch (const tr::ConfigError& e) {
    config_problems(e.problems());
  }
  std::vector<std::string> problems;
  try {
    deps.models.resolve(config.pretrained_model_name_or_path);
  } catch (const std::exception& e) {
    problems.push_back(std::string("pretrained_model_name_or_path: ") + e.what());
  }
  if (!config.dataset.empty()) {
    try {
      deps.dataset_folder(config.dataset);
    } catch (const std::exception& e) {
      problems.push_back(std::string("dataset: ") + e.what());
    }
  }
  if (!config.sample_prompts.empty())
    for (const auto& e : tr::parse_sample_prompts(config.sample_prompts).errors) problems.push_back(e);
  if (config.output_name.empty()) problems.push_back("output_name (name) is missing: the LoRA needs a name.");
  else if (!studio::is_valid_library_name(config.output_name)) {
    try {
      studio::validate_library_name(config.output_name, "LoRA name (output_name)");
    } catch (const std::exception& e) {
      problems.push_back(e.what());
    }
  }
  if (!problems.empty()) config_problems(problems);
  return config;
}

JobType make_train_job_type(TrainJobDeps deps) {
  JobType type;
  type.name = "train";
  type.priority = JobPriority::Long;
  type.resumable = true;
  auto shared = std::make_shared<TrainJobDeps>(std::move(deps));
  type.validate = [shared](const Json& params) { train_config_from_request(params, *shared); };
  type.plan = [shared](const Json& params) { return plan_training(params, *shared); };
  type.run = [shared](JobContext& ctx) -> Json {
    TrainRun run(ctx, *shared);
    return run.run();
  };
  return type;
}

}  // namespace kiln::service
