#include "service/training/train_config.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "service/training/presets.h"

using namespace kiln::service::training;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr int64_t kGiB = int64_t{1} << 30;

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

bool any_contains(const std::vector<std::string>& lines, const std::string& needle) {
  for (const std::string& l : lines)
    if (contains(l, needle)) return true;
  return false;
}

struct TrainConfigTest : ::testing::Test {
  fs::path dir;
  TrainEnvironment cpu;

  void SetUp() override {
    dir = fs::temp_directory_path() /
          ("kiln-train-config-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir / "data" / "20_sks speaker");
    cpu.working_dir = dir;
  }
  void TearDown() override { fs::remove_all(dir); }

  void write(const fs::path& path, const std::string& text) {
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << text;
  }

  // What every valid request needs.
  json basics() const {
    return {{"base", "sd15"}, {"train_data_dir", (dir / "data").string()}, {"output_name", "speaker"}};
  }

  TrainConfig load(const std::vector<std::string>& overrides, const std::string& preset = "product",
                   const TrainEnvironment* env = nullptr) {
    ConfigSources s;
    s.preset = preset;
    s.request = basics();
    s.overrides = overrides;
    return load_train_config(s, env ? *env : cpu);
  }

  // The problems of a load that must fail.
  std::vector<std::string> problems(const std::vector<std::string>& overrides, const std::string& preset = "product",
                                    const TrainEnvironment* env = nullptr) {
    try {
      load(overrides, preset, env);
    } catch (const ConfigError& e) {
      return e.problems();
    }
    ADD_FAILURE() << "the load did not fail";
    return {};
  }
};

// A realistic kohya config as the GUIs (秋叶 lora-scripts) write it: sections, runtime knobs Kiln
// does not need, network_args and optimizer_args lists, a key repeated in two sections.
const char* kKohyaToml = R"toml(
[model_arguments]
v2 = false
v_parameterization = false
pretrained_model_name_or_path = "./sd-models/model.safetensors"

[dataset_arguments]
train_data_dir = "./train/aki"
reg_data_dir = ""
resolution = "512,768"
prior_loss_weight = 1

[additional_network_arguments]
network_dim = 32
network_alpha = 16
network_train_unet_only = false
network_train_text_encoder_only = false
network_module = "networks.lora"
network_args = [ "conv_dim=8", "conv_alpha=4" ]

[optimizer_arguments]
unet_lr = 1e-4
text_encoder_lr = 1e-5
optimizer_type = "AdamW8bit"
optimizer_args = [ "weight_decay=0.05", "betas=0.9,0.99" ]
lr_scheduler = "cosine_with_restarts"
lr_warmup_steps = 0
lr_restart_cycles = 3

[training_arguments]
train_batch_size = 2
max_train_epochs = 12
noise_offset = 0.05
keep_tokens = 1
min_bucket_reso = 256
max_bucket_reso = 1024
caption_extension = ".txt"
max_token_length = 225
seed = 1337
xformers = true
lowram = false
resolution = "512,768"
clip_skip = 2
mixed_precision = "no"
min_snr_gamma = 5.0
gradient_checkpointing = true
shuffle_caption = true
cache_latents = true
enable_bucket = true

[sample_prompt_arguments]
sample_sampler = "euler_a"
sample_every_n_epochs = 2
sample_prompts = "prompts.txt"

[saving_arguments]
output_name = "aki"
save_every_n_epochs = 1
save_state = false
save_model_as = "safetensors"
output_dir = "./output"
logging_dir = "./logs"
log_prefix = ""
save_precision = "fp16"
)toml";

}  // namespace

// ---------------------------------------------------------------- sources and precedence

TEST_F(TrainConfigTest, PresetThenFileThenRequestThenOverrides) {
  write(dir / "cfg.toml", "network_dim = 24\nlearning_rate = 2e-4\nclip_skip = 2\nseed = 7\n");
  ConfigSources s;
  s.preset = "product";
  s.config_file = dir / "cfg.toml";
  s.request = basics();
  s.request["network_dim"] = 28;
  s.request["seed"] = 8;
  s.overrides = {"network_dim=32"};
  const TrainConfig c = load_train_config(s, cpu);
  EXPECT_EQ(c.network_dim, 32);                   // --set beats all
  EXPECT_EQ(c.seed, 8);                           // request beats file
  EXPECT_EQ(c.effective_clip_skip(), 2);          // file beats preset (1)
  EXPECT_DOUBLE_EQ(c.learning_rate, 2e-4);        // file beats preset (1e-4)
  EXPECT_DOUBLE_EQ(*c.text_encoder_lr, 1e-5);     // only the preset sets it
  EXPECT_EQ(c.max_train_epochs, 10);              // only the preset sets it
  EXPECT_EQ(c.origins.at("network_dim"), "--set");
  EXPECT_EQ(c.origins.at("seed"), "request");
  EXPECT_EQ(c.origins.at("clip_skip"), "file " + (dir / "cfg.toml").string());
  EXPECT_EQ(c.origins.at("text_encoder_lr"), "preset product");
  EXPECT_FALSE(c.is_set("noise_offset"));
}

TEST_F(TrainConfigTest, PresetKeyInHigherSourcesWins) {
  ConfigSources s;
  s.preset = "product";
  s.request = basics();
  s.overrides = {"preset=anime"};
  const TrainConfig c = load_train_config(s, cpu);
  EXPECT_EQ(c.preset, "anime");
  EXPECT_EQ(c.effective_clip_skip(), 2);
}

