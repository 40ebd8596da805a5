// Kiln Mini's trainers learn (each loss falls by a margin a broken gradient path cannot reach),
// the single-file export reads back through Kiln's own loader, and resuming is bit-identical.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "engine/error.h"
#include "engine/models/stable_diffusion.h"
#include "engine/pretrain/diffusion_trainer.h"
#include "engine/pretrain/mini_model.h"
#include "engine/pretrain/sd1_export.h"
#include "engine/pretrain/train_state.h"
#include "engine/pretrain/vae_trainer.h"
#include "engine/sampling/pipeline.h"
#include "engine/text/clip_tokenizer.h"

namespace kiln::engine::pretrain {
namespace {

namespace fs = std::filesystem;

class PretrainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::set_num_threads(1);  // bit-identical comparisons need one reduction order
    dir_ = fs::temp_directory_path() / ("kiln-pretrain-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

// Four flat-coloured scenes with one rectangle each: a batch a small VAE can learn to reproduce.
torch::Tensor toy_images(int64_t size) {
  auto images = torch::empty({4, 3, size, size});
  const float colours[4][3] = {{0.8f, -0.6f, -0.6f}, {-0.5f, 0.7f, -0.2f}, {-0.3f, -0.3f, 0.9f}, {0.6f, 0.6f, -0.8f}};
  for (int64_t i = 0; i < 4; ++i) {
    for (int c = 0; c < 3; ++c) images[i][c].fill_(-0.2f * colours[i][c]);
    const int64_t a = 2 + 3 * i, b = size / 2 + 2 * i;
    for (int c = 0; c < 3; ++c) images[i][c].narrow(0, a, b - a).narrow(1, a + 1, b - a).fill_(colours[i][c]);
  }
  return images;
}

models::VaeConfig tiny_vae_config() {
  models::VaeConfig c;
  c.channels = 32;
  c.channel_mult = {1, 1, 2, 2};
  c.num_res_blocks = 1;
  return c;
}

MiniConfig tiny_mini_config() {
  MiniConfig c = MiniConfig::defaults();
  c.vae = tiny_vae_config();
  c.unet.model_channels = 32;
  c.unet.channel_mult = {1, 2};
  c.unet.attention = {false, true};
  c.unet.num_res_blocks = 1;
  c.text.width = 64;
  c.text.heads = 1;
  c.text.layers = 1;
  c.text.mlp_width = 128;
  c.unet.context_dim = 64;
  return c;
}

torch::Tensor caption_ids(const std::vector<std::string>& captions) {
  std::vector<torch::Tensor> rows;
  for (const auto& c : captions)
    rows.push_back(torch::tensor(ClipTokenizer::context_chunk(ClipTokenizer::bundled().encode(c)), torch::kInt64));
  return torch::stack(rows);
}

const std::vector<std::string> kCaptions = {"a red bottle on a wooden table", "a green cube", "a blue ball on grass",
                                            "a yellow cup"};

TEST_F(PretrainTest, ConfigDefaultsKeepTheSd1Layout) {
  const auto c = MiniConfig::defaults();
  EXPECT_NO_THROW(c.validate());
  const auto back = MiniConfig::from_json(c.to_json());
  EXPECT_EQ(back.to_json(), c.to_json());
  auto bad = c;
  bad.vae.channels = 48;
  EXPECT_THROW(bad.validate(), kiln::engine::Error);
  bad = c;
  bad.text.width = 1024;
  bad.text.heads = 16;
  bad.unet.context_dim = 1024;
  EXPECT_THROW(bad.validate(), kiln::engine::Error);
}

TEST_F(PretrainTest, VaeTrainingReducesReconstructionLoss) {
  const auto images = toy_images(32);
  VaeTrainOptions o;
  o.lr = 2e-3;
  o.warmup_steps = 20;
  o.seed = 7;
  VaeTrainer trainer(make_vae(tiny_vae_config(), 1), o);
  const auto before = trainer.evaluate(images);
  for (int i = 0; i < 250; ++i) trainer.step(images);
  const auto after = trainer.evaluate(images);
  // A VAE that learns nothing stays near the starting loss; a working one falls well below a tenth.
  EXPECT_LT(after.mse, before.mse / 10) << "mse " << before.mse << " → " << after.mse;
  EXPECT_LT(after.l1, before.l1 / 4) << "l1 " << before.l1 << " → " << after.l1;
}

TEST_F(PretrainTest, RescaledLatentsDecodeToTheSameImages) {
  auto vae = make_vae(tiny_vae_config(), 3);
  models::randomize_weights(*vae, 3);
  const auto images = toy_images(32);
  torch::NoGradGuard no_grad;
  const auto std_before = latent_std(vae, images);
  const auto decoded = vae->decode(vae->encode(images).mean);
  rescale_latents(vae, 2.5);
  const auto posterior = vae->encode(images);
  EXPECT_NEAR(latent_std(vae, images), 2.5 * std_before, 1e-4 * std_before);
  EXPECT_TRUE(torch::allclose(vae->decode(posterior.mean), decoded, 1e-4, 1e-5));
}

TEST_F(PretrainTest, DiffusionTrainingReducesEpsLoss) {
  const auto c = tiny_mini_config();
  DiffusionTrainOptions o;
  o.unet_lr = 1e-3;
  o.text_lr = 1e-3;
  o.warmup_steps = 10;
  o.caption_dropout = 0;
  o.seed = 11;
  DiffusionTrainer trainer(make_unet(c.unet, 1), make_text_encoder(c.text, 2), make_vae(c.vae, 3), o);
  torch::manual_seed(5);
  const auto latents = torch::randn({4, 4, 8, 8}).mul_(0.5).add_(torch::linspace(-1, 1, 4).view({4, 1, 1, 1}));
  const auto ids = caption_ids(kCaptions);
  double before = 0, after = 0;
  for (uint64_t s = 0; s < 4; ++s) before += trainer.evaluate_latents(latents, ids, 100 + s);
  for (int i = 0; i < 150; ++i) trainer.step_latents(latents, ids);
  for (uint64_t s = 0; s < 4; ++s) after += trainer.evaluate_latents(latents, ids, 100 + s);
  EXPECT_LT(after, 0.6 * before) << "eps loss " << before / 4 << " → " << after / 4;
  EXPECT_EQ(trainer.unet_ema().updates(), 150);
}

TEST_F(PretrainTest, ExportedCheckpointLoadsAndMatchesTheModel) {
  const auto c = MiniConfig::defaults();
  auto te = make_text_encoder(c.text, 1);
  auto unet = make_unet(c.unet, 2);
  auto vae = make_vae(c.vae, 3);
  // Random everywhere (no zero-initialised layers), so every weight shows in the outputs.
  models::randomize_weights(*te, 4);
  models::randomize_weights(*unet, 5);
  models::randomize_weights(*vae, 6);
  const fs::path file = dir_ / "mini.safetensors";
  save_sd1_checkpoint(file, te, unet, vae, {{"kiln.test", "1"}});

  const auto loaded = models::StableDiffusion::open(file, DeviceChoice{});
  EXPECT_EQ(loaded.family, ModelFamily::SD1);
  EXPECT_EQ(loaded.unet->config().model_channels, c.unet.model_channels);
  EXPECT_EQ(loaded.unet->config().channel_mult, c.unet.channel_mult);
  EXPECT_EQ(loaded.unet->config().attention, c.unet.attention);
  EXPECT_EQ(loaded.unet->config().num_res_blocks, c.unet.num_res_blocks);
  EXPECT_EQ(loaded.unet->config().context_dim, c.text.width);
  EXPECT_EQ(loaded.text_encoder->config().layers, c.text.layers);
  EXPECT_EQ(loaded.vae->config().channel_mult, c.vae.channel_mult);
  EXPECT_DOUBLE_EQ(loaded.latent_scale(), kSd1LatentScale);

  // The in-memory model with its weights rounded to fp16 as the file stores them.
  {
    torch::NoGradGuard no_grad;
    for (torch::nn::Module* m : std::vector<torch::nn::Module*>{te.get(), unet.get(), vae.get()})
      for (auto& p : m->parameters()) p.copy_(p.to(torch::kFloat16).to(torch::kFloat32));
  }
  torch::NoGradGuard no_grad;
  const auto ids = caption_ids({kCaptions[0]});
  const auto ctx = te->encode(ids);
  EXPECT_TRUE(torch::allclose(loaded.text_encoder->encode(ids), ctx, 1e-4, 1e-4));
  torch::manual_seed(1);
  const auto x = torch::randn({1, 4, 8, 8});
  const auto t = torch::tensor({500.0f});
  EXPECT_TRUE(torch::allclose(loaded.unet->forward(x, t, ctx), unet->forward(x, t, ctx), 1e-4, 1e-4));
  EXPECT_TRUE(torch::allclose(loaded.vae->decode(x), vae->decode(x), 1e-4, 1e-4));

  // And it generates through the ordinary pipeline.
  sampling::GenerationParams params;
  params.width = params.height = 64;
  params.steps = 2;
  params.sampler = "Euler";
  params.seed = 1;
  params.preview_every = 0;
  sampling::Conditioning cond;
  cond.cond = loaded.text_encoder->encode(ids);
  cond.uncond = loaded.text_encoder->encode(caption_ids({""}));
  const auto result = sampling::generate(loaded, cond, params);
  ASSERT_EQ(result.images.size(), 1u);
  EXPECT_EQ(result.images[0].sizes(), (std::vector<int64_t>{64, 64, 3}));
}

TEST_F(PretrainTest, ResumedVaeTrainingIsBitIdentical) {
  const auto images = toy_images(32);
  VaeTrainOptions o;
  o.warmup_steps = 3;
  o.seed = 9;
  VaeTrainer straight(make_vae(tiny_vae_config(), 1), o);
  for (int i = 0; i < 6; ++i) straight.step(images);

  VaeTrainer first(make_vae(tiny_vae_config(), 1), o);
  for (int i = 0; i < 3; ++i) first.step(images);
  save_train_state(dir_ / "state.safetensors", first.state(), {{"step", first.steps_done()}});
  const auto state = load_train_state(dir_ / "state.safetensors");
  VaeTrainer resumed(make_vae(tiny_vae_config(), 99), o);  // other init: everything must come from the file
  resumed.load_state(state.tensors, state.meta.at("step").get<int64_t>());
  for (int i = 0; i < 3; ++i) resumed.step(images);

  const auto a = straight.state(), b = resumed.state();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first;
}

TEST_F(PretrainTest, ResumedDiffusionTrainingIsBitIdentical) {
  const auto c = tiny_mini_config();
  DiffusionTrainOptions o;
  o.warmup_steps = 2;
  o.seed = 4;
  const auto images = toy_images(64);
  const auto ids = caption_ids(kCaptions);
  const auto make = [&](uint64_t seed) {
    auto vae = make_vae(c.vae, 3);
    models::randomize_weights(*vae, 3);
    return DiffusionTrainer(make_unet(c.unet, seed), make_text_encoder(c.text, seed + 1), vae, o);
  };
  auto straight = make(1);
  for (int i = 0; i < 4; ++i) straight.step(images, ids);

  auto first = make(1);
  for (int i = 0; i < 2; ++i) first.step(images, ids);
  save_train_state(dir_ / "state.safetensors", first.state(), {{"step", first.steps_done()}});
  const auto state = load_train_state(dir_ / "state.safetensors");
  auto resumed = make(50);
  resumed.load_state(state.tensors, state.meta.at("step").get<int64_t>());
  for (int i = 0; i < 2; ++i) resumed.step(images, ids);

  const auto a = straight.state(), b = resumed.state();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first;
}

}  // namespace
}  // namespace kiln::engine::pretrain
