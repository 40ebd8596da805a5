#include "engine/lora/network.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "engine/error.h"
#include "engine/io/safetensors.h"
#include "engine/lora/sha256.h"
#include "support/reference.h"
#include "unit/engine/lora/lora_test_support.h"
#include "unit/engine/models/tiny_model.h"

namespace kiln::test {
namespace {

using namespace engine::lora;

NetworkOptions rank4() {
  NetworkOptions o;
  o.dim = 4;
  o.alpha = 2;
  return o;
}

NetworkOptions locon() {
  auto o = rank4();
  o.conv_dim = 4;
  o.conv_alpha = 1;
  return o;
}

std::map<std::string, torch::Tensor> file_tensors(const std::string& name) {
  const auto file = engine::SafeTensorsFile::open(lora_fixture(name));
  std::map<std::string, torch::Tensor> out;
  for (const auto& t : file->tensors()) out[t.name] = file->tensor(t.name);
  return out;
}

TEST(LoraNetworkTest, DefaultTargetsAreKohyas) {
  for (const auto& [name, options] : {std::make_pair(std::string("lora_rank4.safetensors"), rank4()),
                                      std::make_pair(std::string("lora_locon.safetensors"), locon())}) {
    SCOPED_TRACE(name);
    auto net = LoraNetwork::create(tiny_sd(), options, 1);
    const auto expected = file_tensors(name);
    const auto sd = net->state_dict();
    ASSERT_EQ(sd.size(), expected.size());
    for (const auto& [key, t] : sd) {
      auto it = expected.find(key);
      ASSERT_NE(it, expected.end()) << key;
      EXPECT_EQ(t.sizes(), it->second.sizes()) << key;
      if (key.size() > 6 && key.substr(key.size() - 6) == ".alpha") EXPECT_EQ(t.item<float>(), it->second.item<float>()) << key;
    }
  }
}

TEST(LoraNetworkTest, KohyaInitialisationIsSeededAndStartsAtTheBaseModel) {
  const auto& sd = tiny_sd();
  const auto base = unet_eps_t500(sd);
  auto a = LoraNetwork::create(sd, locon(), 42), b = LoraNetwork::create(sd, locon(), 42), c = LoraNetwork::create(sd, locon(), 43);
  for (size_t i = 0; i < a->entries().size(); ++i) {
    const auto& m = *a->entries()[i].module;
    const auto& layer = a->entries()[i].layer;
    const double fan_in = static_cast<double>(m.down()[0].numel());
    EXPECT_LE(m.down().abs().max().item<double>(), 1.0 / std::sqrt(fan_in)) << m.name();
    EXPECT_GT(m.down().abs().max().item<double>(), 0.5 / std::sqrt(fan_in)) << m.name();
    EXPECT_EQ(m.up().abs().max().item<double>(), 0.0);
    EXPECT_TRUE(m.down().requires_grad() && m.up().requires_grad());
    EXPECT_TRUE(torch::equal(m.down(), b->entries()[i].module->down()));
    EXPECT_FALSE(torch::equal(m.down(), c->entries()[i].module->down()));
    EXPECT_EQ(m.down().dim(), layer.is_conv() ? 4 : 2);
  }
  a->attach();
  EXPECT_TRUE(torch::equal(unet_eps_t500(sd), base)) << "lora_up is zero: the network starts as the identity";
}

TEST(LoraNetworkTest, UnetOnlyAndTextEncoderOnly) {
  auto o = rank4();
  o.text_encoder = false;
  auto unet_only = LoraNetwork::create(tiny_sd(), o, 1);
  EXPECT_TRUE(unet_only->parameters(Component::TextEncoder).empty());
  EXPECT_EQ(unet_only->parameters(Component::UNet).size(), 2u * 192);
  o.text_encoder = true;
  o.unet = false;
  auto te_only = LoraNetwork::create(tiny_sd(), o, 1);
  EXPECT_EQ(te_only->parameters(Component::TextEncoder).size(), 2u * 24);
  EXPECT_TRUE(te_only->parameters(Component::UNet).empty());
  o.text_encoder = false;
  EXPECT_THROW(LoraNetwork::create(tiny_sd(), o, 1), engine::Error);
}

TEST(LoraNetworkTest, SavingTheFixtureWeightsReproducesKohyasFileAndHashes) {
  // The fixture's weights loaded into a network of the same shape, saved with the fixture's
  // ss_* metadata, must give the same bytes of data and the same sshs_* hashes kohya wrote.
  for (const auto& [name, options] : {std::make_pair(std::string("lora_rank4.safetensors"), rank4()),
                                      std::make_pair(std::string("lora_locon.safetensors"), locon())}) {
    SCOPED_TRACE(name);
    auto net = LoraNetwork::create(tiny_sd(), options, 1);
    net->load_state_dict(file_tensors(name));
    const auto original = engine::SafeTensorsFile::open(lora_fixture(name));
    SaveOptions save;
    for (const auto& [k, v] : original->metadata())
      if (k.rfind("sshs_", 0) != 0) save.metadata[k] = v;
    TempDir dir;
    net->save(dir.path() / name, save);
    const auto written = engine::SafeTensorsFile::open(dir.path() / name);
    EXPECT_EQ(written->metadata(), original->metadata());
    ASSERT_EQ(written->data_size(), original->data_size());
    EXPECT_EQ(std::memcmp(written->data(), original->data(), original->data_size()), 0);
    EXPECT_EQ(sha256_hex(written->data(), written->data_size()), written->metadata().at("sshs_model_hash"));
  }
}

TEST(LoraNetworkTest, SavedFileLoadsBackWithTheSameOutputs) {
  const auto& sd = tiny_sd();
  auto net = LoraNetwork::create(sd, locon(), 5);
  {
    torch::NoGradGuard no_grad;  // "trained" weights: random ups
    for (const auto& e : net->entries()) torch::Tensor(e.module->up()).normal_(0, 0.05);
  }
  net->attach();
  const auto ids = Reference::get().tensor(std::string("lora.lora_rank4_m1.ids"));
  const auto trained_eps = unet_eps_t500(sd), trained_te = text_states(sd, ids);
  net->detach();

  TempDir dir;
  SaveOptions fp32;
  fp32.dtype = torch::kFloat32;
  fp32.metadata["ss_output_name"] = "round-trip";
  net->save(dir.path() / "fp32.safetensors", fp32);
  net->save(dir.path() / "fp16.safetensors", SaveOptions{});

  const auto file = LoraFile::read(dir.path() / "fp32.safetensors");
  EXPECT_EQ(file.metadata.at("ss_network_module"), "networks.lora");
  EXPECT_EQ(file.metadata.at("ss_network_dim"), "4");
  EXPECT_EQ(file.metadata.at("ss_network_alpha"), "2.0");
  EXPECT_EQ(file.metadata.at("ss_network_args"), R"({"conv_dim": "4", "conv_alpha": "1"})");
  EXPECT_EQ(file.metadata.at("ss_output_name"), "round-trip");
  {
    auto loaded = LoraNetwork::from_file(sd, file);
    loaded->attach();
    EXPECT_TRUE(torch::equal(unet_eps_t500(sd), trained_eps));
    EXPECT_TRUE(torch::equal(text_states(sd, ids), trained_te));
  }
  {
    auto half = LoraNetwork::from_file(sd, LoraFile::read(dir.path() / "fp16.safetensors"));
    half->attach();
    EXPECT_LE(max_abs_diff(unet_eps_t500(sd), trained_eps), 1e-3) << "fp16 rounding of the LoRA weights only";
    const auto info = engine::SafeTensorsFile::open(dir.path() / "fp16.safetensors");
    for (const auto& t : info->tensors()) EXPECT_EQ(t.dtype, "F16") << t.name;
  }
}

TEST(LoraNetworkTest, LoadStateDictChecksKeysAndShapes) {
  auto net = LoraNetwork::create(tiny_sd(), rank4(), 1);
  auto tensors = file_tensors("lora_rank4.safetensors");
  auto missing = tensors;
  missing.erase("lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight");
  EXPECT_THROW(net->load_state_dict(missing), engine::Error);
  auto extra = tensors;
  extra["lora_unet_foo.lora_down.weight"] = torch::zeros({4, 4});
  EXPECT_THROW(net->load_state_dict(extra), engine::Error);
  EXPECT_THROW(net->load_state_dict(file_tensors("lora_locon.safetensors")), engine::Error);
  EXPECT_NO_THROW(net->load_state_dict(tensors));
}

}  // namespace
}  // namespace kiln::test