TEST_F(TrainConfigTest, StepsFromAHigherSourceReplaceThePresetsEpochs) {
  const TrainConfig c = load({"max_train_steps=500"});
  EXPECT_FALSE(c.max_train_epochs.has_value());  // kohya would let the preset's 10 epochs win
  EXPECT_EQ(c.max_train_steps, 500);
}

TEST_F(TrainConfigTest, BothStepsAndEpochsInOneSourceFollowKohya) {
  const TrainConfig c = load({"max_train_steps=500", "max_train_epochs=3"});
  EXPECT_EQ(c.max_train_epochs, 3);
  EXPECT_TRUE(any_contains(c.notes, "max_train_steps is ignored because max_train_epochs is also set"));
}

TEST_F(TrainConfigTest, ThePresetsAlphaFollowsAChangedRank) {
  TrainConfig c = load({"network_dim=32"});  // product: 16/8
  EXPECT_DOUBLE_EQ(c.network_alpha, 16);
  EXPECT_TRUE(any_contains(c.notes, "network_alpha is 16"));
  c = load({"network_dim=32", "network_alpha=32"});
  EXPECT_DOUBLE_EQ(c.network_alpha, 32);
  EXPECT_FALSE(any_contains(c.notes, "network_alpha is"));
}

TEST_F(TrainConfigTest, CustomPresetWithoutPresetOrFileButKohyaDefaultsWithAFile) {
  ConfigSources s;
  s.request = basics();
  TrainConfig c = load_train_config(s, cpu);
  EXPECT_EQ(c.preset, "custom");
  EXPECT_DOUBLE_EQ(c.learning_rate, 1e-4);

  write(dir / "bare.toml", "network_dim = 8\n");
  s.config_file = dir / "bare.toml";
  c = load_train_config(s, cpu);
  EXPECT_EQ(c.preset, "");
  EXPECT_EQ(c.network_dim, 8);
  EXPECT_DOUBLE_EQ(c.learning_rate, 2e-6);  // kohya's own defaults, as train_network.py would run it
  EXPECT_DOUBLE_EQ(c.network_alpha, 1);
  EXPECT_EQ(c.max_train_steps, 1600);
  EXPECT_FALSE(c.max_train_epochs.has_value());
  EXPECT_EQ(c.lr_scheduler, "constant");
  EXPECT_EQ(c.caption_extension, ".caption");
  EXPECT_FALSE(c.enable_bucket);
}

// ---------------------------------------------------------------- kohya TOML

TEST_F(TrainConfigTest, ReadsARealisticKohyaToml) {
  write(dir / "cfg" / "lora.toml", kKohyaToml);
  write(dir / "cfg" / "sd-models" / "model.safetensors", "not read here");
  write(dir / "cfg" / "prompts.txt", "# check\naki, 1girl, white hair, red dress --n lowres --d 5\n");
  fs::create_directories(dir / "cfg" / "train" / "aki" / "10_aki");
  ConfigSources s;
  s.config_file = dir / "cfg" / "lora.toml";
  const TrainConfig c = load_train_config(s, cpu);

  // Paths in the file are relative to the file.
  EXPECT_EQ(c.pretrained_model_name_or_path, (dir / "cfg" / "sd-models" / "model.safetensors").string());
  EXPECT_EQ(c.train_data_dir, (dir / "cfg" / "train" / "aki").string());
  EXPECT_EQ(c.resolution, (TrainResolution{512, 768}));
  EXPECT_EQ(c.network_dim, 32);
  EXPECT_DOUBLE_EQ(c.network_alpha, 16);
  EXPECT_EQ(c.conv_dim, 8);  // from network_args
  EXPECT_DOUBLE_EQ(*c.conv_alpha, 4);
  EXPECT_EQ(c.optimizer_type, "AdamW8bit");
  EXPECT_DOUBLE_EQ(*c.optimizer_args.weight_decay, 0.05);
  EXPECT_DOUBLE_EQ(*c.optimizer_args.beta1, 0.9);
  EXPECT_DOUBLE_EQ(*c.optimizer_args.beta2, 0.99);
  EXPECT_DOUBLE_EQ(*c.unet_lr, 1e-4);
  EXPECT_DOUBLE_EQ(*c.text_encoder_lr, 1e-5);
  EXPECT_EQ(c.lr_scheduler, "cosine_with_restarts");
  EXPECT_EQ(c.lr_scheduler_num_cycles, 3);  // lora-scripts' lr_restart_cycles
  EXPECT_EQ(c.train_batch_size, 2);
  EXPECT_EQ(c.max_train_epochs, 12);
  EXPECT_DOUBLE_EQ(*c.noise_offset, 0.05);
  EXPECT_DOUBLE_EQ(*c.min_snr_gamma, 5.0);
  EXPECT_EQ(c.max_token_length, 225);
  EXPECT_EQ(c.seed, 1337);
  EXPECT_EQ(c.clip_skip, 2);
  EXPECT_TRUE(c.gradient_checkpointing);
  EXPECT_TRUE(c.shuffle_caption);
  EXPECT_TRUE(c.cache_latents);
  EXPECT_TRUE(c.enable_bucket);
  EXPECT_EQ(c.caption_extension, ".txt");
  EXPECT_EQ(c.sample_sampler, "euler_a");
  EXPECT_EQ(c.sample_every_n_epochs, 2);
  EXPECT_EQ(c.sample_prompts_file, (dir / "cfg" / "prompts.txt").string());
  ASSERT_EQ(c.sample_prompts.size(), 2u);
  EXPECT_EQ(c.output_name, "aki");
  EXPECT_EQ(c.save_every_n_epochs, 1);
  EXPECT_EQ(c.save_precision, "fp16");
  EXPECT_EQ(c.mixed_precision, "no");
  // Runtime knobs with an effect elsewhere are noted, neutral ones are not.
  EXPECT_TRUE(any_contains(c.notes, "xformers = true is ignored"));
  EXPECT_TRUE(any_contains(c.notes, "output_dir = ./output is ignored"));
  EXPECT_FALSE(any_contains(c.notes, "lowram"));
  EXPECT_FALSE(any_contains(c.notes, "v2"));
  EXPECT_FALSE(any_contains(c.notes, "save_model_as"));
}

