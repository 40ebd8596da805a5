#include "engine/lora/lora_file.h"

#include <torch/torch.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "engine/io/safetensors.h"

namespace kiln::engine::lora {

namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

// Sub-keys of LoRA variants Kiln does not run (a prefix of the part after the module name), with
// what to call the file in a message.
struct Variant {
  const char* part_prefix;
  const char* what;
};
constexpr Variant kUnsupported[] = {
    {"hada_", "a LyCORIS LoHa"},
    {"lokr_", "a LyCORIS LoKr"},
    {"oft_", "a LyCORIS OFT"},
    {"dora_scale", "a DoRA"},
    {"lora_mid", "a LyCORIS LoCon with Tucker decomposition"},
    {"w_norm", "a LyCORIS norm-training"},
    {"b_norm", "a LyCORIS norm-training"},
    {"diff", "a LyCORIS full-difference"},
    {"on_input", "a LyCORIS (IA)3"},
};

[[noreturn]] void refuse_variant(const std::string& file, const std::string& what) {
  throw Error(ErrorKind::Unsupported, file + " is " + what +
                                          " file. Kiln applies kohya LoRA and LoCon files (lora_down / lora_up "
                                          "weights); convert it to a plain LoRA first.");
}

ModelFamily family_from_metadata(const std::map<std::string, std::string>& md) {
  auto get = [&](const char* k) {
    auto it = md.find(k);
    return it == md.end() ? std::string() : it->second;
  };
  const std::string base = get("ss_base_model_version"), arch = get("modelspec.architecture");
  if (starts_with(base, "sdxl") || arch.find("-xl-") != std::string::npos) return ModelFamily::SDXL;
  if (starts_with(base, "sd_v2") || starts_with(base, "sd_2") || get("ss_v2") == "True" ||
      starts_with(arch, "stable-diffusion-v2"))
    return ModelFamily::SD2;
  if (starts_with(base, "sd_v1") || starts_with(arch, "stable-diffusion-v1")) return ModelFamily::SD1;
  return ModelFamily::Unknown;
}

std::string display(const fs::path& p) { return "\"" + p.filename().string() + "\""; }

}  // namespace

ModelFamily lora_family(const std::vector<std::pair<std::string, std::vector<int64_t>>>& shapes) {
  int64_t context = 0, text_width = 0;
  for (const auto& [name, shape] : shapes) {
    if (starts_with(name, "lora_te1_") || starts_with(name, "lora_te2_")) return ModelFamily::SDXL;
    if (shape.size() < 2 || !ends_with(name, ".lora_down.weight")) continue;
    if (starts_with(name, "lora_unet_") && name.find("attn2_to_k.") != std::string::npos) context = shape[1];
    if (starts_with(name, "lora_te_") && name.find("self_attn_q_proj.") != std::string::npos) text_width = shape[1];
  }
  const int64_t width = context ? context : text_width;
  if (width == 2048 || width == 1280) return ModelFamily::SDXL;
  if (width == 1024) return ModelFamily::SD2;
  if (width == 768) return ModelFamily::SD1;
  return ModelFamily::Unknown;
}

