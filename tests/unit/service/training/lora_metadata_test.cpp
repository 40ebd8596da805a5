#include "service/training/lora_metadata.h"

#include <gtest/gtest.h>

using namespace kiln::service::training;

namespace {
TrainConfig config() {
  TrainConfig c;
  c.output_name = "bottle";
  c.learning_rate = 1e-4;
  c.text_encoder_lr = 1e-5;
  c.resolution = {512, 768};
  c.train_batch_size = 2;
  c.gradient_accumulation_steps = 2;
  c.lr_scheduler = "cosine_with_restarts";
  c.network_dim = 16;
  c.shuffle_caption = true;
  c.keep_tokens = 1;
  c.cache_latents = true;
  c.enable_bucket = true;
  return c;
}
}  // namespace

TEST(LoraMetadata, KohyasKeysInKohyasSpelling) {
  RunFacts run;
  run.session_id = "123";
  run.started_at = 1700000000.0;
  run.base_model_name = "v1-5-pruned-emaonly.safetensors";
  run.base_model_hash = "cc6cb27103";
  run.num_train_images = 200;
  run.num_batches_per_epoch = 100;
  run.num_epochs = 10;
  run.max_train_steps = 500;
  run.seed = 42;
  run.tag_frequency = {{"10_bottle", {{"bottle", 20}}}};
  const auto m = kohya_metadata(config(), run, {3, 150, 1700000100.5});
  EXPECT_EQ(m.at("ss_learning_rate"), "0.0001");
  EXPECT_EQ(m.at("ss_unet_lr"), "0.0001") << "unset unet_lr is learning_rate";
  EXPECT_EQ(m.at("ss_text_encoder_lr"), "1e-05");
  EXPECT_EQ(m.at("ss_resolution"), "(512, 768)");
  EXPECT_EQ(m.at("ss_total_batch_size"), "4");
  EXPECT_EQ(m.at("ss_clip_skip"), "None");
  EXPECT_EQ(m.at("ss_noise_offset"), "None");
  EXPECT_EQ(m.at("ss_cache_latents"), "True");
  EXPECT_EQ(m.at("ss_shuffle_caption"), "True");
  EXPECT_EQ(m.at("ss_v2"), "False");
  EXPECT_EQ(m.at("ss_epoch"), "3");
  EXPECT_EQ(m.at("ss_steps"), "150");
  EXPECT_EQ(m.at("ss_training_started_at"), "1700000000.0");
  EXPECT_EQ(m.at("ss_training_finished_at"), "1700000100.5");
  EXPECT_EQ(m.at("ss_tag_frequency"), R"({"10_bottle":{"bottle":20}})");
  EXPECT_EQ(m.at("ss_sd_model_hash"), "cc6cb27103");
  EXPECT_EQ(m.count("ss_new_sd_model_hash"), 0u) << "absent when unknown, as kohya leaves it out";
  EXPECT_EQ(m.at("modelspec.architecture"), "stable-diffusion-v1/lora");
  EXPECT_EQ(m.at("modelspec.resolution"), "512x768");
  EXPECT_EQ(m.at("modelspec.title"), "bottle-3");
  EXPECT_EQ(kohya_metadata(config(), run, {10, 500, 0}).at("modelspec.title"), "bottle") << "the final file";
}

TEST(LoraMetadata, OptimizerNamesAsKohyaWritesThem) {
  TrainConfig c = config();
  EXPECT_EQ(kohya_optimizer_name(c), "torch.optim.adamw.AdamW");
  c.optimizer_args.weight_decay = 0.1;
  EXPECT_EQ(kohya_optimizer_name(c), "torch.optim.adamw.AdamW(weight_decay=0.1)");
  c = config();
  c.optimizer_type = "AdamW8bit";
  EXPECT_EQ(kohya_optimizer_name(c), "bitsandbytes.optim.adamw.AdamW8bit");
  c.optimizer_type = "Lion";
  EXPECT_EQ(kohya_optimizer_name(c), "lion_pytorch.lion_pytorch.Lion");
  c.optimizer_type = "SGDNesterov";
  EXPECT_EQ(kohya_optimizer_name(c), "torch.optim.sgd.SGD(nesterov=True,momentum=0.9)");
}

TEST(LoraMetadata, SdxlFilesSayWhatKohyasSdxlTrainingSays) {
  TrainConfig c = config();
  c.family = kiln::engine::ModelFamily::SDXL;
  c.resolution = {1024, 1024};
  const auto m = kohya_metadata(c, RunFacts{}, {1, 10, 0});
  EXPECT_EQ(m.at("ss_base_model_version"), "sdxl_base_v1-0");
  EXPECT_EQ(m.at("ss_v2"), "False");
  EXPECT_EQ(m.at("modelspec.architecture"), "stable-diffusion-xl-v1-base/lora");
  EXPECT_EQ(m.at("modelspec.implementation"), "https://github.com/Stability-AI/generative-models");
  EXPECT_EQ(m.at("modelspec.resolution"), "1024x1024");
  // SD1.x (and a base whose family could not be told) keep kohya's SD1 values.
  EXPECT_EQ(kohya_metadata(config(), RunFacts{}, {1, 10, 0}).at("ss_base_model_version"), "sd_v1");
}