TEST_F(TrainConfigTest, FlatTomlAndJsonFilesReadTheSame) {
  write(dir / "flat.toml", "network_dim = 12\nnetwork_alpha = 6.0\nresolution = 640\nenable_bucket = true\n");
  write(dir / "same.json", R"({"network_dim": 12, "network_alpha": 6, "resolution": "640", "enable_bucket": true})");
  ConfigSources s;
  s.request = basics();
  s.config_file = dir / "flat.toml";
  const TrainConfig a = load_train_config(s, cpu);
  s.config_file = dir / "same.json";
  const TrainConfig b = load_train_config(s, cpu);
  EXPECT_EQ(a.network_dim, 12);
  EXPECT_EQ(a.resolution, (TrainResolution{640, 640}));
  json ja = to_json(a), jb = to_json(b);
  EXPECT_EQ(ja, jb);
}

TEST_F(TrainConfigTest, TomlProblemsAreReported) {
  try {
    layer_from_toml("[a]\nnetwork_dim = 8\n[b]\nnetwork_dim = 16\n", "cfg.toml");
    ADD_FAILURE() << "a key twice with different values must fail";
  } catch (const ConfigError& e) {
    EXPECT_TRUE(contains(e.what(), "network_dim is given twice in cfg.toml")) << e.what();
    EXPECT_TRUE(contains(e.what(), "[a]")) << e.what();
    EXPECT_TRUE(contains(e.what(), "[b]")) << e.what();
  }
  try {
    layer_from_toml("network_dim = 8\nlearning_rate = = 1\n", "cfg.toml");
    ADD_FAILURE() << "bad TOML must fail";
  } catch (const ConfigError& e) {
    EXPECT_TRUE(contains(e.what(), "cfg.toml is not valid TOML: line 2")) << e.what();
  }
  try {
    layer_from_toml("[a.b]\nx = 1\n", "cfg.toml");
    ADD_FAILURE() << "a nested table must fail";
  } catch (const ConfigError& e) {
    EXPECT_TRUE(contains(e.what(), "[a.b]")) << e.what();
  }
  ConfigSources s;
  s.request = basics();
  s.config_file = dir / "missing.toml";
  try {
    load_train_config(s, cpu);
    ADD_FAILURE();
  } catch (const ConfigError& e) {
    EXPECT_TRUE(contains(e.what(), "missing.toml does not exist")) << e.what();
  }
}

// ---------------------------------------------------------------- overrides

TEST_F(TrainConfigTest, OverrideValuesAreReadAsTheirKeyNeeds) {
  const TrainConfig c = load({"cache_latents=off", "gradient_checkpointing=yes", "network_dim = 24 ", "learning_rate=3e-4",
                              "mixed_precision=no", "clip_skip=none", "output_name='1990'",
                              "optimizer_args=weight_decay=0.1,betas=0.9,0.99", "lr_warmup_steps=10%",
                              "lr_scheduler=constant_with_warmup", "resolution=512,768", "network_args=conv_dim=4"});
  EXPECT_FALSE(c.cache_latents);
  EXPECT_TRUE(c.gradient_checkpointing);
  EXPECT_EQ(c.network_dim, 24);
  EXPECT_DOUBLE_EQ(c.learning_rate, 3e-4);
  EXPECT_EQ(c.mixed_precision, "no");
  EXPECT_FALSE(c.clip_skip.has_value());  // "none" unsets the preset's 1
  EXPECT_EQ(c.output_name, "1990");
  EXPECT_DOUBLE_EQ(*c.optimizer_args.weight_decay, 0.1);
  EXPECT_DOUBLE_EQ(*c.optimizer_args.beta2, 0.99);
  EXPECT_DOUBLE_EQ(c.lr_warmup_steps, 0.1);
  EXPECT_EQ(c.resolution, (TrainResolution{512, 768}));
  EXPECT_EQ(c.conv_dim, 4);
}

TEST_F(TrainConfigTest, MalformedOverridesAreErrors) {
  EXPECT_TRUE(any_contains(problems({"network_dim"}), "'network_dim' (from --set) is not a key=value setting"));
  EXPECT_TRUE(any_contains(problems({"network_dim=abc"}),
                           "network_dim must be a whole number, not the text \"abc\" (from --set)"));
  EXPECT_TRUE(any_contains(problems({"shuffle_caption=maybe"}), "shuffle_caption must be true or false"));
}

