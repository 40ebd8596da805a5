#include "engine/lora/network.h"

#include <torch/torch.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "engine/error.h"
#include "engine/io/safetensors.h"
#include "engine/lora/sha256.h"

namespace kiln::engine::lora {

namespace {

std::string shape_text(torch::IntArrayRef s) { return c10::str(s); }

// The file's down/up reshaped for `layer`, or undefined tensors when they cannot fit it.
std::pair<torch::Tensor, torch::Tensor> fit(const LoraModuleWeights& m, const LoraLayer& layer) {
  auto down = m.down, up = m.up;
  const int64_t r = m.rank();
  if (up.dim() == 4) up = up.flatten(1);  // [out, r, 1, 1] → [out, r]
  if (up.size(0) != layer.out || down.size(1) != layer.in) return {};
  if (layer.is_conv()) {
    if (down.dim() == 2) down = down.view({r, layer.in, 1, 1});
    if (down.size(2) != layer.kernel || down.size(3) != layer.kernel) return {};
    up = up.view({layer.out, r, 1, 1});
  } else {
    if (down.dim() == 4) {
      if (down.size(2) != 1 || down.size(3) != 1) return {};
      down = down.flatten(1);
    }
  }
  return {down, up};
}

std::string layer_shape(const LoraLayer& l) {
  return l.is_conv() ? "[" + std::to_string(l.out) + ", " + std::to_string(l.in) + ", " + std::to_string(l.kernel) +
                           ", " + std::to_string(l.kernel) + "]"
                     : "[" + std::to_string(l.out) + ", " + std::to_string(l.in) + "]";
}

const char* safetensors_dtype(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat16:
      return "F16";
    case torch::kBFloat16:
      return "BF16";
    case torch::kFloat32:
      return "F32";
    case torch::kFloat64:
      return "F64";
    default:
      throw Error(ErrorKind::InvalidArgument, "LoRA files hold float16, bfloat16, float32 or float64 tensors, not " +
                                                  std::string(c10::toString(t)));
  }
}

// safetensors (Rust) writes tensors by dtype, larger alignment first, then by name.
int dtype_rank(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat16:
      return 7;
    case torch::kBFloat16:
      return 8;
    case torch::kFloat32:
      return 11;
    default:
      return 12;  // F64
  }
}

void safetensors_order(std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  std::stable_sort(tensors.begin(), tensors.end(), [](const auto& a, const auto& b) {
    const int ra = dtype_rank(a.second.scalar_type()), rb = dtype_rank(b.second.scalar_type());
    return ra != rb ? ra > rb : a.first < b.first;
  });
}

std::string format_alpha_arg(double v) {
  return v == std::floor(v) && std::abs(v) < 1e15 ? std::to_string(static_cast<int64_t>(v)) : python_float(v);
}

}  // namespace

