#include "engine/lora/lora_file.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>

#include "engine/error.h"
#include "engine/io/safetensors.h"
#include "engine/lora/network.h"
#include "engine/lora/sha256.h"
#include "support/reference.h"
#include "unit/engine/lora/lora_test_support.h"

namespace kiln::test {
namespace {

using namespace engine::lora;
using engine::Error;
using engine::ErrorKind;

const nlohmann::json& expected_file(const std::string& file) {
  return Reference::get().case_by_id("lora/files").at("expected").at(file);
}

TEST(LoraFileTest, ModuleListsMatchKohyaExactly) {
  for (const std::string name : {"lora_rank4.safetensors", "lora_locon.safetensors"}) {
    SCOPED_TRACE(name);
    const auto& e = expected_file(name);
    const auto f = LoraFile::read(lora_fixture(name));
    std::vector<std::string> modules;
    for (const auto& m : f.modules) modules.push_back(m.name);
    EXPECT_EQ(modules, e.at("modules").get<std::vector<std::string>>());
    EXPECT_EQ(int64_t(f.modules.size()), e.at("n_modules").get<int64_t>());
    EXPECT_TRUE(f.stray_keys.empty());
    const double conv_alpha = e.value("conv_alpha", 0.0);
    for (const auto& m : f.modules) {
      ASSERT_TRUE(m.has_alpha) << m.name;
      if (m.is_conv3x3()) {
        EXPECT_EQ(m.rank(), e.at("conv_rank").get<int64_t>());
        EXPECT_EQ(m.alpha, conv_alpha);
        EXPECT_EQ(m.down.size(2), 3);
      } else {
        EXPECT_EQ(m.rank(), e.at("rank").get<int64_t>());
        EXPECT_EQ(m.alpha, e.at("alpha").get<double>());
      }
    }
    EXPECT_EQ(f.metadata, e.at("metadata").get<decltype(f.metadata)>());
    EXPECT_EQ(f.family, engine::ModelFamily::SD1);  // from ss_base_model_version: the tiny widths say nothing
  }
}

TEST(LoraFileTest, InfoForTheLibrary) {
  const auto rank4 = read_lora_info(lora_fixture("lora_rank4.safetensors"));
  EXPECT_EQ(rank4.file_size, std::filesystem::file_size(lora_fixture("lora_rank4.safetensors")));
  EXPECT_EQ(rank4.rank, 4);
  EXPECT_EQ(rank4.alpha, 2.0);
  EXPECT_FALSE(rank4.has_conv);
  EXPECT_EQ(rank4.conv_rank, 0);
  EXPECT_EQ(rank4.text_encoder_modules, 24);  // 4 layers × (q, k, v, out, fc1, fc2)
  EXPECT_EQ(rank4.unet_modules, 216 - 24);
  EXPECT_EQ(rank4.base_model_version, "sd_v1");
  EXPECT_EQ(rank4.family, engine::ModelFamily::SD1);
  EXPECT_EQ(rank4.title, "lora_rank4");
  EXPECT_EQ(rank4.model_hash, "c73a3aea8505c35a60cc74c01828ff79a28270a9a28922e35337a39018dd3599");
  EXPECT_EQ(rank4.legacy_hash, "e3b0c442");
  EXPECT_EQ(rank4.metadata.at("ss_network_dim"), "4");

  const auto locon = read_lora_info(lora_fixture("lora_locon.safetensors"));
  EXPECT_TRUE(locon.has_conv);
  EXPECT_EQ(locon.rank, 4);
  EXPECT_EQ(locon.alpha, 2.0);
  EXPECT_EQ(locon.conv_rank, 4);
  EXPECT_EQ(locon.conv_alpha, 1.0);
  // 3×3: 2 per ResnetBlock2D (22 of them) + 3 downsamplers + 3 upsamplers.
  EXPECT_EQ(locon.conv_modules, 22 * 2 + 6);
  EXPECT_EQ(locon.unet_modules, 302 - 24);
  const auto j = to_json(locon);
  EXPECT_EQ(j.at("conv_rank"), 4);
  EXPECT_EQ(j.at("family"), "SD1.x");
}

TEST(LoraFileTest, TriggerWordsFromTagFrequency) {
  TempDir dir;
  const auto path = dir.path() / "tags.safetensors";
  const nlohmann::json freq = {{"10_sks mug", {{"sks mug", 20}, {"white background", 20}, {"table", 3}}},
                               {"5_style", {{"table", 4}, {"white background", 5}}}};
  engine::save_safetensors(path,
                           {{"lora_unet_x.lora_down.weight", torch::zeros({2, 4})},
                            {"lora_unet_x.lora_up.weight", torch::zeros({4, 2})}},
                           {{"ss_tag_frequency", freq.dump()}});
  const auto info = read_lora_info(path);
  ASSERT_EQ(info.tags.size(), 3u);
  EXPECT_EQ(info.tags[0], std::make_pair(std::string("white background"), int64_t(25)));
  EXPECT_EQ(info.tags[1], std::make_pair(std::string("sks mug"), int64_t(20)));
  EXPECT_EQ(info.tags[2], std::make_pair(std::string("table"), int64_t(7)));
  EXPECT_EQ(info.trigger_words, (std::vector<std::string>{"sks mug", "style", "white background"}));
  EXPECT_EQ(info.alpha, 2.0) << "no alpha tensor: alpha = rank";
}

TEST(LoraFileTest, KohyaHashesReproduceTheFixtureFiles) {
  // sshs_* are computed over the tensors serialised with only the ss_* metadata.
  for (const std::string name : {"lora_rank4.safetensors", "lora_locon.safetensors"}) {
    SCOPED_TRACE(name);
    const auto file = engine::SafeTensorsFile::open(lora_fixture(name));
    std::vector<std::pair<std::string, torch::Tensor>> tensors;
    for (const auto& t : file->tensors()) tensors.emplace_back(t.name, file->tensor(t.name));
    const auto h = kohya_hashes(tensors, file->metadata());
    EXPECT_EQ(h.model_hash, file->metadata().at("sshs_model_hash"));
    EXPECT_EQ(h.legacy_hash, file->metadata().at("sshs_legacy_hash"));
    EXPECT_EQ(h.model_hash, sha256_hex(file->data(), file->data_size()));
  }
}

TEST(LoraFileTest, Sha256KnownVectors) {
  EXPECT_EQ(sha256_hex("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc", 3), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  EXPECT_EQ(sha256_hex(two_blocks.data(), two_blocks.size()),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  Sha256 streamed;  // the same bytes fed unevenly
  std::string million(1000000, 'a');
  for (size_t i = 0; i < million.size(); i += 777) streamed.update(million.data() + i, std::min<size_t>(777, million.size() - i));
  EXPECT_EQ(streamed.hex_digest(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(LoraFileTest, PythonFloatFormatting) {
  EXPECT_EQ(python_float(2.0), "2.0");
  EXPECT_EQ(python_float(0.5), "0.5");
  EXPECT_EQ(python_float(1e-4), "0.0001");
  EXPECT_EQ(python_float(1e-5), "1e-05");
  EXPECT_EQ(python_float(128), "128.0");
  EXPECT_EQ(python_float(0.1), "0.1");
}

void write(const std::filesystem::path& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  engine::save_safetensors(path, tensors);
}

ErrorKind read_error(const std::filesystem::path& path, std::string* message = nullptr) {
  try {
    LoraFile::read(path);
  } catch (const Error& e) {
    if (message) *message = e.what();
    return e.kind();
  }
  ADD_FAILURE() << "no error for " << path;
  return ErrorKind::Internal;
}

TEST(LoraFileTest, RefusesWhatItCannotApplyAndSaysWhy) {
  TempDir dir;
  std::string msg;
  write(dir.path() / "loha.safetensors", {{"lora_unet_a.hada_w1_a", torch::zeros({2, 2})},
                                           {"lora_unet_a.hada_w1_b", torch::zeros({2, 2})}});
  EXPECT_EQ(read_error(dir.path() / "loha.safetensors", &msg), ErrorKind::Unsupported);
  EXPECT_NE(msg.find("LoHa"), std::string::npos) << msg;

  write(dir.path() / "peft.safetensors", {{"unet.down_blocks.0.attentions.0.proj_in.lora_A.weight", torch::zeros({2, 2})}});
  EXPECT_EQ(read_error(dir.path() / "peft.safetensors", &msg), ErrorKind::Unsupported);
  EXPECT_NE(msg.find("diffusers/PEFT"), std::string::npos) << msg;

  write(dir.path() / "half.safetensors", {{"lora_unet_a.lora_down.weight", torch::zeros({2, 4})}});
  EXPECT_EQ(read_error(dir.path() / "half.safetensors", &msg), ErrorKind::BadFormat);
  EXPECT_NE(msg.find("lora_up"), std::string::npos) << msg;

  write(dir.path() / "ranks.safetensors", {{"lora_unet_a.lora_down.weight", torch::zeros({2, 4})},
                                            {"lora_unet_a.lora_up.weight", torch::zeros({4, 3})}});
  EXPECT_EQ(read_error(dir.path() / "ranks.safetensors"), ErrorKind::BadFormat);

  write(dir.path() / "model.safetensors", {{"model.diffusion_model.out.2.weight", torch::zeros({4})}});
  EXPECT_EQ(read_error(dir.path() / "model.safetensors", &msg), ErrorKind::BadFormat);
  EXPECT_NE(msg.find("checkpoint"), std::string::npos) << msg;

  EXPECT_EQ(read_error(dir.path() / "old.pt"), ErrorKind::Unsupported);
  EXPECT_EQ(read_error(dir.path() / "missing.safetensors"), ErrorKind::NotFound);
}

TEST(LoraFileTest, FamilyFromNamesAndWidths) {
  using engine::ModelFamily;
  EXPECT_EQ(lora_family({{"lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight", {4, 768}}}), ModelFamily::SDXL);
  EXPECT_EQ(lora_family({{"lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_down.weight", {4, 2048}}}),
            ModelFamily::SDXL);
  EXPECT_EQ(lora_family({{"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight", {4, 1024}}}),
            ModelFamily::SD2);
  EXPECT_EQ(lora_family({{"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight", {4, 768}}}),
            ModelFamily::SD1);
  EXPECT_EQ(lora_family({{"lora_unet_x.lora_down.weight", {4, 128}}}), ModelFamily::Unknown);
}

}  // namespace
}  // namespace kiln::test