TEST_F(TrainConfigTest, KohyasOlderOptimizerSwitches) {
  EXPECT_EQ(load({"use_8bit_adam=true"}).optimizer_type, "AdamW8bit");
  EXPECT_EQ(load({"use_lion_optimizer=true"}).optimizer_type, "Lion");
  EXPECT_EQ(load({"optimizer_type=adamw8bit"}).optimizer_type, "AdamW8bit");  // case as kohya
  EXPECT_TRUE(any_contains(problems({"use_8bit_adam=true", "optimizer_type=Lion"}), "are both given"));
}

// ---------------------------------------------------------------- environment

TEST_F(TrainConfigTest, AutoValuesFollowTheMachine) {
  TrainEnvironment gpu = cpu;
  gpu.cuda_available = true;
  gpu.free_memory_bytes = 8 * kGiB;
  TrainConfig c = load({}, "product", &gpu);
  EXPECT_EQ(c.device, "cuda");
  EXPECT_EQ(c.mixed_precision, "fp16");
  EXPECT_EQ(c.train_batch_size, 2);
  c = load({"mixed_precision=bf16", "train_batch_size=3", "device=cuda:0"}, "product", &gpu);
  EXPECT_EQ(c.mixed_precision, "bf16");
  EXPECT_EQ(c.train_batch_size, 3);
  EXPECT_EQ(c.device, "cuda:0");
  c = load({"device=cpu"}, "product", &gpu);
  EXPECT_EQ(c.mixed_precision, "no");  // auto on the CPU
}

TEST_F(TrainConfigTest, MixedPrecisionWithoutCudaNamesTheDevice) {
  const auto p = problems({"mixed_precision=fp16"});
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0], "mixed_precision = fp16 needs a CUDA GPU, but this training runs on the cpu (device = cpu); set "
                  "mixed_precision = no (or auto).");
  TrainEnvironment gpu = cpu;
  gpu.cuda_available = true;
  EXPECT_TRUE(any_contains(problems({"mixed_precision=bf16", "device=cpu"}, "product", &gpu), "device = cpu"));
  EXPECT_TRUE(any_contains(problems({"device=cuda"}), "device = cuda, but this daemon has no CUDA GPU"));
  EXPECT_TRUE(any_contains(problems({"device=mps"}), "device 'mps' is not one of auto, cpu, cuda, cuda:N"));
}

// ---------------------------------------------------------------- validation

TEST_F(TrainConfigTest, UnknownKeysSuggestTheNearestKnownOne) {
  auto p = problems({"learning_rat=1e-4"});
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0], "unknown key 'learning_rat' (from --set); did you mean 'learning_rate'?");
  EXPECT_TRUE(any_contains(problems({"netwrk_dim=8"}), "did you mean 'network_dim'?"));
  EXPECT_TRUE(any_contains(problems({"max_epochs=8"}), "did you mean 'max_train_epochs'?"));
  p = problems({"banana=1"});
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0], "unknown key 'banana' (from --set).");
  EXPECT_TRUE(any_contains(problems({"preset=prodcut"}), "preset 'prodcut' is not one of product, character, anime, "
                                                         "style, custom; did you mean 'product'?"));
}

