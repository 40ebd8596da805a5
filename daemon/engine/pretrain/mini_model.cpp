#include "engine/pretrain/mini_model.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "engine/error.h"

namespace kiln::engine::pretrain {

namespace {
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

void check(bool ok, const std::string& message) {
  if (!ok) throw Error(ErrorKind::InvalidArgument, "Kiln Mini: " + message);
}

// LDM's zero_module(): layers whose output is added to a residual stream start at zero.
bool zero_initialised(const std::string& name) {
  return contains(name, "out_layers.3.") || contains(name, ".proj_out.") || name.rfind("out.2.", 0) == 0;
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

nlohmann::json ints(const std::vector<int64_t>& v) { return nlohmann::json(v); }
}  // namespace

MiniConfig MiniConfig::defaults() {
  MiniConfig c;
  c.vae.channels = 32;
  c.vae.channel_mult = {1, 2, 2, 4};
  c.vae.num_res_blocks = 1;
  c.unet.model_channels = 64;
  c.unet.channel_mult = {1, 2, 2};
  c.unet.attention = {false, true, true};
  c.unet.num_res_blocks = 2;
  c.unet.transformer_depth = 1;
  c.text.width = 128;
  c.text.layers = 4;
  c.text.heads = 2;
  c.text.mlp_width = 512;
  c.unet.context_dim = c.text.width;
  return c;
}

void MiniConfig::validate() const {
  check(vae.channels % 32 == 0, "VAE width " + std::to_string(vae.channels) + " is not a multiple of 32 (GroupNorm 32)");
  check(vae.channel_mult.size() == 4, "the VAE needs 4 levels (downsampling by 8)");
  check(vae.z_channels == 4 && vae.embed_dim == 4, "the VAE has 4 latent channels");
  check(unet.model_channels % 32 == 0,
        "UNet width " + std::to_string(unet.model_channels) + " is not a multiple of 32 (GroupNorm 32)");
  check(unet.channel_mult.size() == unet.attention.size(), "one attention flag per UNet level");
  check(unet.num_heads == 8 && unet.head_channels < 0, "SD1.x UNets have 8 attention heads");
  check(unet.context_dim == text.width, "the UNet's context width is the text encoder's width");
  check(text.width % 64 == 0 && text.width != 1024,
        "text encoder width " + std::to_string(text.width) + " must be a multiple of 64 other than 1024");
  check(text.heads == text.width / 64, "the text encoder has 64-wide heads");
  check(text.vocab_size == 49408 && text.max_positions == 77, "the text encoder keeps CLIP's vocabulary and 77 positions");
}

nlohmann::json MiniConfig::to_json() const {
  nlohmann::json j;
  j["vae"] = {{"channels", vae.channels},
              {"channel_mult", ints(vae.channel_mult)},
              {"num_res_blocks", vae.num_res_blocks},
              {"scaling_factor", vae.scaling_factor}};
  std::vector<int64_t> attention(unet.attention.begin(), unet.attention.end());
  j["unet"] = {{"model_channels", unet.model_channels},
               {"channel_mult", ints(unet.channel_mult)},
               {"attention", ints(attention)},
               {"num_res_blocks", unet.num_res_blocks},
               {"transformer_depth", unet.transformer_depth},
               {"context_dim", unet.context_dim}};
  j["text"] = {{"width", text.width}, {"layers", text.layers}, {"mlp_width", text.mlp_width}};
  return j;
}

MiniConfig MiniConfig::from_json(const nlohmann::json& j) {
  MiniConfig c = defaults();
  const auto& v = j.at("vae");
  c.vae.channels = v.at("channels").get<int64_t>();
  c.vae.channel_mult = v.at("channel_mult").get<std::vector<int64_t>>();
  c.vae.num_res_blocks = v.at("num_res_blocks").get<int64_t>();
  c.vae.scaling_factor = v.value("scaling_factor", 0.18215);
  const auto& u = j.at("unet");
  c.unet.model_channels = u.at("model_channels").get<int64_t>();
  c.unet.channel_mult = u.at("channel_mult").get<std::vector<int64_t>>();
  c.unet.attention.clear();
  for (auto a : u.at("attention").get<std::vector<int64_t>>()) c.unet.attention.push_back(a != 0);
  c.unet.num_res_blocks = u.at("num_res_blocks").get<int64_t>();
  c.unet.transformer_depth = u.at("transformer_depth").get<int64_t>();
  c.unet.context_dim = u.at("context_dim").get<int64_t>();
  const auto& t = j.at("text");
  c.text.width = t.at("width").get<int64_t>();
  c.text.layers = t.at("layers").get<int64_t>();
  c.text.mlp_width = t.at("mlp_width").get<int64_t>();
  c.text.heads = c.text.width / 64;
  return c;
}

void init_for_training(torch::nn::Module& module, uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (auto& p : module.named_parameters(/*recurse=*/true)) {
    auto t = p.value();
    const std::string& name = p.key();
    const auto f32 = torch::kFloat32;
    if (ends_with(name, "token_embedding.weight")) {
      t.copy_(torch::randn(t.sizes(), gen, f32).mul_(0.02));
    } else if (ends_with(name, "position_embedding.weight")) {
      t.copy_(torch::randn(t.sizes(), gen, f32).mul_(0.01));
    } else if (zero_initialised(name) || ends_with(name, "bias")) {
      t.zero_();
    } else if (t.dim() == 1) {
      t.fill_(1.0);  // GroupNorm / LayerNorm scales
    } else {
      const double fan_in = static_cast<double>(t.numel() / t.size(0));
      t.copy_(torch::randn(t.sizes(), gen, f32).mul_(1.0 / std::sqrt(fan_in)));
    }
  }
}

void set_trainable(torch::nn::Module& module, bool trainable) {
  for (auto& p : module.parameters(/*recurse=*/true)) p.set_requires_grad(trainable);
}

int64_t parameter_count(const torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters(/*recurse=*/true)) n += p.numel();
  return n;
}

namespace {
torch::TensorOptions f32_or(const torch::TensorOptions& options) {
  return options.has_dtype() ? options : options.dtype(torch::kFloat32);
}
template <typename M>
M prepared(M model, uint64_t seed) {
  init_for_training(*model, seed);
  set_trainable(*model, true);
  model->train();
  return model;
}
}  // namespace

models::AutoencoderKL make_vae(const models::VaeConfig& config, uint64_t seed, const torch::TensorOptions& options) {
  return prepared(models::AutoencoderKL(config, f32_or(options)), seed);
}

models::UNetModel make_unet(const models::UNetConfig& config, uint64_t seed, const torch::TensorOptions& options) {
  return prepared(models::UNetModel(config, f32_or(options)), seed);
}

models::ClipTextModel make_text_encoder(const models::ClipTextConfig& config, uint64_t seed,
                                        const torch::TensorOptions& options) {
  return prepared(models::ClipTextModel(config, f32_or(options)), seed);
}

at::Generator step_generator(uint64_t seed, int64_t step, uint64_t stream) {
  const uint64_t mixed = splitmix64(splitmix64(seed ^ splitmix64(stream)) + static_cast<uint64_t>(step));
  return at::make_generator<at::CPUGeneratorImpl>(mixed);
}

}  // namespace kiln::engine::pretrain
