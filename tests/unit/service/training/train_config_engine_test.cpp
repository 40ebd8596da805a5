#include "service/training/train_config_engine.h"

#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "engine/lora/lr_schedule.h"
#include "engine/lora/optimizers.h"
#include "service/training/presets.h"

using namespace kiln::service::training;
namespace lora = kiln::engine::lora;
namespace fs = std::filesystem;

namespace {

TrainConfig preset_config(const std::string& preset, const std::vector<std::string>& overrides = {}) {
  const fs::path data = fs::temp_directory_path() / ("kiln-cfg-engine-" + std::to_string(::getpid()));
  fs::create_directories(data / "10_x");
  ConfigSources s;
  s.preset = preset;
  s.request = {{"base", "sd15"}, {"train_data_dir", data.string()}, {"output_name", "x"}};
  s.overrides = overrides;
  return load_train_config(s, {});
}

}  // namespace

TEST(TrainConfigEngine, NamesAgreeWithTheEngine) {
  // train_config.cpp keeps the engine's lists without including LibTorch; they must not drift.
  EXPECT_EQ(supported_lr_schedulers(), lora::LrSchedule::names());
  EXPECT_EQ(supported_optimizer_types(), lora::optimizer_types());
}

TEST(TrainConfigEngine, EveryPresetBuildsTheEnginesSchedulesAndOptimizers) {
  for (const Preset& p : presets()) {
    SCOPED_TRACE(p.name);
    const TrainConfig c = preset_config(p.name);
    const lora::TrainerOptions t = trainer_options(c, 2000);
    EXPECT_NO_THROW(lora::LrSchedule schedule(t.lr_schedule));
    std::vector<lora::ParamGroup> groups{{"unet", {torch::zeros({4}, torch::requires_grad())}, t.learning_rate}};
    EXPECT_NO_THROW(lora::make_optimizer(t.optimizer, groups));
  }
  for (const std::string& type : supported_optimizer_types()) {
    SCOPED_TRACE(type);
    const TrainConfig c = preset_config("custom", {"optimizer_type=" + type});
    std::vector<lora::ParamGroup> groups{{"unet", {torch::zeros({4}, torch::requires_grad())}, 1e-4}};
    EXPECT_NO_THROW(lora::make_optimizer(trainer_options(c, 100).optimizer, groups));
  }
}

TEST(TrainConfigEngine, TrainerOptionsCarryTheConfig) {
  const TrainConfig c = preset_config(
      "anime", {"optimizer_args=weight_decay=0.02,betas=0.85,0.98", "lr_warmup_steps=0.1", "noise_offset=0.05",
                "min_snr_gamma=5", "seed=9", "max_grad_norm=0.5", "gradient_accumulation_steps=2",
                "gradient_checkpointing=true", "unet_lr=2e-4", "lr_scheduler_num_cycles=3"});
  const lora::TrainerOptions t = trainer_options(c, 1000);
  EXPECT_DOUBLE_EQ(t.learning_rate, 1e-4);
  EXPECT_DOUBLE_EQ(*t.unet_lr, 2e-4);
  EXPECT_DOUBLE_EQ(*t.text_encoder_lr, 1e-5);
  EXPECT_EQ(t.optimizer.type, "AdamW");
  EXPECT_DOUBLE_EQ(t.optimizer.weight_decay, 0.02);
  EXPECT_DOUBLE_EQ(t.optimizer.beta1, 0.85);
  EXPECT_DOUBLE_EQ(t.optimizer.beta2, 0.98);
  EXPECT_EQ(t.lr_schedule.name, "cosine_with_restarts");
  EXPECT_EQ(t.lr_schedule.training_steps, 1000);
  EXPECT_EQ(t.lr_schedule.warmup_steps, 100);  // kohya: a ratio of the steps
  EXPECT_EQ(t.lr_schedule.num_cycles, 3);
  EXPECT_DOUBLE_EQ(t.lr_schedule.base_lr, 1e-4);
  EXPECT_EQ(t.gradient_accumulation_steps, 2);
  EXPECT_DOUBLE_EQ(t.max_grad_norm, 0.5);
  EXPECT_DOUBLE_EQ(t.noise_offset, 0.05);
  EXPECT_DOUBLE_EQ(t.min_snr_gamma, 5);
  EXPECT_EQ(t.clip_skip, 2);
  EXPECT_TRUE(t.gradient_checkpointing);
  EXPECT_EQ(t.mixed_precision, "no");
  EXPECT_EQ(t.seed, 9u);

  // Unset optimizer arguments stay the optimizer's own defaults (negative), off switches are 0.
  const lora::TrainerOptions d = trainer_options(preset_config("product"), 10);
  EXPECT_LT(d.optimizer.weight_decay, 0);
  EXPECT_LT(d.optimizer.beta1, 0);
  EXPECT_EQ(d.noise_offset, 0);
  EXPECT_EQ(d.min_snr_gamma, 0);
  EXPECT_EQ(d.clip_skip, 1);
}

TEST(TrainConfigEngine, NetworkBucketAndStepOptions) {
  const TrainConfig c = preset_config("style", {"conv_dim=4", "network_train_unet_only=true", "resolution=512,768",
                                                "bucket_no_upscale=true", "train_batch_size=2"});
  const lora::NetworkOptions n = network_options(c);
  EXPECT_EQ(n.dim, 8);
  EXPECT_DOUBLE_EQ(n.alpha, 4);
  EXPECT_EQ(n.conv_dim, 4);
  EXPECT_DOUBLE_EQ(n.conv_alpha, 1.0);  // kohya's default with conv_dim
  EXPECT_FALSE(n.text_encoder);
  EXPECT_TRUE(n.unet);
  EXPECT_EQ(network_options(preset_config("style")).conv_dim, 0);

  const lora::BucketOptions b = bucket_options(c);
  EXPECT_EQ(b.resolution, (lora::Resolution{512, 768}));
  EXPECT_TRUE(b.enable_bucket);
  EXPECT_TRUE(b.bucket_no_upscale);
  EXPECT_EQ(b.min_bucket_reso, 256);
  EXPECT_EQ(b.max_bucket_reso, 1024);

  const lora::StepOptions s = step_options(c);
  EXPECT_EQ(s.batch_size, 2);
  EXPECT_EQ(s.max_train_epochs, 10);
}

TEST(TrainConfigEngine, EstimateMatchesTheEnginesPlanForSquareImages) {
  // One bucket: kohya's count without buckets is the count with them.
  for (int64_t batch : {1, 3}) {
    for (int64_t accumulation : {1, 2}) {
      const TrainConfig c = preset_config("product", {"train_batch_size=" + std::to_string(batch),
                                                      "gradient_accumulation_steps=" + std::to_string(accumulation)});
      std::vector<lora::DatasetImage> images(23, lora::DatasetImage{512, 512, 7});
      const lora::StepPlan plan = lora::plan_steps(images, bucket_options(c), step_options(c));
      EXPECT_EQ(estimate_total_steps(c, 23 * 7), plan.max_train_steps) << batch << " " << accumulation;
    }
  }
}

TEST(TrainConfigEngine, SaveDtypeAsKohya) {
  EXPECT_EQ(save_dtype(preset_config("product")), torch::kFloat16);  // the presets save fp16
  EXPECT_EQ(save_dtype(preset_config("product", {"save_precision=bf16"})), torch::kBFloat16);
  EXPECT_EQ(save_dtype(preset_config("product", {"save_precision=float"})), torch::kFloat32);
  EXPECT_EQ(save_dtype(preset_config("product", {"save_precision=none"})), torch::kFloat32);  // kohya: as trained
}