TEST_F(TrainConfigTest, EachValidationErrorNamesItsKey) {
  struct Case {
    std::vector<std::string> overrides;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {{"learning_rate=-1e-4"}, "learning_rate must be greater than 0, got -0.0001."},
      {{"learning_rate=0"}, "learning_rate must be greater than 0, got 0."},
      {{"unet_lr=0"}, "unet_lr must be greater than 0"},
      {{"text_encoder_lr=-1"}, "text_encoder_lr must be greater than 0"},
      {{"network_dim=0"}, "network_dim (the rank) must be 1..1024, got 0."},
      {{"network_alpha=0"}, "network_alpha must be greater than 0, got 0"},
      {{"conv_dim=0"}, "conv_dim must be 1..1024 when given, got 0"},
      {{"conv_dim=4", "conv_alpha=-1"}, "conv_alpha must be greater than 0"},
      {{"resolution=500"}, "resolution 500 is not a multiple of 64 (use 512)."},
      {{"resolution=32"}, "resolution 32 is outside 64..2048"},
      {{"resolution=4096"}, "resolution 4096 is outside 64..2048"},
      {{"resolution=512,700"}, "resolution 512,700: the height 700 is not a multiple of 64 (use 704)."},
      {{"resolution=big"}, "resolution must be a size like 512"},
      {{"train_batch_size=0"}, "train_batch_size must be 1..64, got 0."},
      {{"train_batch_size=65"}, "train_batch_size must be 1..64, got 65."},
      {{"max_train_epochs=0"}, "max_train_epochs must be at least 1, got 0."},
      {{"max_train_steps=0"}, "max_train_steps must be at least 1, got 0."},
      {{"gradient_accumulation_steps=0"}, "gradient_accumulation_steps must be at least 1"},
      {{"caption_dropout_rate=1.5"}, "caption_dropout_rate must be between 0 and 1, got 1.5."},
      {{"keep_tokens=-1"}, "keep_tokens must be 0 or more"},
      {{"lr_scheduler=cosine_restarts"},
       "lr_scheduler 'cosine_restarts' is not one of constant, constant_with_warmup, linear, cosine, "
       "cosine_with_restarts, polynomial; did you mean 'cosine_with_restarts'?"},
      {{"lr_scheduler=constant", "lr_warmup_steps=100"}, "lr_warmup_steps = 100 does nothing with lr_scheduler = constant"},
      {{"lr_warmup_steps=-5"}, "lr_warmup_steps must be 0 or more"},
      {{"lr_scheduler_num_cycles=0"}, "lr_scheduler_num_cycles must be at least 1"},
      {{"optimizer_type=Adam"}, "optimizer_type 'Adam' is not one of AdamW, AdamW8bit, Lion, SGDNesterov"},
      {{"optimizer_type=Prodigy"}, "optimizer_type Prodigy is a kohya optimizer Kiln does not have; use one of AdamW, "
                                   "AdamW8bit, Lion, SGDNesterov."},
      {{"optimizer_args=weight_decay=-1"}, "optimizer_args weight_decay must be 0 or more"},
      {{"optimizer_args=betas=0.9,1.5"}, "optimizer_args betas: beta2 must be in [0, 1), got 1.5."},
      {{"optimizer_args=decay=1"}, "optimizer_args decay is not supported"},
      {{"max_grad_norm=-1"}, "max_grad_norm must be 0 (no clipping) or more"},
      {{"mixed_precision=fp32"}, "mixed_precision 'fp32' is not one of no, fp16, bf16 (or auto)"},
      {{"save_precision=half"}, "save_precision 'half' is not one of float, fp16, bf16"},
      {{"network_train_unet_only=true", "network_train_text_encoder_only=true"},
       "network_train_unet_only and network_train_text_encoder_only are both set"},
      {{"network_module=lycoris.kohya"}, "network_module 'lycoris.kohya' is not supported"},
      {{"network_args=algo=loha"}, "network_args algo is not supported"},
      {{"clip_skip=0"}, "clip_skip must be 1..12"},
      {{"max_token_length=100"}, "max_token_length must be 75, 150 or 225, got 100."},
      {{"caption_extension=txt"}, "caption_extension must be a file extension starting with a dot"},
      {{"noise_offset=-0.1"}, "noise_offset must be between 0 and 1"},
      {{"min_snr_gamma=0"}, "min_snr_gamma must be greater than 0"},
      {{"seed=-3"}, "seed must be 0 or more"},
      {{"save_every_n_epochs=0"}, "save_every_n_epochs must be at least 1"},
      {{"sample_every_n_steps=0"}, "sample_every_n_steps must be at least 1"},
      {{"sample_sampler=heun"}, "sample_sampler heun is a kohya sampler Kiln does not have"},
      {{"sample_sampler=fast"}, "sample_sampler 'fast' is not one of ddim, euler, euler_a"},
      {{"num_repeats=0"}, "num_repeats must be at least 1"},
      {{"min_bucket_reso=768"}, "min_bucket_reso 768 is above the resolution's short side 512"},
      {{"max_bucket_reso=256", "min_bucket_reso=128"}, "max_bucket_reso 256 is below the resolution's long side 512"},
      {{"bucket_reso_steps=50"}, "bucket_reso_steps must be a positive multiple of 8"},
      {{"output_name=a/b"}, "output_name"},
      {{"train_data_dir=" + (dir / "nowhere").string()}, "train_data_dir " + (dir / "nowhere").string() +
                                                              " does not exist."},
      {{"base=/models/none.safetensors"}, "pretrained_model_name_or_path /models/none.safetensors does not exist."},
      {{"dataset=mine"}, "train_data_dir and dataset are both given"},
      {{"v2=true"}, "v2 = true is not supported (from --set): Kiln trains SD1.x and SDXL LoRAs (epsilon prediction)."},
      {{"reg_data_dir=reg"}, "reg_data_dir = reg is not supported"},
      {{"save_model_as=ckpt"}, "save_model_as = ckpt is not supported"},
      {{"flip_aug=true"}, "flip_aug = true is not supported"},
      {{"sample_prompts=a cat --w huge"}, "sample prompt line 1: --w needs a whole number of pixels"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.overrides.front());
    const auto p = problems(c.overrides);
    EXPECT_TRUE(any_contains(p, c.expected)) << (p.empty() ? "(none)" : p.front());
  }
}

TEST_F(TrainConfigTest, MissingEssentials) {
  ConfigSources s;
  s.preset = "product";
  try {
    load_train_config(s, cpu);
    ADD_FAILURE();
  } catch (const ConfigError& e) {
    ASSERT_EQ(e.problems().size(), 3u) << e.what();
    EXPECT_TRUE(contains(e.problems()[0], "pretrained_model_name_or_path (base) is missing"));
    EXPECT_TRUE(contains(e.problems()[1], "train_data_dir (a kohya folder of N_name subfolders) or dataset"));
    EXPECT_TRUE(contains(e.problems()[2], "output_name is missing"));
  }
}

