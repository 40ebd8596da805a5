#include "engine/lora/trainer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <unistd.h>

#include "engine/error.h"
#include "engine/io/safetensors.h"
#include "support/reference.h"
#include "unit/engine/lora/lora_test_support.h"
#include "unit/engine/models/tiny_model.h"

namespace kiln::test {
namespace {

using namespace engine::lora;

// The fixture's network (rank 4, alpha 2, text encoder + UNet) at train.lora_init.
std::unique_ptr<LoraNetwork> fixture_network(const nlohmann::json& c) {
  const auto& ref = Reference::get();
  NetworkOptions o;
  o.dim = c.at("inputs").at("lora_rank");
  o.alpha = c.at("inputs").at("lora_alpha");
  auto net = LoraNetwork::create(tiny_sd(), o, 0);
  std::map<std::string, torch::Tensor> init;
  for (const auto& key : c.at("inputs").at("lora_keys")) init[key] = ref.tensor("train.lora_init." + key.get<std::string>());
  net->load_state_dict(init);
  return net;
}

TrainerOptions fixture_options(const nlohmann::json& c) {
  const auto& in = c.at("inputs");
  TrainerOptions o;
  o.learning_rate = in.at("unet_lr");
  o.unet_lr = in.at("unet_lr").get<double>();
  o.text_encoder_lr = in.at("text_encoder_lr").get<double>();
  o.optimizer.type = "AdamW";
  o.max_grad_norm = in.at("max_grad_norm");
  o.clip_skip = in.at("clip_skip");
  o.min_snr_gamma = in.value("min_snr_gamma", 0.0);
  o.noise_offset = in.value("noise_offset", 0.0);
  o.keep_trace = true;
  return o;
}

TrainBatch fixture_batch(const nlohmann::json& c) {
  const auto& ref = Reference::get();
  const auto& in = c.at("inputs");
  TrainBatch b;
  b.latents = ref.tensor(in.at("latents"));
  b.noise = ref.tensor(in.at("noise"));
  b.input_ids = ref.tensor(in.at("input_ids"));
  b.timesteps = torch::tensor(in.at("timesteps").get<std::vector<int64_t>>());
  if (in.contains("noise_offset_randn")) b.offset_noise = ref.tensor(in.at("noise_offset_randn"));
  return b;
}

class TrainingCase : public ::testing::TestWithParam<std::string> {};

TEST_P(TrainingCase, ThreeStepsMatchKohya) {
  const auto& ref = Reference::get();
  const auto& c = ref.case_by_id(GetParam());
  const auto& out = c.at("outputs");
  const auto& tol = c.at("tolerance");
  const std::string variant = GetParam().substr(9);
  auto net = fixture_network(c);
  LoraTrainer trainer(tiny_sd(), *net, fixture_options(c));
  const auto batch = fixture_batch(c);
  const auto losses = out.at("loss_per_step").get<std::vector<double>>();
  const auto norms = out.at("grad_norm_before_clip_per_step").get<std::vector<double>>();
  const auto keys = c.at("inputs").at("lora_keys").get<std::vector<std::string>>();

  // Parameter order of the trainer: per module (in network order) down then up.
  std::vector<std::string> param_keys;
  for (const auto& e : net->entries()) {
    param_keys.push_back(e.module->name() + ".lora_down.weight");
    param_keys.push_back(e.module->name() + ".lora_up.weight");
  }
  ASSERT_EQ(param_keys.size(), keys.size());

  double loss_err = 0, norm_err = 0;
  for (size_t step = 0; step < losses.size(); ++step) {
    const auto r = trainer.step(batch);
    ASSERT_TRUE(r.optimizer_stepped);
    EXPECT_EQ(r.lrs, (std::vector<double>{c.at("inputs").at("text_encoder_lr"), c.at("inputs").at("unet_lr")}));
    loss_err = std::max(loss_err, std::abs(r.loss - losses[step]));
    norm_err = std::max(norm_err, std::abs(r.grad_norm - norms[step]) / norms[step]);
    if (step != 0) continue;
    EXPECT_LE(max_abs_diff(r.trace.noisy_latents, ref.tensor(out.at("noisy_latents_step1"))), 1e-6);
    EXPECT_LE(max_abs_diff(r.trace.target, ref.tensor(out.at("target"))), 1e-6);
    EXPECT_LE(max_abs_diff(r.trace.encoder_hidden_states, ref.tensor(out.at("encoder_hidden_states_step1"))), 1e-4);
    EXPECT_LE(max_abs_diff(r.trace.noise_pred, ref.tensor(out.at("noise_pred_step1"))), 1e-4);
    double max_ref = 0, max_err = 0;
    for (size_t i = 0; i < param_keys.size(); ++i) {
      const auto expected = ref.tensor("train." + variant + ".grad_step1." + param_keys[i]);
      ASSERT_TRUE(r.trace.grads[i].defined()) << param_keys[i];
      max_ref = std::max(max_ref, expected.abs().max().item<double>());
      max_err = std::max(max_err, max_abs_diff(r.trace.grads[i], expected));
    }
    const double rel = max_err / max_ref;
    EXPECT_LE(rel, tol.at("grads_step1_max_abs_relative_to_max_abs_grad").get<double>());
    std::cout << "[ measured ] " << GetParam() << " grads step 1: max |Δ| / max |g| = " << rel << "\n";
  }
  EXPECT_LE(loss_err, tol.at("loss_max_abs").get<double>());
  EXPECT_LE(norm_err, 1e-4);

  // Final weights, judged where the step-1 gradient is above float32 noise (see the fixture README).
  const auto state = net->state_dict();
  std::map<std::string, torch::Tensor> final_weights(state.begin(), state.end());
  double masked = 0, all = 0;
  for (const auto& key : keys) {
    const auto expected = ref.tensor("train." + variant + ".lora_final." + key);
    const auto mask = ref.tensor("train." + variant + ".grad_step1." + key).abs() >= 1e-6;
    const auto diff = (final_weights.at(key) - expected).abs();
    all = std::max(all, diff.max().item<double>());
    if (mask.any().item<bool>()) masked = std::max(masked, diff.masked_select(mask).max().item<double>());
  }
  EXPECT_LE(masked, tol.at("weights_max_abs_where_abs_grad_step1_ge_1e-6").get<double>());
  std::cout << "[ measured ] " << GetParam() << " loss " << loss_err << ", grad norm rel " << norm_err
            << ", weights masked " << masked << " (all elements " << all << ", informative)\n";
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TrainingCase, ::testing::Values("training/plain", "training/snr_offset"),
                         [](const auto& info) { return info.param.substr(9); });

TEST(LoraTrainerTest, GradientCheckpointingGivesTheSameGradients) {
  const auto& c = Reference::get().case_by_id("training/plain");
  std::vector<torch::Tensor> grads[2];
  double loss[2];
  for (int ckpt = 0; ckpt < 2; ++ckpt) {
    auto net = fixture_network(c);
    auto o = fixture_options(c);
    o.gradient_checkpointing = ckpt == 1;
    LoraTrainer trainer(tiny_sd(), *net, o);
    EXPECT_EQ(tiny_sd().unet->gradient_checkpointing(), ckpt == 1);
    const auto r = trainer.step(fixture_batch(c));
    grads[ckpt] = r.trace.grads;
    loss[ckpt] = r.loss;
  }
  EXPECT_FALSE(tiny_sd().unet->gradient_checkpointing()) << "the trainer turns it off again";
  EXPECT_EQ(loss[0], loss[1]);
  ASSERT_EQ(grads[0].size(), grads[1].size());
  double err = 0;
  for (size_t i = 0; i < grads[0].size(); ++i) err = std::max(err, max_abs_diff(grads[0][i], grads[1][i]));
  EXPECT_LE(err, 1e-7);
}

TEST(LoraTrainerTest, AccumulatingTwoHalvesEqualsOneBatch) {
  const auto& c = Reference::get().case_by_id("training/plain");
  const auto full = fixture_batch(c);
  std::vector<torch::Tensor> whole;
  {
    auto net = fixture_network(c);
    LoraTrainer trainer(tiny_sd(), *net, fixture_options(c));
    whole = trainer.step(full).trace.grads;
  }
  auto net = fixture_network(c);
  auto o = fixture_options(c);
  o.gradient_accumulation_steps = 2;
  LoraTrainer trainer(tiny_sd(), *net, o);
  StepResult r;
  for (int64_t i = 0; i < 2; ++i) {
    TrainBatch half;
    half.latents = full.latents.narrow(0, i, 1);
    half.noise = full.noise.narrow(0, i, 1);
    half.input_ids = full.input_ids.narrow(0, i, 1);
    half.timesteps = full.timesteps.narrow(0, i, 1);
    r = trainer.step(half);
    EXPECT_EQ(r.optimizer_stepped, i == 1);
  }
  EXPECT_EQ(trainer.global_step(), 1);
  EXPECT_EQ(trainer.micro_step(), 2);
  double err = 0, scale = 0;
  for (size_t k = 0; k < whole.size(); ++k) {
    err = std::max(err, max_abs_diff(r.trace.grads[k], whole[k]));
    scale = std::max(scale, whole[k].abs().max().item<double>());
  }
  EXPECT_LE(err / scale, 1e-5);
}

TEST(LoraTrainerTest, LrScheduleDrivesTheGroups) {
  const auto& c = Reference::get().case_by_id("training/plain");
  auto net = fixture_network(c);
  auto o = fixture_options(c);
  o.lr_schedule.name = "constant_with_warmup";
  o.lr_schedule.warmup_steps = 2;
  LoraTrainer trainer(tiny_sd(), *net, o);
  const auto before = net->state_dict();
  const auto batch = fixture_batch(c);
  auto r = trainer.step(batch);
  EXPECT_EQ(r.lrs, (std::vector<double>{0.0, 0.0}));
  const auto after = net->state_dict();
  for (size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(torch::equal(before[i].second, after[i].second)) << "lr 0 moves nothing";
  r = trainer.step(batch);
  EXPECT_EQ(r.lrs, (std::vector<double>{0.5 * 5e-4, 0.5 * 1e-3}));
  r = trainer.step(batch);
  EXPECT_EQ(r.lrs, (std::vector<double>{5e-4, 1e-3}));
}

TEST(LoraTrainerTest, UnetOnlyTrainingLeavesTheTextEncoderFrozen) {
  const auto& c = Reference::get().case_by_id("training/plain");
  NetworkOptions no;
  no.text_encoder = false;
  auto net = LoraNetwork::create(tiny_sd(), no, 3);
  LoraTrainer trainer(tiny_sd(), *net, fixture_options(c));
  ASSERT_EQ(trainer.optimizer().groups().size(), 1u);
  EXPECT_EQ(trainer.optimizer().groups()[0].name, "unet");
  const auto batch = fixture_batch(c);
  const auto r = trainer.step(batch);
  torch::Tensor base;
  {
    torch::NoGradGuard no_grad;
    base = tiny_sd().text_encoder->encode(batch.input_ids);
  }
  EXPECT_TRUE(torch::equal(r.trace.encoder_hidden_states, base)) << "the base text encoder's states";
  for (const auto& g : r.trace.grads) EXPECT_TRUE(g.defined());
}

TEST(LoraTrainerTest, PixelsAreEncodedWithASeededPosteriorSample) {
  const auto& c = Reference::get().case_by_id("training/plain");
  auto run = [&](uint64_t seed) {
    auto net = fixture_network(c);
    auto o = fixture_options(c);
    o.seed = seed;
    LoraTrainer trainer(tiny_sd(), *net, o);
    TrainBatch b;
    b.images = torch::rand({2, 3, 64, 64}, at::detail::createCPUGenerator(9)) * 2 - 1;
    b.input_ids = fixture_batch(c).input_ids;
    return trainer.step(b);
  };
  const auto a = run(1), b = run(1), other = run(2);
  EXPECT_EQ(a.loss, b.loss);
  EXPECT_NE(a.loss, other.loss);
  EXPECT_TRUE(std::isfinite(a.loss));
  EXPECT_EQ(a.trace.noisy_latents.sizes(), (std::vector<int64_t>{2, 4, 8, 8}));
  const auto t = a.trace.timesteps;
  EXPECT_TRUE((t >= 0).all().item<bool>() && (t < 1000).all().item<bool>());
}

TEST(LoraTrainerTest, LongCaptionsJoinChunksAsKohyaDoes) {
  const auto& c = Reference::get().case_by_id("training/plain");
  auto net = fixture_network(c);
  LoraTrainer trainer(tiny_sd(), *net, fixture_options(c));
  const auto ids = fixture_batch(c).input_ids;  // [2, 77]
  torch::NoGradGuard no_grad;
  const auto single = trainer.encode_text(ids);
  const auto joined = trainer.encode_text(torch::stack({ids, ids}, 1));  // [2, 2, 77]
  ASSERT_EQ(joined.sizes(), (std::vector<int64_t>{2, 152, single.size(2)}));
  // (Batch 4 instead of 2 may round differently in the last bits.)
  EXPECT_LE(max_abs_diff(joined.narrow(1, 0, 76), single.narrow(1, 0, 76)), 1e-5);    // BOS + chunk 1
  EXPECT_LE(max_abs_diff(joined.narrow(1, 76, 75), single.narrow(1, 1, 75)), 1e-5);   // chunk 2
  EXPECT_LE(max_abs_diff(joined.narrow(1, 151, 1), single.narrow(1, 76, 1)), 1e-5);  // the last EOS
}

TEST(LoraTrainerTest, MixedPrecisionNeedsCuda) {
  const auto& c = Reference::get().case_by_id("training/plain");
  auto net = fixture_network(c);
  auto o = fixture_options(c);
  o.mixed_precision = "fp16";
  try {
    LoraTrainer trainer(tiny_sd(), *net, o);
    FAIL() << "fp16 autocast on the CPU was accepted";
  } catch (const engine::Error& e) {
    EXPECT_EQ(e.kind(), engine::ErrorKind::Unsupported);
  }
  o.mixed_precision = "fp8";
  EXPECT_THROW(LoraTrainer(tiny_sd(), *net, o), engine::Error);
}

TEST(LoraTrainerTest, InpaintingModelsAreRefusedWithAdvice) {
  const auto inpainting = engine::models::StableDiffusion::open(sd15_inpaint_tiny_dir() / "model.safetensors", {});
  const auto& c = Reference::get().case_by_id("training/plain");
  auto net = LoraNetwork::create(inpainting, NetworkOptions{}, 3);
  try {
    LoraTrainer trainer(inpainting, *net, fixture_options(c));
    FAIL() << "training on an inpainting model was accepted";
  } catch (const engine::Error& e) {
    EXPECT_EQ(e.kind(), engine::ErrorKind::Unsupported);
    EXPECT_NE(std::string(e.what()).find("ordinary version"), std::string::npos) << e.what();
  }
}

// ---- Resume: N steps, save, restore in a fresh process, M steps == N + M steps. ----

constexpr int kBeforeSave = 3, kAfterSave = 3;  // micro-batches; accumulation 2 → saved mid-cycle

TrainerOptions resume_options() {
  TrainerOptions o;
  o.learning_rate = 1e-3;
  o.text_encoder_lr = 5e-4;
  o.gradient_accumulation_steps = 2;
  o.noise_offset = 0.05;
  o.min_snr_gamma = 5;
  o.lr_schedule.name = "cosine";
  o.lr_schedule.warmup_steps = 1;
  o.lr_schedule.training_steps = 10;
  o.optimizer.type = "AdamW";
  o.seed = 1234;
  return o;
}

std::unique_ptr<LoraNetwork> resume_network() {
  NetworkOptions o;
  o.dim = 4;
  o.alpha = 2;
  o.conv_dim = 2;
  o.conv_alpha = 1;
  return LoraNetwork::create(tiny_sd(), o, 77);
}

// Batch k: seeded latents (noise and timesteps come from the trainer's generator).
TrainBatch resume_batch(int k) {
  TrainBatch b;
  b.latents = torch::randn({2, 4, 8, 8}, at::detail::createCPUGenerator(100 + k));
  b.input_ids = Reference::get().tensor(std::string("train.batch.input_ids"));
  return b;
}

std::map<std::string, torch::Tensor> weights(const LoraNetwork& net) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& [k, v] : net.state_dict()) out[k] = v.clone();
  return out;
}

TEST(LoraTrainerTest, ResumeInAFreshProcessIsBitIdentical) {
  std::map<std::string, torch::Tensor> uninterrupted;
  {
    auto net = resume_network();
    LoraTrainer trainer(tiny_sd(), *net, resume_options());
    for (int k = 0; k < kBeforeSave + kAfterSave; ++k) trainer.step(resume_batch(k));
    uninterrupted = weights(*net);
  }
  TempDir dir;
  {
    auto net = resume_network();
    LoraTrainer trainer(tiny_sd(), *net, resume_options());
    for (int k = 0; k < kBeforeSave; ++k) trainer.step(resume_batch(k));
    trainer.save_state(dir.path() / "state");
  }
  // The same test program, running only the child test below, in a new process.
  const std::string command = "KILN_LORA_RESUME_DIR='" + dir.path().string() + "' '" +
                              std::filesystem::read_symlink("/proc/self/exe").string() +
                              "' --gtest_filter=LoraTrainerResumeChild.* > '" + (dir.path() / "child.log").string() +
                              "' 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0) << "the child process failed; see its log";
  const auto file = engine::SafeTensorsFile::open(dir.path() / "resumed.safetensors");
  ASSERT_EQ(file->tensors().size(), uninterrupted.size());
  for (const auto& [key, expected] : uninterrupted)
    EXPECT_TRUE(torch::equal(file->tensor(key), expected)) << key << " differs after resuming";
}

TEST(LoraTrainerResumeChild, ContinuesFromTheSavedState) {
  const char* dir = std::getenv("KILN_LORA_RESUME_DIR");
  if (!dir) GTEST_SKIP() << "runs only as the child process of ResumeInAFreshProcessIsBitIdentical";
  auto net = resume_network();  // fresh random weights, replaced by the saved ones
  LoraTrainer trainer(tiny_sd(), *net, resume_options());
  trainer.load_state(std::filesystem::path(dir) / "state");
  ASSERT_EQ(trainer.micro_step(), kBeforeSave);
  ASSERT_EQ(trainer.global_step(), kBeforeSave / 2);
  for (int k = kBeforeSave; k < kBeforeSave + kAfterSave; ++k) trainer.step(resume_batch(k));
  const auto sd = net->state_dict();
  engine::save_safetensors(std::filesystem::path(dir) / "resumed.safetensors", sd);
}

TEST(LoraTrainerTest, StateOfAnotherNetworkIsRefused) {
  TempDir dir;
  {
    auto net = resume_network();
    LoraTrainer trainer(tiny_sd(), *net, resume_options());
    trainer.step(resume_batch(0));
    trainer.save_state(dir.path());
  }
  NetworkOptions small;
  auto net = LoraNetwork::create(tiny_sd(), small, 1);
  LoraTrainer trainer(tiny_sd(), *net, resume_options());
  EXPECT_THROW(trainer.load_state(dir.path()), engine::Error);
  EXPECT_THROW(trainer.load_state(dir.path() / "nothing-here"), engine::Error);
}

}  // namespace
}  // namespace kiln::test