KohyaHashes kohya_hashes(const std::vector<std::pair<std::string, torch::Tensor>>& tensors_in,
                         const std::map<std::string, std::string>& metadata) {
  auto tensors = tensors_in;
  safetensors_order(tensors);
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  std::map<std::string, std::string> ss;
  for (const auto& [k, v] : metadata)
    if (k.rfind("ss_", 0) == 0) ss[k] = v;
  header["__metadata__"] = ss;
  std::string data;
  for (auto& [name, t] : tensors) {
    const auto cpu = t.detach().to(torch::kCPU).contiguous();
    const uint64_t begin = data.size();
    data.append(static_cast<const char*>(cpu.data_ptr()), cpu.nbytes());
    header[name] = {{"dtype", safetensors_dtype(cpu.scalar_type())},
                    {"shape", cpu.sizes().vec()},
                    {"data_offsets", {begin, static_cast<uint64_t>(data.size())}}};
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');
  const uint64_t n = json.size();
  std::string bytes(reinterpret_cast<const char*>(&n), 8);  // little-endian hosts only, as safetensors
  bytes += json;
  bytes += data;
  KohyaHashes h;
  h.model_hash = sha256_hex(data.data(), data.size());
  const size_t from = std::min<size_t>(bytes.size(), 0x100000), to = std::min<size_t>(bytes.size(), 0x110000);
  h.legacy_hash = sha256_hex(bytes.data() + from, to - from).substr(0, 8);
  return h;
}

std::unique_ptr<LoraNetwork> LoraNetwork::create(const models::StableDiffusion& model, const NetworkOptions& o,
                                                 uint64_t seed) {
  if (o.dim <= 0) throw Error(ErrorKind::InvalidArgument, "network_dim (the LoRA rank) must be at least 1");
  if (o.conv_dim < 0) throw Error(ErrorKind::InvalidArgument, "conv_dim must be 0 (off) or a positive rank");
  if (!o.text_encoder && !o.unet)
    throw Error(ErrorKind::InvalidArgument, "a LoRA network needs the text encoder, the UNet or both");
  std::unique_ptr<LoraNetwork> net(new LoraNetwork());
  net->options_ = o;
  auto gen = at::detail::createCPUGenerator(seed);
  for (auto& layer : lora_layers(model)) {
    if ((layer.component == Component::TextEncoder && !o.text_encoder) || (layer.component == Component::UNet && !o.unet))
      continue;
    const TargetRank target = kohya_default_target(layer, o.conv_dim > 0);
    if (target == TargetRank::None) continue;
    const int64_t r = target == TargetRank::Conv ? o.conv_dim : o.dim;
    // kohya: alpha 0 or unset means alpha = rank.
    double alpha = target == TargetRank::Conv ? o.conv_alpha : o.alpha;
    if (alpha == 0) alpha = static_cast<double>(r);
    torch::Tensor down, up;
    {
      torch::NoGradGuard no_grad;
      const int64_t k = layer.is_conv() ? layer.kernel : 1;
      down = layer.is_conv() ? torch::empty({r, layer.in, k, k}) : torch::empty({r, layer.in});
      const double bound = 1.0 / std::sqrt(static_cast<double>(layer.in * k * k));  // kaiming_uniform, a = √5
      down.uniform_(-bound, bound, gen);
      up = layer.is_conv() ? torch::zeros({layer.out, r, 1, 1}) : torch::zeros({layer.out, r});
      down = down.to(layer.weight().device());
      up = up.to(layer.weight().device());
    }
    down.set_requires_grad(true);
    up.set_requires_grad(true);
    ConvGeometry g{layer.is_conv(), layer.stride, layer.padding};
    auto module = std::make_shared<LoraModule>(layer.kohya_name, down, up, alpha, g);
    net->entries_.push_back({std::move(module), std::move(layer)});
  }
  return net;
}

std::unique_ptr<LoraNetwork> LoraNetwork::from_file(const models::StableDiffusion& model, const LoraFile& file,
                                                    ApplyReport* report) {
  const std::string name = file.path.empty() ? std::string("the LoRA") : "\"" + file.path.filename().string() + "\"";
  const ModelFamily want = model.family;
  if (file.family != ModelFamily::Unknown && file.family != want)
    throw Error(ErrorKind::Unsupported, name + " was made for " + to_string(file.family) +
                                            " models, and the loaded model is " + to_string(want) +
                                            ". A LoRA only works with the model family it was trained on: use an " +
                                            to_string(file.family) + " base model with it, or a LoRA made for " +
                                            to_string(want) + ".");
  std::unordered_map<std::string, size_t> by_name;
  auto layers = lora_layers(model);
  for (size_t i = 0; i < layers.size(); ++i) {
    by_name.emplace(layers[i].kohya_name, i);
    by_name.emplace(layers[i].ldm_kohya_name, i);
  }
  ApplyReport local;
  ApplyReport& r = report ? *report : local;
  r = {};
  std::unique_ptr<LoraNetwork> net(new LoraNetwork());
  torch::NoGradGuard no_grad;
  for (const auto& m : file.modules) {
    auto it = by_name.find(m.name);
    if (it == by_name.end()) {
      r.unmatched.push_back(m.name);
      continue;
    }
    const LoraLayer& layer = layers[it->second];
    auto [down, up] = fit(m, layer);
    if (!down.defined())
      throw Error(ErrorKind::InvalidArgument,
                  name + " does not fit this model: its module " + m.name + " has lora_down " + shape_text(m.down.sizes()) +
                      " and lora_up " + shape_text(m.up.sizes()) + ", but the layer " + layer.diffusers_path + " is " +
                      layer_shape(layer) + ". It was made for a model of another size or family.");
    const auto options = layer.weight().options().requires_grad(false);
    ConvGeometry g{layer.is_conv(), layer.stride, layer.padding};
    auto module = std::make_shared<LoraModule>(m.name, down.to(options).contiguous(), up.to(options).contiguous(),
                                               m.alpha, g);
    (layer.component == Component::TextEncoder ? r.text_encoder_modules : r.unet_modules) += 1;
    net->entries_.push_back({std::move(module), layer});
  }
  r.unmatched.insert(r.unmatched.end(), file.stray_keys.begin(), file.stray_keys.end());
  if (net->entries_.empty())
    throw Error(ErrorKind::InvalidArgument, name + " has no module that matches a layer of this model (" +
                                                std::to_string(r.unmatched.size()) + " unmatched, e.g. " +
                                                (r.unmatched.empty() ? std::string("none") : r.unmatched.front()) +
                                                "); it is not a LoRA for this " + to_string(want) + " model.");
  // Network options as a record of what was read (the most common ranks are in read_lora_info()).
  net->options_.dim = net->entries_.front().module->rank();
  net->options_.alpha = net->entries_.front().module->alpha();
  return net;
}

LoraNetwork::~LoraNetwork() { detach(); }

void LoraNetwork::attach() {
  if (attached_) return;
  for (auto& e : entries_) e.layer.adaptable().add_adapter(e.module);
  attached_ = true;
}

void LoraNetwork::detach() {
  if (!attached_) return;
  for (auto& e : entries_) e.layer.adaptable().remove_adapter(e.module.get());
  attached_ = false;
}

void LoraNetwork::set_multipliers(double text_encoder, double unet) {
  for (auto& e : entries_) e.module->set_multiplier(e.layer.component == Component::TextEncoder ? text_encoder : unet);
}

std::vector<torch::Tensor> LoraNetwork::parameters(Component component) const {
  std::vector<torch::Tensor> out;
  for (const auto& e : entries_) {
    if (e.layer.component != component) continue;
    out.push_back(e.module->down());
    out.push_back(e.module->up());
  }
  return out;
}

std::vector<torch::Tensor> LoraNetwork::parameters() const {
  auto out = parameters(Component::TextEncoder);
  const auto unet = parameters(Component::UNet);
  out.insert(out.end(), unet.begin(), unet.end());
  return out;
}

std::vector<std::pair<std::string, torch::Tensor>> LoraNetwork::state_dict() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& e : entries_) {
    const auto& m = *e.module;
    out.emplace_back(m.name() + ".alpha", torch::tensor(static_cast<float>(m.alpha())));
    out.emplace_back(m.name() + ".lora_down.weight", m.down().detach());
    out.emplace_back(m.name() + ".lora_up.weight", m.up().detach());
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

void LoraNetwork::load_state_dict(const std::map<std::string, torch::Tensor>& tensors) {
  torch::NoGradGuard no_grad;
  size_t used = 0;
  for (auto& e : entries_) {
    for (const auto& [suffix, target] : {std::make_pair(".lora_down.weight", e.module->down()),
                                         std::make_pair(".lora_up.weight", e.module->up())}) {
      const std::string key = e.module->name() + suffix;
      auto it = tensors.find(key);
      if (it == tensors.end()) throw Error(ErrorKind::InvalidArgument, "the LoRA weights lack " + key);
      if (it->second.sizes() != target.sizes())
        throw Error(ErrorKind::InvalidArgument, key + " has shape " + shape_text(it->second.sizes()) +
                                                    ", the network expects " + shape_text(target.sizes()));
      torch::Tensor(target).copy_(it->second);
      ++used;
    }
    if (tensors.count(e.module->name() + ".alpha")) ++used;
  }
  if (used != tensors.size()) {
    std::string extra;
    for (const auto& [k, v] : tensors) {
      const size_t dot = k.find('.');
      const std::string module = k.substr(0, dot);
      bool known = false;
      for (const auto& e : entries_) known = known || e.module->name() == module;
      if (!known) extra = k;
    }
    throw Error(ErrorKind::InvalidArgument, "the LoRA weights hold " + std::to_string(tensors.size() - used) +
                                                " tensor(s) this network does not have, e.g. " + extra);
  }
}

void LoraNetwork::save(const std::filesystem::path& path, const SaveOptions& options) const {
  auto tensors = state_dict();
  for (auto& [name, t] : tensors) t = t.detach().to(torch::kCPU, options.dtype).contiguous();
  safetensors_order(tensors);
  auto metadata = options.metadata;
  metadata["ss_network_module"] = "networks.lora";
  metadata["ss_network_dim"] = std::to_string(options_.dim);
  metadata["ss_network_alpha"] = python_float(options_.alpha);
  if (options_.conv_dim > 0) {
    nlohmann::ordered_json args = {{"conv_dim", std::to_string(options_.conv_dim)},
                                   {"conv_alpha", format_alpha_arg(options_.conv_alpha)}};
    // Python's json.dumps separators, as kohya writes it.
    std::string s = "{";
    for (auto it = args.begin(); it != args.end(); ++it)
      s += (it == args.begin() ? "" : ", ") + nlohmann::json(it.key()).dump() + ": " + it.value().dump();
    metadata["ss_network_args"] = s + "}";
  }
  const auto hashes = kohya_hashes(tensors, metadata);
  metadata["sshs_model_hash"] = hashes.model_hash;
  metadata["sshs_legacy_hash"] = hashes.legacy_hash;
  save_safetensors(path, tensors, metadata);
}

}  // namespace kiln::engine::lora