TEST_F(TrainConfigTest, EveryProblemIsReportedAtOnce) {
  const auto p = problems({"learning_rate=-1", "network_dim=0", "learning_rat=1", "network_alpha=abc"});
  EXPECT_EQ(p.size(), 4u);
  EXPECT_TRUE(any_contains(p, "learning_rate must be greater than 0"));
  EXPECT_TRUE(any_contains(p, "network_dim (the rank)"));
  EXPECT_TRUE(any_contains(p, "unknown key 'learning_rat'"));
  EXPECT_TRUE(any_contains(p, "network_alpha must be a number, not the text \"abc\""));
  try {
    load({"learning_rate=-1", "network_dim=0"});
  } catch (const ConfigError& e) {
    EXPECT_TRUE(contains(e.what(), "learning_rate must be greater than 0, got -1.\nnetwork_dim")) << e.what();
  }
}

TEST_F(TrainConfigTest, WrongTypesInJsonAreErrorsNamingTheSource) {
  ConfigSources s;
  s.preset = "product";
  s.request = basics();
  s.request["network_dim"] = "32";
  s.request["learning_rate"] = true;
  s.request["max_train_epochs"] = 2.5;
  s.request["sample_prompts"] = {"fine", 3};
  try {
    load_train_config(s, cpu);
    ADD_FAILURE();
  } catch (const ConfigError& e) {
    const auto& p = e.problems();
    EXPECT_TRUE(any_contains(p, "network_dim must be a whole number, not the text \"32\" (from request).")) << e.what();
    EXPECT_TRUE(any_contains(p, "learning_rate must be a number, not true (from request).")) << e.what();
    EXPECT_TRUE(any_contains(p, "max_train_epochs must be a whole number, not 2.5")) << e.what();
    EXPECT_TRUE(any_contains(p, "sample_prompts must be a list of prompt texts, but one item is 3")) << e.what();
  }
  EXPECT_THROW(layer_from_json(json::array()), ConfigError);
}

// ---------------------------------------------------------------- values in their several forms

TEST_F(TrainConfigTest, ResolutionForms) {
  EXPECT_EQ(load({"resolution=640"}).resolution, (TrainResolution{640, 640}));
  EXPECT_EQ(load({"resolution=640x384"}).resolution, (TrainResolution{640, 384}));
  ConfigSources s;
  s.request = basics();
  s.request["resolution"] = {768, 512};
  EXPECT_EQ(load_train_config(s, cpu).resolution, (TrainResolution{768, 512}));
  s.request["resolution"] = 576;
  EXPECT_EQ(load_train_config(s, cpu).resolution, (TrainResolution{576, 576}));
}

TEST_F(TrainConfigTest, SamplePromptsInlineOrFromAFile) {
  ConfigSources s;
  s.request = basics();
  s.request["sample_prompts"] = "sks speaker on a desk --d 1\nsks speaker, beach --d 2";
  TrainConfig c = load_train_config(s, cpu);
  EXPECT_EQ(c.sample_prompts.size(), 2u);
  EXPECT_EQ(c.sample_prompts_file, "");

  write(dir / "p.txt", "ok --d 1\nbad --s many\n");
  s.request["sample_prompts"] = "p.txt";  // relative to the working dir
  try {
    load_train_config(s, cpu);
    ADD_FAILURE();
  } catch (const ConfigError& e) {
    EXPECT_TRUE(contains(e.what(), (dir / "p.txt").string() + ": sample prompt line 2: --s needs a whole number"))
        << e.what();
  }
  s.request["sample_prompts"] = "none.txt";
  try {
    load_train_config(s, cpu);
    ADD_FAILURE();
  } catch (const ConfigError& e) {
    EXPECT_TRUE(contains(e.what(), "sample_prompts names the file " + (dir / "none.txt").string() +
                                       ", which cannot be read (it does not exist)."))
        << e.what();
  }
  s.request["sample_prompts"] = json::array({"a photo of sks speaker"});
  c = load_train_config(s, cpu);
  ASSERT_EQ(c.sample_prompts.size(), 1u);
  EXPECT_EQ(c.sample_prompts[0], "a photo of sks speaker");
}

TEST_F(TrainConfigTest, KilnDatasetInsteadOfAFolder) {
  ConfigSources s;
  s.preset = "product";
  s.request = {{"base", "sd15"}, {"dataset", "my speaker"}, {"output_name", "speaker"}, {"num_repeats", 12}};
  const TrainConfig c = load_train_config(s, cpu);
  EXPECT_EQ(c.dataset, "my speaker");
  EXPECT_EQ(c.num_repeats, 12);
  s.request["dataset"] = "../escape";
  EXPECT_THROW(load_train_config(s, cpu), ConfigError);
}

// ---------------------------------------------------------------- writing it back

