#include "service/training/presets.h"

#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "service/training/train_config.h"

using namespace kiln::service::training;
namespace fs = std::filesystem;

namespace {

constexpr int64_t kGiB = int64_t{1} << 30;

struct PresetsTest : ::testing::Test {
  fs::path dir;
  void SetUp() override {
    dir = fs::temp_directory_path() /
          ("kiln-presets-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir / "data" / "10_sks");
  }
  void TearDown() override { fs::remove_all(dir); }

  TrainConfig load(const std::string& preset, const TrainEnvironment& env) {
    ConfigSources s;
    s.preset = preset;
    s.request = {{"base", "sd15"}, {"train_data_dir", (dir / "data").string()}, {"output_name", "my-lora"}};
    return load_train_config(s, env);
  }
};

int64_t steps(int64_t images, int64_t repeats, int64_t epochs, int64_t batch) {
  return (images * repeats + batch - 1) / batch * epochs;
}

}  // namespace

TEST_F(PresetsTest, EveryPresetValidatesOnCpuAndOnCuda) {
  ASSERT_EQ(preset_names(), (std::vector<std::string>{"product", "character", "anime", "style", "custom"}));
  for (const Preset& p : presets()) {
    SCOPED_TRACE(p.name);
    TrainEnvironment cpu;
    TrainConfig c;
    ASSERT_NO_THROW(c = load(p.name, cpu));
    EXPECT_EQ(c.preset, p.name);
    EXPECT_EQ(c.device, "cpu");
    EXPECT_EQ(c.mixed_precision, "no");  // "auto" off CUDA
    EXPECT_EQ(c.train_batch_size, 1);    // free memory unknown
    EXPECT_TRUE(validate_train_config(c, cpu).empty());

    TrainEnvironment gpu;
    gpu.cuda_available = true;
    gpu.free_memory_bytes = 20 * kGiB;
    ASSERT_NO_THROW(c = load(p.name, gpu));
    EXPECT_EQ(c.device, "cuda");
    EXPECT_EQ(c.mixed_precision, "fp16");  // WORKFLOW: "mixed precision fp16"
    EXPECT_EQ(c.train_batch_size, 4);
  }
}

TEST_F(PresetsTest, ValuesFollowTheWorkflow) {
  struct Expect {
    const char* name;
    int64_t dim;
    double alpha;
    int64_t clip_skip;
  };
  for (const Expect& e : {Expect{"product", 16, 8, 1}, Expect{"character", 32, 16, 1}, Expect{"anime", 32, 16, 2},
                          Expect{"style", 8, 4, 1}, Expect{"custom", 32, 16, 1}}) {
    SCOPED_TRACE(e.name);
    const TrainConfig c = load(e.name, {});
    EXPECT_EQ(c.network_dim, e.dim);
    EXPECT_DOUBLE_EQ(c.network_alpha, e.alpha);
    EXPECT_EQ(c.effective_clip_skip(), e.clip_skip);
    EXPECT_EQ(c.max_train_epochs, 10);
    EXPECT_DOUBLE_EQ(c.effective_unet_lr(), 1e-4);
    EXPECT_DOUBLE_EQ(c.effective_text_encoder_lr(), 1e-5);
    EXPECT_EQ(c.resolution, (TrainResolution{512, 512}));
    EXPECT_EQ(c.optimizer_type, "AdamW");
    EXPECT_EQ(c.lr_scheduler, "cosine_with_restarts");
    EXPECT_TRUE(c.shuffle_caption);
    EXPECT_EQ(c.keep_tokens, 1);
    EXPECT_TRUE(c.cache_latents);
    EXPECT_TRUE(c.enable_bucket);
    EXPECT_EQ(c.min_bucket_reso, 256);
    EXPECT_EQ(c.max_bucket_reso, 1024);
    EXPECT_EQ(c.save_every_n_epochs, 1);
    EXPECT_EQ(c.sample_every_n_steps, 50);
    EXPECT_EQ(c.caption_extension, ".txt");
    EXPECT_EQ(c.save_precision, "fp16");
    EXPECT_EQ(c.network_module, "networks.lora");
    EXPECT_EQ(c.origins.at("network_dim"), std::string("preset ") + e.name);
  }
}

TEST(Presets, FindIsCaseInsensitive) {
  ASSERT_NE(find_preset("Anime"), nullptr);
  EXPECT_EQ(find_preset("ANIME")->name, "anime");
  EXPECT_EQ(find_preset("realistic"), nullptr);
  EXPECT_EQ(find_preset("product")->recommended_images_min, 20);
  EXPECT_EQ(find_preset("product")->recommended_images_max, 40);
}

TEST(Presets, BatchSizeFromFreeMemory) {
  EXPECT_EQ(batch_size_for_memory(0), 1);
  EXPECT_EQ(batch_size_for_memory(4 * kGiB), 1);
  EXPECT_EQ(batch_size_for_memory(6 * kGiB), 1);
  EXPECT_EQ(batch_size_for_memory(6 * kGiB + 1), 2);
  EXPECT_EQ(batch_size_for_memory(8 * kGiB), 2);
  EXPECT_EQ(batch_size_for_memory(12 * kGiB - 1), 2);
  EXPECT_EQ(batch_size_for_memory(12 * kGiB), 4);
  EXPECT_EQ(batch_size_for_memory(80 * kGiB), 4);
}

TEST(Presets, SuggestedRepeatsLandNearTwoThousandSteps) {
  EXPECT_EQ(suggest_repeats(20, 10, 1), 10);  // 2,000 exactly
  EXPECT_EQ(suggest_repeats(5, 10, 1), 40);   // WORKFLOW's 5 images example
  EXPECT_EQ(suggest_repeats(30, 10, 1), 7);   // 2,100 beats 1,800
  EXPECT_EQ(suggest_repeats(20, 10, 4), 40);  // batch 4 needs four times the repeats
  EXPECT_EQ(suggest_repeats(1000, 10, 1), 1);  // already far above: never below 1
  EXPECT_EQ(suggest_repeats(1, 1, 1), 100);    // never above 100 ("scenery up to 100")
  EXPECT_EQ(suggest_repeats(0, 10, 1), 1);
  EXPECT_EQ(suggest_repeats(10, 0, 1), 1);
  // Every usual dataset size lands in the usual range.
  for (int64_t images = 8; images <= 60; ++images)
    for (int64_t batch : {1, 2, 4}) {
      const int64_t s = steps(images, suggest_repeats(images, 10, batch), 10, batch);
      EXPECT_GE(s, kUsualStepsMin) << images << " images, batch " << batch;
      EXPECT_LE(s, kUsualStepsMax) << images << " images, batch " << batch;
    }
}

TEST(Presets, PresetRepeatsPreferTheGuidesRangeWithinTheStepRange) {
  // anime 10 images: 15..30 repeats keep 1,500–3,000 steps; the guides say 10–15: 15.
  EXPECT_EQ(suggest_repeats(*find_preset("anime"), 10, 10, 1), 15);
  // character (realistic person 30–50) with batch 4: 40 gives 2,000 steps and is in range.
  EXPECT_EQ(suggest_repeats(*find_preset("character"), 20, 10, 4), 40);
  // character at batch 1: 30–50 repeats would be 6,000+ steps; the largest in-range value, 15.
  EXPECT_EQ(suggest_repeats(*find_preset("character"), 20, 10, 1), 15);
  // Nothing lands in range (1,000 images): the step target's answer.
  EXPECT_EQ(suggest_repeats(*find_preset("anime"), 1000, 10, 1), 1);
}
