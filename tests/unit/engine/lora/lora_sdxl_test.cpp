// sdxl-tiny: the kohya SDXL LoRA file (names, counts, metadata), the LoRA applied to both text
// encoders and the UNet (conditioning, eps, the txt2img image), and kohya sdxl_train_network's
// first three steps; from both layouts. LoRAs of the other family are refused by name.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <iostream>
#include <map>
#include <set>

#include "engine/conditioning.h"
#include "engine/error.h"
#include "engine/lora/caption_ids.h"
#include "engine/lora/lora_apply.h"
#include "engine/lora/trainer.h"
#include "engine/sampling/pipeline.h"
#include "engine/text/clip_tokenizer.h"
#include "support/reference.h"
#include "unit/engine/lora/lora_test_support.h"
#include "unit/engine/models/tiny_model.h"
#include "unit/engine/sampling/png_reader.h"

namespace kiln::test {
namespace {

using namespace engine::lora;

const Reference& ref() { return Reference::get("sdxl-tiny"); }
std::filesystem::path sdxl_lora() { return sdxl_tiny_dir() / "lora_sdxl_rank4.safetensors"; }

TEST(SdxlLoraFile, NamesCountsAndMetadataAreKohyas) {
  const auto& c = ref().case_by_id("lora/files");
  const auto& e = c.at("expected").at("lora_sdxl_rank4.safetensors");
  const auto file = LoraFile::read(sdxl_lora());
  EXPECT_EQ(file.family, engine::ModelFamily::SDXL);
  std::vector<std::string> names;
  std::map<std::string, int64_t> per_prefix;
  for (const auto& m : file.modules) {
    names.push_back(m.name);
    per_prefix[m.name.substr(0, m.name.find('_', 5))] += 1;
    EXPECT_EQ(m.rank(), e.at("rank").get<int64_t>());
    EXPECT_EQ(m.alpha, e.at("alpha").get<double>());
  }
  EXPECT_EQ(names, e.at("modules").get<std::vector<std::string>>());
  EXPECT_EQ(int64_t(names.size()), e.at("n_modules").get<int64_t>());
  for (const auto& [prefix, n] : e.at("modules_per_prefix").items()) EXPECT_EQ(per_prefix[prefix], n.get<int64_t>()) << prefix;
  const auto metadata = e.at("metadata").get<std::map<std::string, std::string>>();
  EXPECT_EQ(file.metadata, metadata);
  const auto info = read_lora_info(sdxl_lora());
  EXPECT_EQ(info.family, engine::ModelFamily::SDXL);
  EXPECT_EQ(info.base_model_version, "sdxl_base_v1-0");
  EXPECT_EQ(info.text_encoder_modules, 42);
  EXPECT_EQ(info.unet_modules, 182);
}

TEST(SdxlLoraFile, AFreshNetworkHasExactlyKohyasModules) {
  // LoraNetwork::create on the SDXL model: kohya's default targets under kohya's SDXL names.
  const auto& e = ref().case_by_id("lora/files").at("expected").at("lora_sdxl_rank4.safetensors");
  NetworkOptions o;
  o.dim = 4;
  o.alpha = 2;
  const auto net = LoraNetwork::create(tiny_sdxl(), o, 0);
  std::vector<std::string> names;
  for (const auto& entry : net->entries()) names.push_back(entry.module->name());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, e.at("modules").get<std::vector<std::string>>());
}

TEST(SdxlLoraFile, LoConHasKohyasSgmNamesAndReloads) {
  // kohya conv_dim on SDXL: the 3×3 convolutions of the ResBlocks, downsamplers and upsamplers (and
  // their 1×1 and Linear layers) join, under sdxl_original_unet's SGM names.
  NetworkOptions o;
  o.dim = 4;
  o.alpha = 2;
  o.conv_dim = 4;
  o.conv_alpha = 1;
  const auto& model = tiny_sdxl();
  const auto net = LoraNetwork::create(model, o, 3);
  std::set<std::string> names;
  int64_t te = 0, unet = 0;
  for (const auto& entry : net->entries()) {
    names.insert(entry.module->name());
    (entry.layer.component == Component::TextEncoder ? te : unet) += 1;
  }
  for (const char* name : {"lora_unet_input_blocks_1_0_in_layers_2", "lora_unet_input_blocks_1_0_emb_layers_1",
                           "lora_unet_input_blocks_1_0_out_layers_3", "lora_unet_input_blocks_4_0_skip_connection",
                           "lora_unet_input_blocks_3_0_op", "lora_unet_middle_block_0_in_layers_2",
                           "lora_unet_output_blocks_2_2_conv", "lora_unet_output_blocks_8_0_skip_connection",
                           "lora_unet_input_blocks_4_1_transformer_blocks_1_attn2_to_k"})
    EXPECT_EQ(names.count(name), 1u) << name;
  for (const auto& name : names) {
    EXPECT_EQ(name.find("down_blocks"), std::string::npos) << name;
    EXPECT_EQ(name.find("up_blocks"), std::string::npos) << name;
  }
  EXPECT_EQ(te, 42);
  EXPECT_GT(unet, 182) << "the transformer Linears plus the convolutions";
  {
    torch::NoGradGuard no_grad;  // "trained" weights: random ups
    for (const auto& e : net->entries()) torch::Tensor(e.module->up()).normal_(0, 0.05);
  }
  const auto& in = ref().case_by_id("unet/t500").at("inputs");
  auto eps = [&] {
    torch::NoGradGuard no_grad;
    return model.unet->forward(ref().tensor(in.at("latent")), torch::tensor({500.f}), ref().tensor(in.at("crossattn")),
                               ref().tensor(in.at("vector")));
  };
  const auto base = eps();
  net->attach();
  const auto trained = eps();
  net->detach();
  EXPECT_GT(max_abs_diff(trained, base), 1e-3) << "the LoCon changes the UNet";

  TempDir dir;
  SaveOptions fp32;
  fp32.dtype = torch::kFloat32;
  net->save(dir.path() / "locon.safetensors", fp32);
  const auto file = LoraFile::read(dir.path() / "locon.safetensors");
  EXPECT_EQ(file.family, engine::ModelFamily::SDXL);
  ApplyReport report;
  const auto loaded = apply_lora(model, file, 1.0, &report);
  EXPECT_TRUE(report.unmatched.empty()) << report.unmatched.front();
  EXPECT_EQ(report.text_encoder_modules, te);
  EXPECT_EQ(report.unet_modules, unet);
  EXPECT_LE(max_abs_diff(eps(), trained), 1e-5);
}

class SdxlLora : public ::testing::TestWithParam<Layout> {
 protected:
  const engine::models::StableDiffusion& model() const { return tiny_sdxl(GetParam()); }
};

TEST_P(SdxlLora, AppliedLoraMatchesKohya) {
  const auto& c = ref().case_by_id("lora/lora_sdxl_rank4_m1");
  const auto& in = c.at("inputs");
  const auto& out = c.at("outputs");
  const auto& tol = c.at("tolerance");
  engine::PromptOptions base_options;
  base_options.width = base_options.height = 64;
  const auto base = [&] {
    torch::NoGradGuard no_grad;
    return engine::encode_prompt(model(), in.at("prompt"), base_options);
  }();
  ApplyReport report;
  const auto net = apply_lora(model(), LoraFile::read(sdxl_lora()), in.at("multiplier"), &report);
  EXPECT_EQ(report.text_encoder_modules, 42);
  EXPECT_EQ(report.unet_modules, 182);
  EXPECT_TRUE(report.unmatched.empty());

  torch::NoGradGuard no_grad;
  engine::PromptOptions options;
  options.width = options.height = 64;
  const auto cond = engine::encode_prompt(model(), in.at("prompt"), options);
  const double e_ctx = max_abs_diff(cond.context.unsqueeze(0), ref().tensor(out.at("cond_crossattn")));
  const double e_vec = max_abs_diff(cond.vector.unsqueeze(0), ref().tensor(out.at("cond_vector")));
  EXPECT_LE(e_ctx, tol.at("cond_max_abs").get<double>());
  EXPECT_LE(e_vec, tol.at("cond_max_abs").get<double>());
  // Both encoders' LoRA modules act: the states and the pooled part of the vector move.
  EXPECT_GT(max_abs_diff(cond.context, base.context), 1e-3);
  EXPECT_GT(max_abs_diff(cond.vector, base.vector), 1e-3);

  const auto eps = model().unet->forward(ref().tensor(in.at("unet_latent")), torch::tensor({500.f}),
                                         ref().tensor(in.at("unet_crossattn")), ref().tensor(in.at("unet_vector")));
  const double e_eps = max_abs_diff(eps, ref().tensor(out.at("unet_eps")));
  EXPECT_LE(e_eps, tol.at("unet_max_abs").get<double>());

  // txt2img with the LoRA in both encoders (cond and uncond) and the UNet.
  const auto& t = in.at("txt2img");
  const auto tc = engine::encode_prompt(model(), t.at("prompt"), options);
  options.negative = true;
  const auto tu = engine::encode_prompt(model(), t.at("negative_prompt"), options);
  EXPECT_LE(max_abs_diff(tc.context.unsqueeze(0), ref().tensor(out.at("txt2img_cond_crossattn"))), tol.at("cond_max_abs").get<double>());
  EXPECT_LE(max_abs_diff(tc.vector.unsqueeze(0), ref().tensor(out.at("txt2img_cond_vector"))), tol.at("cond_max_abs").get<double>());
  EXPECT_LE(max_abs_diff(tu.context.unsqueeze(0), ref().tensor(out.at("txt2img_uncond_crossattn"))), tol.at("cond_max_abs").get<double>());
  EXPECT_LE(max_abs_diff(tu.vector.unsqueeze(0), ref().tensor(out.at("txt2img_uncond_vector"))), tol.at("cond_max_abs").get<double>());
  engine::sampling::Conditioning g{tc.context, tu.context, {}, tc.vector, tu.vector};
  engine::sampling::GenerationParams p;
  p.width = p.height = 64;
  p.steps = t.at("steps");
  p.cfg_scale = t.at("cfg_scale");
  p.sampler = "Euler";
  p.seed = t.at("seed");
  p.preview_every = 0;
  const auto result = engine::sampling::generate(model(), g, p);
  const double e_latent = max_abs_diff(result.latents, ref().tensor(out.at("txt2img_latent")));
  EXPECT_LE(e_latent, tol.at("latent_max_abs").get<double>());
  const auto image = model().vae->decode(result.latents / model().latent_scale());
  const double e_image = max_abs_diff(image, ref().tensor(out.at("txt2img_image")));
  EXPECT_LE(e_image, tol.at("image_max_abs").get<double>());
  const double e_png = max_abs_diff(result.images.at(0), read_png(sdxl_tiny_dir() / out.at("png").get<std::string>()));
  EXPECT_LE(e_png, 1.0);
  std::cout << "[ measured ] lora/lora_sdxl_rank4_m1 (" << layout_name(GetParam()) << "): cond " << std::max(e_ctx, e_vec)
            << ", unet " << e_eps << ", latent " << e_latent << ", image " << e_image << ", png " << e_png << " levels\n";
}

TEST_P(SdxlLora, DetachingRestoresTheBaseModelBitForBit) {
  torch::NoGradGuard no_grad;
  const auto& c = ref().case_by_id("unet/t500");
  const auto& in = c.at("inputs");
  auto eps = [&] {
    return model().unet->forward(ref().tensor(in.at("latent")), torch::tensor({500.f}), ref().tensor(in.at("crossattn")),
                                 ref().tensor(in.at("vector")));
  };
  const auto before = eps();
  {
    const auto net = apply_lora(model(), LoraFile::read(sdxl_lora()), 1.0);
    EXPECT_FALSE(torch::equal(eps(), before));
  }
  EXPECT_TRUE(torch::equal(eps(), before));
}

INSTANTIATE_TEST_SUITE_P(Layouts, SdxlLora, ::testing::Values(Layout::SingleFile, Layout::Diffusers),
                         [](const auto& info) { return layout_name(info.param); });

TEST(SdxlLora, LorasOfTheOtherFamilyAreRefusedNamingBoth) {
  auto message_of = [](const engine::models::StableDiffusion& model, const std::filesystem::path& file) {
    try {
      apply_lora(model, LoraFile::read(file), 1.0);
    } catch (const engine::Error& e) {
      EXPECT_EQ(e.kind(), engine::ErrorKind::Unsupported);
      return std::string(e.what());
    }
    return std::string("(applied)");
  };
  const std::string sdxl_on_sd1 = message_of(tiny_sd(), sdxl_lora());
  EXPECT_NE(sdxl_on_sd1.find("made for SDXL"), std::string::npos) << sdxl_on_sd1;
  EXPECT_NE(sdxl_on_sd1.find("SD1.x"), std::string::npos) << sdxl_on_sd1;
  const std::string sd1_on_sdxl = message_of(tiny_sdxl(), lora_fixture("lora_rank4.safetensors"));
  EXPECT_NE(sd1_on_sdxl.find("made for SD1.x"), std::string::npos) << sd1_on_sdxl;
  EXPECT_NE(sd1_on_sdxl.find("SDXL"), std::string::npos) << sd1_on_sdxl;
}

// ---- training: kohya sdxl_train_network.py, three steps on one batch -------------------------

class SdxlTraining : public ::testing::TestWithParam<Layout> {};

TEST_P(SdxlTraining, ThreeStepsMatchKohya) {
  const auto& c = ref().case_by_id("training/sdxl_plain");
  const auto& in = c.at("inputs");
  const auto& out = c.at("outputs");
  const auto& tol = c.at("tolerance");
  const auto& model = tiny_sdxl(GetParam());

  NetworkOptions o;
  o.dim = in.at("lora_rank");
  o.alpha = in.at("lora_alpha");
  auto net = LoraNetwork::create(model, o, 0);
  std::map<std::string, torch::Tensor> init;
  std::vector<std::string> keys;
  for (const auto& entry : net->entries())
    for (const char* part : {".lora_down.weight", ".lora_up.weight"}) {
      keys.push_back(entry.module->name() + part);
      init[keys.back()] = ref().tensor("train.lora_init." + keys.back());
    }
  ASSERT_EQ(int64_t(keys.size()), in.at("lora_init").at("n_tensors").get<int64_t>());
  net->load_state_dict(init);

  TrainerOptions options;
  options.learning_rate = in.at("unet_lr");
  options.unet_lr = in.at("unet_lr").get<double>();
  options.text_encoder_lr = in.at("text_encoder_lr").get<double>();
  options.optimizer.type = "AdamW";
  options.max_grad_norm = in.at("max_grad_norm");
  options.keep_trace = true;
  LoraTrainer trainer(model, *net, options);

  TrainBatch batch;
  batch.latents = ref().tensor(in.at("latents"));
  batch.noise = ref().tensor(in.at("noise"));
  batch.timesteps = torch::tensor(in.at("timesteps").get<std::vector<int64_t>>());
  batch.input_ids = ref().tensor(in.at("input_ids_te1"));
  batch.input_ids_2 = ref().tensor(in.at("input_ids_te2"));
  const auto o_hw = in.at("original_size_hw").get<std::vector<int64_t>>();
  const auto crop = in.at("crop_top_left").get<std::vector<int64_t>>();
  const auto t_hw = in.at("target_size_hw").get<std::vector<int64_t>>();
  batch.size_conditioning =
      torch::tensor({o_hw[0], o_hw[1], crop[0], crop[1], t_hw[0], t_hw[1]}, torch::kFloat32).repeat({2, 1});

  const auto losses = out.at("loss_per_step").get<std::vector<double>>();
  const auto norms = out.at("grad_norm_before_clip_per_step").get<std::vector<double>>();
  const auto no_grad = c.at("expected").at("params_without_gradient").get<std::vector<std::string>>();
  double loss_err = 0, norm_err = 0, grad_rel = 0;
  for (size_t step = 0; step < losses.size(); ++step) {
    const auto r = trainer.step(batch);
    ASSERT_TRUE(r.optimizer_stepped);
    EXPECT_EQ(r.lrs, (std::vector<double>{in.at("text_encoder_lr"), in.at("unet_lr")}));
    loss_err = std::max(loss_err, std::abs(r.loss - losses[step]));
    norm_err = std::max(norm_err, std::abs(r.grad_norm - norms[step]) / norms[step]);
    if (step != 0) continue;
    EXPECT_LE(max_abs_diff(r.trace.noisy_latents, ref().tensor(out.at("noisy_latents_step1"))), 1e-6);
    EXPECT_LE(max_abs_diff(r.trace.encoder_hidden_states, ref().tensor(out.at("text_embedding_step1"))), 1e-4);
    EXPECT_LE(max_abs_diff(r.trace.vector, ref().tensor(out.at("vector_embedding_step1"))), 1e-4);
    EXPECT_LE(max_abs_diff(r.trace.noise_pred, ref().tensor(out.at("noise_pred_step1"))), 1e-4);
    double max_ref = 0, max_err = 0;
    for (size_t i = 0; i < keys.size(); ++i) {
      const auto expected = ref().tensor("train.sdxl.grad_step1." + keys[i]);
      const bool none = std::find(no_grad.begin(), no_grad.end(), keys[i]) != no_grad.end();
      if (none) {
        EXPECT_FALSE(r.trace.grads[i].defined()) << keys[i] << ": TE1's last layer does not reach SDXL's outputs";
        continue;
      }
      ASSERT_TRUE(r.trace.grads[i].defined()) << keys[i];
      max_ref = std::max(max_ref, expected.abs().max().item<double>());
      max_err = std::max(max_err, max_abs_diff(r.trace.grads[i], expected));
    }
    grad_rel = max_err / max_ref;
    EXPECT_LE(grad_rel, tol.at("grads_step1_max_abs_relative_to_max_abs_grad").get<double>());
  }
  EXPECT_LE(loss_err, tol.at("loss_max_abs").get<double>());
  EXPECT_LE(norm_err, 1e-4);

  const auto state = net->state_dict();
  std::map<std::string, torch::Tensor> final_weights(state.begin(), state.end());
  double masked = 0, all = 0;
  for (const auto& key : keys) {
    const auto expected = ref().tensor("train.sdxl.lora_final." + key);
    const auto mask = ref().tensor("train.sdxl.grad_step1." + key).abs() >= 1e-6;
    const auto diff = (final_weights.at(key) - expected).abs();
    all = std::max(all, diff.max().item<double>());
    if (mask.any().item<bool>()) masked = std::max(masked, diff.masked_select(mask).max().item<double>());
  }
  for (const auto& key : no_grad)
    EXPECT_TRUE(torch::equal(final_weights.at(key), init.at(key))) << key << " has no gradient: AdamW leaves it";
  EXPECT_LE(masked, tol.at("weights_max_abs_where_abs_grad_step1_ge_1e-6").get<double>());
  EXPECT_LE(all, tol.at("weights_max_abs_all").get<double>());
  std::cout << "[ measured ] training/sdxl_plain (" << layout_name(GetParam()) << "): loss " << loss_err
            << ", grad norm rel " << norm_err << ", grads step 1 rel " << grad_rel << ", weights (|g|>=1e-6) " << masked
            << ", weights all " << all << "\n";
}

INSTANTIATE_TEST_SUITE_P(Layouts, SdxlTraining, ::testing::Values(Layout::SingleFile, Layout::Diffusers),
                         [](const auto& info) { return layout_name(info.param); });

TEST(SdxlTraining, CaptionIdsFollowKohyasTokenizers) {
  const auto& c = ref().case_by_id("training/sdxl_plain");
  const auto captions = c.at("inputs").at("captions").get<std::vector<std::string>>();
  const auto& tok = engine::ClipTokenizer::bundled();
  for (size_t i = 0; i < captions.size(); ++i) {
    const auto tokens = tok.encode(captions[i]);
    EXPECT_TRUE(torch::equal(kohya_input_ids(tokens, 75, 49407), ref().tensor(std::string("train.batch.input_ids_te1"))[i]));
    EXPECT_TRUE(torch::equal(kohya_input_ids(tokens, 75, 0), ref().tensor(std::string("train.batch.input_ids_te2"))[i]));
  }
  // 150 tokens: two chunks; the second encoder's chunks end in EOS after tokens and start with EOS when empty.
  std::vector<int> long_caption(80, 320);
  const auto te2 = kohya_input_ids(long_caption, 150, 0);
  ASSERT_EQ(te2.sizes(), (torch::IntArrayRef{2, 77}));
  EXPECT_EQ(te2[0][76].item<int64_t>(), 49407);  // a full chunk: its last id becomes EOS
  EXPECT_EQ(te2[1][6].item<int64_t>(), 49407);   // 5 tokens, then EOS, then 0
  EXPECT_EQ(te2[1][7].item<int64_t>(), 0);
  const auto empty_second = kohya_input_ids(std::vector<int>(10, 320), 150, 0);
  EXPECT_EQ(empty_second[1][1].item<int64_t>(), 49407);  // <BOS> <PAD> ... → <BOS> <EOS> <PAD> ...
  EXPECT_EQ(empty_second[1][2].item<int64_t>(), 0);
  const auto te1 = kohya_input_ids(long_caption, 150, 49407);
  EXPECT_EQ(te1[1][6].item<int64_t>(), 49407);
  EXPECT_EQ(te1[1][76].item<int64_t>(), 49407);
}

TEST(SdxlTraining, LongCaptionsJoinChunksAndPoolTheFirst) {
  NetworkOptions o;
  auto net = LoraNetwork::create(tiny_sdxl(), o, 0);
  TrainerOptions options;
  LoraTrainer trainer(tiny_sdxl(), *net, options);
  const auto& tok = engine::ClipTokenizer::bundled();
  const auto tokens = tok.encode("a photo of a red apple on a table");
  TrainBatch one, two;
  one.input_ids = kohya_input_ids(tokens, 75, 49407).unsqueeze(0);
  one.input_ids_2 = kohya_input_ids(tokens, 75, 0).unsqueeze(0);
  one.size_conditioning = torch::tensor({{64.f, 64.f, 0.f, 0.f, 64.f, 64.f}});
  two = one;
  two.input_ids = kohya_input_ids(tokens, 150, 49407).unsqueeze(0);
  two.input_ids_2 = kohya_input_ids(tokens, 150, 0).unsqueeze(0);
  torch::NoGradGuard no_grad;
  const auto a = trainer.encode_batch_text(one), b = trainer.encode_batch_text(two);
  EXPECT_EQ(b.context.sizes(), (torch::IntArrayRef{1, 152, 128}));  // BOS + 2·75 + last
  EXPECT_LE(max_abs_diff(b.context.narrow(1, 0, 76), a.context.narrow(1, 0, 76)), 1e-5);
  EXPECT_LE(max_abs_diff(b.vector, a.vector), 1e-5) << "the pooled vector is the first chunk's";
}

}  // namespace
}  // namespace kiln::test