TEST_F(TrainConfigTest, JsonRoundTrip) {
  write(dir / "prompts.txt", "sks speaker --d 3 --w 640\n");
  const TrainConfig c = load({"conv_dim=8", "conv_alpha=2", "optimizer_args=weight_decay=0.02,betas=0.85,0.98,eps=1e-7",
                              "lr_warmup_steps=0.1", "seed=42", "noise_offset=0.05", "min_snr_gamma=5",
                              "sample_prompts=prompts.txt", "max_token_length=150", "training_comment=\"trigger: sks\"",
                              "gradient_accumulation_steps=2", "network_train_unet_only=true", "save_every_n_steps=100"});
  const json j = to_json(c);
  EXPECT_EQ(j["network_dim"], 16);
  EXPECT_EQ(j["conv_dim"], 8);
  EXPECT_EQ(j["optimizer_args"]["betas"], json({0.85, 0.98}));
  EXPECT_EQ(j["resolution"], "512,512");
  EXPECT_TRUE(j["unet_lr"].is_null());
  EXPECT_TRUE(j["max_train_steps"].is_null());  // max_train_epochs decides
  EXPECT_EQ(j["sample_prompts"], json({"sks speaker --d 3 --w 640"}));
  EXPECT_EQ(j["training_comment"], "trigger: sks");
  EXPECT_FALSE(j.contains("origins"));

  const TrainConfig back = train_config_from_json(j, cpu);
  EXPECT_EQ(to_json(back), j);
  EXPECT_EQ(back.conv_dim, 8);
  EXPECT_DOUBLE_EQ(*back.optimizer_args.eps, 1e-7);
  EXPECT_DOUBLE_EQ(back.lr_warmup_steps, 0.1);
  EXPECT_EQ(back.seed, 42);
  EXPECT_EQ(back.sample_prompts_file, (dir / "prompts.txt").string());
  EXPECT_TRUE(back.notes.empty()) << back.notes.front();
  // Through text, as config.json is stored.
  EXPECT_EQ(to_json(train_config_from_json(json::parse(j.dump(2)), cpu)), j);
}

TEST_F(TrainConfigTest, KohyaTomlReadsBackToTheSameTraining) {
  const TrainConfig c = load({"conv_dim=8", "optimizer_args=weight_decay=0.02,betas=0.85,0.98", "lr_warmup_steps=50",
                              "lr_scheduler=constant_with_warmup", "seed=42", "noise_offset=0.05", "clip_skip=2",
                              "resolution=512,768", "sample_prompts=sks speaker --d 1"});
  const std::string toml = to_kohya_toml(c, {"", (dir / "sample_prompts.txt").string(), ""});
  EXPECT_TRUE(contains(toml, "network_args = [\"conv_dim=8\"]")) << toml;
  EXPECT_TRUE(contains(toml, "optimizer_args = [\"weight_decay=0.02\", \"betas=0.85,0.98\"]")) << toml;
  EXPECT_TRUE(contains(toml, "learning_rate = 0.0001\n")) << toml;
  EXPECT_TRUE(contains(toml, "network_alpha = 8.0\n")) << toml;
  EXPECT_TRUE(contains(toml, "[training_arguments]")) << toml;
  write(dir / "sample_prompts.txt", sample_prompts_text(c));

  // kohya merges the sections; so does Kiln's reader: the same values come back.
  const TrainConfig back = build_train_config({layer_from_toml(toml, "kohya.toml")}, cpu);
  json a = to_json(c), b = to_json(back);
  a.erase("preset");  // Kiln-only keys kohya has no place for
  b.erase("preset");
  a.erase("device");
  b.erase("device");
  a.erase("sample_prompts_file");  // the record of where the prompts came from
  b.erase("sample_prompts_file");
  EXPECT_EQ(a, b);
}

// ---------------------------------------------------------------- warnings

TEST_F(TrainConfigTest, WarningsForSmallAndLowResolutionDatasets) {
  const TrainConfig c = load({});
  DatasetFacts facts;
  facts.folders = {{"20_sks speaker", 8, 20}};
  facts.min_short_side = 384;
  facts.low_resolution_images = 3;
  const auto w = training_warnings(c, facts);
  EXPECT_TRUE(any_contains(w, "The dataset has only 8 images")) << w.front();
  EXPECT_TRUE(any_contains(w, "20–40 sharp images"));  // product
  EXPECT_TRUE(any_contains(w, "3 images are smaller than the training resolution 512 (the smallest short side is 384 "
                              "px)"));
}

TEST_F(TrainConfigTest, WarningsForStepsFarFromTheUsualRange) {
  const TrainConfig c = load({});  // product: 10 epochs, batch 1 on this machine
  DatasetFacts low;
  low.folders = {{"2_sks", 30, 2}};
  auto w = training_warnings(c, low);
  EXPECT_TRUE(any_contains(w, "This training runs 600 steps (30 images, 60 with repeats, batch 1, 10 epochs), well "
                              "below the usual 1,500–3,000"))
      << (w.empty() ? "" : w.front());
  EXPECT_TRUE(any_contains(w, "Raise the repeats per image to about 7"));
  EXPECT_TRUE(any_contains(w, "the epochs (max_train_epochs) to about 33"));

  DatasetFacts high;
  high.folders = {{"50_sks", 40, 50}};
  w = training_warnings(c, high);
  EXPECT_TRUE(any_contains(w, "This training runs 20000 steps"));
  EXPECT_TRUE(any_contains(w, "Lower the repeats per image to about 5"));

  DatasetFacts fine;
  fine.folders = {{"10_sks", 20, 10}};
  // Only the note that the preset's samples show the trigger word alone (no sample prompts given).
  w = training_warnings(c, fine);
  ASSERT_EQ(w.size(), 1u) << w.front();
  EXPECT_TRUE(any_contains(w, "No sample_prompts are given"));

  DatasetFacts exact = fine;
  exact.total_steps = 900;  // the job's bucket-exact count wins over the estimate
  EXPECT_TRUE(any_contains(training_warnings(c, exact), "This training runs 900 steps"));
}