LoraFile LoraFile::from_tensors(const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                                std::map<std::string, std::string> metadata, const std::string& name) {
  LoraFile f;
  f.metadata = std::move(metadata);
  std::map<std::string, LoraModuleWeights> modules;
  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes;
  for (const auto& [key, tensor] : tensors) {
    shapes.emplace_back(key, tensor.sizes().vec());
    const size_t dot = key.find('.');
    const std::string module = key.substr(0, dot), part = dot == std::string::npos ? "" : key.substr(dot + 1);
    if (part == "lora_down.weight" || part == "lora_up.weight" || part == "alpha") {
      auto& m = modules[module];
      m.name = module;
      if (part == "alpha") {
        if (tensor.numel() != 1)
          throw Error(ErrorKind::BadFormat, name + ": " + key + " should hold one number, it has " +
                                                std::to_string(tensor.numel()));
        m.alpha = tensor.to(torch::kFloat64).item<double>();
        m.has_alpha = true;
      } else {
        (part == "lora_down.weight" ? m.down : m.up) = tensor;
      }
      continue;
    }
    if (starts_with(key, "model.diffusion_model.") || starts_with(key, "cond_stage_model."))
      throw Error(ErrorKind::BadFormat, name + " is a full Stable Diffusion checkpoint, not a LoRA; add it as a model.");
    for (const auto& v : kUnsupported)
      if (starts_with(module, "lora_") && starts_with(part, v.part_prefix)) refuse_variant(name, v.what);
    if (part.find("lora_A") != std::string::npos || part.find("lora.down") != std::string::npos ||
        part.find("lora_linear_layer") != std::string::npos)
      throw Error(ErrorKind::Unsupported, name + " is a diffusers/PEFT-format LoRA (keys like \"" + key +
                                              "\"). Kiln reads kohya-format files, which A1111 and ComfyUI "
                                              "also use; convert it with kohya's or diffusers' conversion script.");
    f.stray_keys.push_back(key);
  }
  for (auto& [module, m] : modules) {
    if (!m.down.defined() || !m.up.defined())
      throw Error(ErrorKind::BadFormat, name + ": the LoRA module " + module + " has no " +
                                            (m.down.defined() ? "lora_up" : "lora_down") + " weight.");
    const bool shapes_ok = (m.down.dim() == 2 || m.down.dim() == 4) && (m.up.dim() == 2 || m.up.dim() == 4) &&
                           m.up.size(1) == m.down.size(0) && (m.up.dim() == 2 || (m.up.size(2) == 1 && m.up.size(3) == 1));
    if (!shapes_ok)
      throw Error(ErrorKind::BadFormat, name + ": the LoRA module " + module + " has lora_down " +
                                            c10::str(m.down.sizes()) + " and lora_up " + c10::str(m.up.sizes()) +
                                            ", which do not make a low-rank pair.");
    // kohya: a missing (or zero) alpha means alpha = rank, a scale of 1.
    if (!m.has_alpha || m.alpha == 0) m.alpha = static_cast<double>(m.rank());
    f.modules.push_back(std::move(m));
  }
  if (f.modules.empty())
    throw Error(ErrorKind::BadFormat, name + " holds no LoRA weights (no \"*.lora_down.weight\" tensors).");
  f.family = lora_family(shapes);
  if (f.family == ModelFamily::Unknown) f.family = family_from_metadata(f.metadata);
  return f;
}

LoraFile LoraFile::read(const fs::path& path) {
  const std::string ext = path.extension().string();
  if (ext == ".pt" || ext == ".ckpt" || ext == ".bin" || ext == ".pth")
    throw Error(ErrorKind::Unsupported, display(path) + " is a pickled PyTorch file, which can run code when "
                                                        "opened; Kiln reads LoRAs only as .safetensors.");
  const auto file = SafeTensorsFile::open(path);
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& info : file->tensors()) tensors.emplace_back(info.name, file->tensor(info.name));
  auto f = from_tensors(tensors, file->metadata(), display(path));
  f.path = path;
  return f;
}

