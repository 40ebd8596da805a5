#include "engine/lora/lora_apply.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "engine/error.h"
#include "engine/io/safetensors.h"
#include "engine/models/clip_text.h"
#include "engine/sampling/pipeline.h"
#include "engine/text/conditioning.h"
#include "support/reference.h"
#include "unit/engine/lora/lora_test_support.h"
#include "unit/engine/models/tiny_model.h"
#include "unit/engine/sampling/png_reader.h"

namespace kiln::test {
namespace {

using namespace engine::lora;
using engine::Error;
using engine::ErrorKind;
using engine::models::StableDiffusion;

constexpr int64_t kTxt2ImgSeed = 2034;  // the seed whose CPU randn is txt2img.noise

const LoraFile& fixture_file(const std::string& name) {
  static std::map<std::string, LoraFile> files;
  auto it = files.find(name);
  if (it == files.end()) it = files.emplace(name, LoraFile::read(lora_fixture(name))).first;
  return it->second;
}

// Copies of the tiny model's weights with every LoRA delta merged in: the reference for "the
// adapters add exactly ΔW·x".
struct Merged {
  std::vector<std::pair<torch::Tensor, torch::Tensor>> saved;  // (parameter, original values)
  explicit Merged(const std::vector<const LoraNetwork*>& networks) {
    torch::NoGradGuard no_grad;
    for (const auto* net : networks) {
      for (const auto& e : net->entries()) {
        auto w = e.layer.weight();
        saved.emplace_back(w, w.clone());
        w.add_(e.module->delta_weight().to(w.dtype()));
      }
    }
  }
  ~Merged() {
    torch::NoGradGuard no_grad;
    for (auto it = saved.rbegin(); it != saved.rend(); ++it) it->first.copy_(it->second);
  }
};

class LoraAppliedCase : public ::testing::TestWithParam<std::string> {};

TEST_P(LoraAppliedCase, TextEncoderAndUNetMatchKohya) {
  const auto& ref = Reference::get();
  const auto& c = ref.case_by_id(GetParam());
  const auto& in = c.at("inputs");
  const auto& tol = c.at("tolerance");
  const auto& sd = tiny_sd();
  ApplyReport report;
  auto net = apply_lora(sd, fixture_file(in.at("lora_file")), in.at("multiplier").get<double>(), &report);
  EXPECT_TRUE(report.unmatched.empty());
  EXPECT_EQ(report.text_encoder_modules, 24);
  EXPECT_EQ(report.text_encoder_modules + report.unet_modules, int64_t(fixture_file(in.at("lora_file")).modules.size()));

  const double te_err = max_abs_diff(text_states(sd, ref.tensor(in.at("ids"))), ref.tensor(c.at("outputs").at("te_last_hidden_state")));
  const double unet_err = max_abs_diff(unet_eps_t500(sd), ref.tensor(c.at("outputs").at("unet_eps")));
  EXPECT_LE(te_err, tol.at("te_max_abs").get<double>());
  EXPECT_LE(unet_err, tol.at("unet_max_abs").get<double>());
  ::testing::Test::RecordProperty("te_err", std::to_string(te_err));
  ::testing::Test::RecordProperty("unet_err", std::to_string(unet_err));
  std::cout << "[ measured ] " << GetParam() << " te " << te_err << " unet " << unet_err << "\n";
}

TEST_P(LoraAppliedCase, EulerTxt2ImgWithTheLoraMatchesKohya) {
  const auto& ref = Reference::get();
  const auto& c = ref.case_by_id(GetParam());
  const auto& in = c.at("inputs");
  const auto& out = c.at("outputs");
  const auto& tol = c.at("tolerance");
  const auto& sd = tiny_sd();
  auto net = apply_lora(sd, fixture_file(in.at("lora_file")), in.at("multiplier").get<double>());

  // Conditioning through the LoRA text encoder, as A1111 does for <lora:name:m>.
  const auto& t2i = in.at("txt2img");
  const auto encoder = engine::models::text_encoder_fn(sd.text_encoder);
  const auto cond = engine::a1111_conditioning(t2i.at("prompt"), encoder).cond;
  const auto uncond = engine::a1111_conditioning(t2i.at("negative_prompt"), encoder).cond;
  EXPECT_LE(max_abs_diff(cond.unsqueeze(0), ref.tensor(out.at("txt2img_cond"))), tol.at("te_max_abs").get<double>());
  EXPECT_LE(max_abs_diff(uncond.unsqueeze(0), ref.tensor(out.at("txt2img_uncond"))), tol.at("te_max_abs").get<double>());

  engine::sampling::GenerationParams p;
  p.width = p.height = 64;
  p.steps = t2i.at("steps");
  p.cfg_scale = t2i.at("cfg_scale");
  p.sampler = "Euler";
  p.seed = kTxt2ImgSeed;
  p.preview_every = 0;
  const auto result = engine::sampling::generate(sd, {cond, uncond, {}}, p);
  const double latent_err = max_abs_diff(result.latents, ref.tensor(out.at("txt2img_latent")));
  EXPECT_LE(latent_err, tol.at("latent_max_abs").get<double>());
  torch::NoGradGuard no_grad;
  const double image_err = max_abs_diff(sd.vae->decode(result.latents / sd.latent_scale()), ref.tensor(out.at("txt2img_image")));
  EXPECT_LE(image_err, tol.at("image_max_abs").get<double>());
  const auto png = read_png(sd15_tiny_dir() / out.at("png").get<std::string>());
  ASSERT_EQ(result.images.size(), 1u);
  EXPECT_LE(max_abs_diff(result.images[0], png), 1.0);
  std::cout << "[ measured ] " << GetParam() << " latent " << latent_err << " image " << image_err << "\n";
}

INSTANTIATE_TEST_SUITE_P(Fixtures, LoraAppliedCase,
                         ::testing::Values("lora/lora_rank4_m1", "lora/lora_rank4_m0p7", "lora/lora_locon_m1"),
                         [](const auto& info) { return info.param.substr(5); });

TEST(LoraApplyTest, RemovingRestoresTheBaseModelBitForBit) {
  const auto& sd = tiny_sd();
  const auto ids = Reference::get().tensor(std::string("lora.lora_rank4_m1.ids"));
  const auto base_eps = unet_eps_t500(sd), base_te = text_states(sd, ids);
  {
    auto net = apply_lora(sd, fixture_file("lora_locon.safetensors"), 1.0);
    EXPECT_FALSE(torch::equal(unet_eps_t500(sd), base_eps));
    EXPECT_FALSE(torch::equal(text_states(sd, ids), base_te));
    net->detach();
    EXPECT_TRUE(torch::equal(unet_eps_t500(sd), base_eps));
    net->attach();
    EXPECT_FALSE(torch::equal(unet_eps_t500(sd), base_eps));
  }  // destroyed: detached
  EXPECT_TRUE(torch::equal(unet_eps_t500(sd), base_eps));
  EXPECT_TRUE(torch::equal(text_states(sd, ids), base_te));
}

TEST(LoraApplyTest, TwoLorasAtOnceAddTheirDeltas) {
  const auto& sd = tiny_sd();
  auto a = apply_lora(sd, fixture_file("lora_rank4.safetensors"), 0.7);
  auto b = apply_lora(sd, fixture_file("lora_locon.safetensors"), -0.4);
  const auto both = unet_eps_t500(sd);
  a->detach();
  b->detach();
  Merged merged({a.get(), b.get()});  // W + 0.7·ΔA − 0.4·ΔB
  const double err = max_abs_diff(both, unet_eps_t500(sd));
  EXPECT_LE(err, 1e-4);
  std::cout << "[ measured ] two LoRAs vs merged weights " << err << "\n";
}

TEST(LoraApplyTest, SameLoraTwiceAtHalfEqualsOnceAtOne) {
  const auto& sd = tiny_sd();
  const auto& file = fixture_file("lora_rank4.safetensors");
  torch::Tensor once;
  {
    auto net = apply_lora(sd, file, 1.0);
    once = unet_eps_t500(sd);
  }
  auto h1 = apply_lora(sd, file, 0.5), h2 = apply_lora(sd, file, 0.5);
  EXPECT_LE(max_abs_diff(unet_eps_t500(sd), once), 1e-5);
}

TEST(LoraApplyTest, NegativeMultiplierSubtracts) {
  const auto& sd = tiny_sd();
  const auto base = unet_eps_t500(sd);
  auto net = apply_lora(sd, fixture_file("lora_locon.safetensors"), -1.0);
  const auto negative = unet_eps_t500(sd);
  EXPECT_GT(max_abs_diff(negative, base), 0.05);
  net->detach();
  Merged merged({net.get()});  // W − ΔW
  EXPECT_LE(max_abs_diff(negative, unet_eps_t500(sd)), 1e-4);
}

TEST(LoraApplyTest, LayerLevelLoConMatchesItsMergedWeight) {
  // One 3×3 conv with stride 2 (a Downsample), adapter path against the merged kernel.
  const auto& sd = tiny_sd();
  auto net = LoraNetwork::from_file(sd, fixture_file("lora_locon.safetensors"));
  const LoraNetwork::Entry* down = nullptr;
  for (const auto& e : net->entries())
    if (e.module->name() == "lora_unet_down_blocks_0_downsamplers_0_conv") down = &e;
  ASSERT_NE(down, nullptr);
  ASSERT_EQ(down->layer.stride, 2);
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({1, down->layer.in, 16, 16});
  net->set_multiplier(0.8);
  net->attach();
  const auto adapted = down->layer.conv->forward(x);
  const auto merged = at::conv2d(x, down->layer.conv->weight + down->module->delta_weight(), down->layer.conv->bias,
                                 {2, 2}, {1, 1});
  EXPECT_LE(max_abs_diff(adapted, merged), 1e-5);
}

TEST(LoraApplyTest, UnmatchedModulesAreReportedNotIgnored) {
  TempDir dir;
  const auto path = dir.path() / "extra.safetensors";
  const auto& src = fixture_file("lora_rank4.safetensors");
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& m : src.modules) {
    tensors.emplace_back(m.name + ".lora_down.weight", m.down);
    tensors.emplace_back(m.name + ".lora_up.weight", m.up);
  }
  tensors.emplace_back("lora_unet_no_such_block_proj.lora_down.weight", torch::zeros({4, 32}));
  tensors.emplace_back("lora_unet_no_such_block_proj.lora_up.weight", torch::zeros({32, 4}));
  tensors.emplace_back("bundle_emb.mytoken.string_to_param.*", torch::zeros({1, 128}));
  engine::save_safetensors(path, tensors);
  ApplyReport report;
  auto net = apply_lora(tiny_sd(), LoraFile::read(path), 1.0, &report);
  EXPECT_EQ(report.text_encoder_modules + report.unet_modules, 216);
  EXPECT_EQ(report.unmatched,
            (std::vector<std::string>{"lora_unet_no_such_block_proj", "bundle_emb.mytoken.string_to_param.*"}));
  for (const auto& e : net->entries()) EXPECT_EQ(e.module->alpha(), 4.0) << "no alpha in the file: alpha = rank";
}

TEST(LoraApplyTest, LoraForAnotherFamilyIsRefused) {
  TempDir dir;
  std::string message;
  auto try_apply = [&](const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
    const auto path = dir.path() / "other.safetensors";
    engine::save_safetensors(path, tensors);
    try {
      apply_lora(tiny_sd(), LoraFile::read(path), 1.0);
    } catch (const Error& e) {
      message = e.what();
      return e.kind();
    }
    return ErrorKind::Internal;
  };
  // SDXL: LDM-named UNet keys and a second text encoder 1280 wide.
  EXPECT_EQ(try_apply({{"lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_down.weight", torch::zeros({4, 2048})},
                       {"lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_up.weight", torch::zeros({640, 4})},
                       {"lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight", torch::zeros({4, 1280})},
                       {"lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_up.weight", torch::zeros({5120, 4})}}),
            ErrorKind::Unsupported);
  EXPECT_NE(message.find("SDXL"), std::string::npos) << message;
  // Names this model has, shapes it does not (an SD1.5-size LoRA on the tiny model).
  EXPECT_EQ(try_apply({{"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight", torch::zeros({4, 320, 1, 1})},
                       {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight", torch::zeros({320, 4, 1, 1})}}),
            ErrorKind::InvalidArgument);
  EXPECT_NE(message.find("does not fit"), std::string::npos) << message;
  // Nothing of it matches this model.
  EXPECT_EQ(try_apply({{"lora_unet_foo.lora_down.weight", torch::zeros({4, 8})},
                       {"lora_unet_foo.lora_up.weight", torch::zeros({8, 4})}}),
            ErrorKind::InvalidArgument);
}

TEST(LoraApplyTest, StackSwitchesLorasWithoutTouchingTheBase) {
  const auto& sd = tiny_sd();
  const auto base = unet_eps_t500(sd);
  torch::Tensor rank4_at_07;
  {
    auto net = apply_lora(sd, fixture_file("lora_rank4.safetensors"), 0.7);
    rank4_at_07 = unet_eps_t500(sd);
  }
  LoraStack stack(sd);
  const auto rank4 = lora_fixture("lora_rank4.safetensors"), locon = lora_fixture("lora_locon.safetensors");
  auto reports = stack.set({{rank4, 1.0, {}, {}}, {locon, 0.5, {}, {}}});
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_EQ(reports[1].unet_modules, 302 - 24);
  EXPECT_FALSE(torch::equal(unet_eps_t500(sd), base));
  stack.set({{rank4, 0.7, {}, {}}});  // the same file again: reused, new multiplier
  EXPECT_EQ(stack.size(), 1u);
  EXPECT_TRUE(torch::equal(unet_eps_t500(sd), rank4_at_07));
  // A text-encoder-only multiplier leaves the UNet at the base.
  stack.set({{rank4, 1.0, 1.0, 0.0}});
  EXPECT_TRUE(torch::equal(unet_eps_t500(sd), base));
  // A failing request changes nothing.
  EXPECT_THROW(stack.set({{locon, 1.0, {}, {}}, {lora_fixture("no-such.safetensors"), 1.0, {}, {}}}), Error);
  EXPECT_EQ(stack.size(), 1u);
  stack.clear();
  EXPECT_TRUE(torch::equal(unet_eps_t500(sd), base));
}

}  // namespace
}  // namespace kiln::test