TEST_F(TrainConfigTest, WarningsForRankAlphaLearningRateAndSamples) {
  DatasetFacts fine;
  fine.folders = {{"10_sks", 20, 10}};
  auto w = training_warnings(load({"conv_dim=64"}), fine);
  EXPECT_TRUE(any_contains(w, "conv_dim 64 is a very high rank"));
  w = training_warnings(load({"network_alpha=32"}), fine);
  EXPECT_TRUE(any_contains(w, "network_alpha 32 is above network_dim 16"));
  w = training_warnings(load({"learning_rate=5e-3"}), fine);
  EXPECT_TRUE(any_contains(w, "The U-Net learning rate 0.005 is above 1e-3"));
  w = training_warnings(load({"sample_every_n_epochs=1"}), fine);
  EXPECT_TRUE(any_contains(w, "No sample_prompts are given: the samples show the trigger word alone"));
  w = training_warnings(load({"sample_prompts=x --d 1", "sample_every_n_steps=none"}), fine);
  EXPECT_TRUE(any_contains(w, "sample_prompts are given but neither"));
  w = training_warnings(load({"xformers=true"}), fine);
  EXPECT_TRUE(any_contains(w, "xformers = true is ignored (from --set): Kiln chooses attention"));
}

TEST(TrainConfigSteps, EstimateFollowsKohyasCount) {
  TrainConfig c;
  c.max_train_epochs = 5;
  c.train_batch_size = 4;
  c.gradient_accumulation_steps = 3;
  // 30 images with repeats → 8 batches → ceil(8/3) = 3 optimizer steps per epoch.
  EXPECT_EQ(estimate_total_steps(c, 30), 15);
  c.max_train_epochs.reset();
  c.max_train_steps = 777;
  EXPECT_EQ(estimate_total_steps(c, 30), 777);
}

TEST(TrainConfigKeys, ListsKilnAndKohyaKeys) {
  const auto& keys = train_config_keys();
  EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));
  for (const char* k : {"base", "dataset", "preset", "device", "network_dim", "network_args", "xformers",
                        "lr_restart_cycles", "sample_prompts"})
    EXPECT_TRUE(std::find(keys.begin(), keys.end(), k) != keys.end()) << k;
}

TEST_F(TrainConfigTest, PresetsOnAnSdxlBaseTrainAt1024TheUnetOnlyWithCheckpointing) {
  TrainEnvironment xl = cpu;
  xl.free_memory_bytes = 20 * kGiB;
  xl.model_family = [](const std::string& base) {
    return base == "sd15" ? kiln::engine::ModelFamily::SD1 : kiln::engine::ModelFamily::SDXL;
  };
  ConfigSources s;
  s.preset = "character";
  s.request = basics();
  s.request["base"] = "sdxl-base";
  const TrainConfig c = load_train_config(s, xl);
  EXPECT_EQ(c.family, kiln::engine::ModelFamily::SDXL);
  EXPECT_EQ(c.resolution, (TrainResolution{1024, 1024}));
  EXPECT_EQ(c.min_bucket_reso, 512);
  EXPECT_EQ(c.max_bucket_reso, 2048);
  EXPECT_TRUE(c.network_train_unet_only);
  EXPECT_TRUE(c.gradient_checkpointing);
  EXPECT_FALSE(c.clip_skip.has_value());
  EXPECT_EQ(c.network_dim, 32) << "the ranks of the guides stay";
  EXPECT_EQ(c.learning_rate, 1e-4);
  EXPECT_EQ(c.train_batch_size, 1) << "20 GB free is a quarter of 80 GB of SD1.5's rule: batch 1 at 1024²";
  EXPECT_EQ(c.origins.at("resolution"), "preset character for SDXL");
  EXPECT_TRUE(contains(to_kohya_toml(c, {}), "# kohya sd-scripts sdxl_train_network.py --config_file"));
  // The request and --set still win; and the SD1.x base is unchanged by all this.
  s.overrides = {"network_train_unet_only=false", "resolution=896,1152"};
  const TrainConfig both = load_train_config(s, xl);
  EXPECT_FALSE(both.network_train_unet_only);
  EXPECT_EQ(both.resolution, (TrainResolution{896, 1152}));
  s.request["base"] = "sd15";
  s.overrides.clear();
  const TrainConfig sd1 = load_train_config(s, xl);
  EXPECT_EQ(sd1.resolution, (TrainResolution{512, 512}));
  EXPECT_FALSE(sd1.network_train_unet_only);
  EXPECT_FALSE(sd1.gradient_checkpointing);
  EXPECT_EQ(sd1.clip_skip, 1);
  EXPECT_EQ(sd1.origins.at("resolution"), "preset character");
  EXPECT_TRUE(contains(to_kohya_toml(sd1, {}), "# kohya sd-scripts train_network.py --config_file"));
  EXPECT_EQ(sd1.train_batch_size, 4);
}

TEST_F(TrainConfigTest, SdxlWarnsBelow1024NotBelow512) {
  DatasetFacts fine;
  fine.folders = {{"20_sks speaker", 25, 8}};
  TrainConfig c = load({"resolution=768"});
  c.family = kiln::engine::ModelFamily::SDXL;
  EXPECT_TRUE(any_contains(training_warnings(c, fine), "SDXL models were trained at 1024"));
  c.family = kiln::engine::ModelFamily::SD1;
  EXPECT_FALSE(any_contains(training_warnings(c, fine), "trained at 1024"));
  EXPECT_FALSE(any_contains(training_warnings(c, fine), "below 512"));
}