namespace {

template <typename T>
T most_common(const std::vector<T>& values) {
  std::map<T, int> counts;
  for (const auto& v : values) ++counts[v];
  T best{};
  int n = 0;
  for (const auto& [v, c] : counts)
    if (c > n) best = v, n = c;
  return best;
}

void read_tags(LoraInfo& info) {
  auto it = info.metadata.find("ss_tag_frequency");
  std::vector<std::string> folder_triggers;
  std::map<std::string, int64_t> tags;
  if (it != info.metadata.end()) {
    const auto j = nlohmann::json::parse(it->second, nullptr, /*allow_exceptions=*/false);
    if (j.is_object()) {
      for (const auto& [folder, freq] : j.items()) {
        // kohya's dataset folders are "<repeats>_<trigger words>".
        const size_t us = folder.find('_');
        if (us != std::string::npos && us > 0 &&
            std::all_of(folder.begin(), folder.begin() + us, [](char c) { return c >= '0' && c <= '9'; })) {
          const std::string trigger = folder.substr(us + 1);
          if (!trigger.empty() && std::find(folder_triggers.begin(), folder_triggers.end(), trigger) == folder_triggers.end())
            folder_triggers.push_back(trigger);
        }
        if (!freq.is_object()) continue;
        for (const auto& [tag, count] : freq.items())
          if (count.is_number_integer()) tags[tag] += count.get<int64_t>();
      }
    }
  }
  info.tags.assign(tags.begin(), tags.end());
  std::stable_sort(info.tags.begin(), info.tags.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  info.trigger_words = folder_triggers;
  // Tags carried by every training image (the highest count) are what the LoRA learned to respond to.
  if (!info.tags.empty()) {
    const int64_t top = info.tags.front().second;
    for (const auto& [tag, count] : info.tags) {
      if (count != top) break;
      if (std::find(info.trigger_words.begin(), info.trigger_words.end(), tag) == info.trigger_words.end())
        info.trigger_words.push_back(tag);
    }
  }
}

}  // namespace

LoraInfo read_lora_info(const fs::path& path) {
  const auto file = SafeTensorsFile::open(path);
  LoraInfo info;
  info.path = path;
  info.file_size = fs::file_size(path);
  info.metadata = file->metadata();
  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes;
  std::vector<int64_t> ranks, conv_ranks;
  std::vector<double> alphas, conv_alphas;
  for (const auto& t : file->tensors()) {
    shapes.emplace_back(t.name, t.shape);
    if (!ends_with(t.name, ".lora_down.weight") || t.shape.empty()) continue;
    const std::string module = t.name.substr(0, t.name.size() - std::string(".lora_down.weight").size());
    const bool conv = t.shape.size() == 4 && (t.shape[2] > 1 || t.shape[3] > 1);
    double alpha = static_cast<double>(t.shape[0]);
    if (file->contains(module + ".alpha")) {
      const double a = file->tensor(module + ".alpha").to(torch::kFloat64).item<double>();
      if (a != 0) alpha = a;
    }
    (conv ? conv_ranks : ranks).push_back(t.shape[0]);
    (conv ? conv_alphas : alphas).push_back(alpha);
    if (starts_with(module, "lora_te")) ++info.text_encoder_modules;
    if (starts_with(module, "lora_unet_")) ++info.unet_modules;
    if (conv) ++info.conv_modules;
  }
  if (ranks.empty() && conv_ranks.empty())
    throw Error(ErrorKind::BadFormat, display(path) + " holds no LoRA weights (no \"*.lora_down.weight\" tensors).");
  info.has_conv = !conv_ranks.empty();
  if (!ranks.empty()) info.rank = most_common(ranks), info.alpha = most_common(alphas);
  if (info.has_conv) info.conv_rank = most_common(conv_ranks), info.conv_alpha = most_common(conv_alphas);
  info.family = lora_family(shapes);
  if (info.family == ModelFamily::Unknown) info.family = family_from_metadata(info.metadata);
  auto md = [&](const char* k) {
    auto it = info.metadata.find(k);
    return it == info.metadata.end() ? std::string() : it->second;
  };
  info.base_model_version = md("ss_base_model_version");
  if (info.base_model_version.empty()) {
    if (info.family == ModelFamily::SD1) info.base_model_version = "sd_v1";
    if (info.family == ModelFamily::SD2) info.base_model_version = "sd_v2";
    if (info.family == ModelFamily::SDXL) info.base_model_version = "sdxl_base_v1-0";
  }
  info.title = md("modelspec.title");
  if (info.title.empty()) info.title = md("ss_output_name");
  if (info.title.empty()) info.title = path.stem().string();
  info.model_hash = md("sshs_model_hash");
  info.legacy_hash = md("sshs_legacy_hash");
  read_tags(info);
  return info;
}

nlohmann::json to_json(const LoraInfo& i) {
  nlohmann::json tags = nlohmann::json::array();
  for (const auto& [tag, count] : i.tags) tags.push_back({tag, count});
  return {{"path", i.path.string()},
          {"file_size", i.file_size},
          {"family", to_string(i.family)},
          {"base_model_version", i.base_model_version},
          {"rank", i.rank},
          {"alpha", i.alpha},
          {"conv_rank", i.conv_rank},
          {"conv_alpha", i.conv_alpha},
          {"has_conv", i.has_conv},
          {"text_encoder_modules", i.text_encoder_modules},
          {"unet_modules", i.unet_modules},
          {"conv_modules", i.conv_modules},
          {"title", i.title},
          {"model_hash", i.model_hash},
          {"legacy_hash", i.legacy_hash},
          {"tags", tags},
          {"trigger_words", i.trigger_words},
          {"metadata", i.metadata}};
}

}  // namespace kiln::engine::lora
