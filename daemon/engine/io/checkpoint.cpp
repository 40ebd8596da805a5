#include "engine/io/checkpoint.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "engine/io/key_map.h"
#include "engine/io/safetensors.h"

namespace kiln::engine {
namespace fs = std::filesystem;

struct Checkpoint::Parts {
  fs::path path;
  ModelInfo info;
  std::unique_ptr<WeightSource> unet, vae;
  std::vector<std::unique_ptr<WeightSource>> text_encoders;  // as the family's row lists them
};

Checkpoint::Checkpoint(Parts parts)
    : path_(std::move(parts.path)),
      info_(std::move(parts.info)),
      unet_(std::move(parts.unet)),
      vae_(std::move(parts.vae)),
      text_encoders_(std::move(parts.text_encoders)) {}
Checkpoint::~Checkpoint() = default;

namespace {

using FilePtr = std::shared_ptr<const SafeTensorsFile>;

std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

bool is_ascii_lower_equal(std::string a, const char* b) {
  std::transform(a.begin(), a.end(), a.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return a == b;
}

[[noreturn]] void refuse_pickle(const fs::path& path) {
  throw Error(ErrorKind::Unsupported,
              q(path) + " is a pickled PyTorch file. Kiln does not open pickles because loading one can run "
                        "arbitrary code. Convert it to .safetensors (or download the .safetensors version) and open that.");
}

bool has_pickle_extension(const fs::path& path) {
  const std::string ext = path.extension().string();
  for (const char* e : {".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle"})
    if (is_ascii_lower_equal(ext, e)) return true;
  return false;
}

// torch.save writes a zip ("PK\3\4") or, in the legacy format, a raw pickle (0x80, protocol 2..5).
bool looks_like_pickle(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char head[4] = {0, 0, 0, 0};
  in.read(reinterpret_cast<char*>(head), 4);
  if (in.gcount() < 2) return false;
  if (head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4) return true;
  return head[0] == 0x80 && head[1] >= 2 && head[1] <= 5 && head[2] != 0;
}

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorKind::NotFound, "Cannot read " + q(path) + "; check that it exists and is readable.");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    throw Error(ErrorKind::BadFormat, q(path) + " is not a valid JSON object; the model folder is damaged, download it again.");
  return j;
}

void require_supported(const ModelInfo& info, const fs::path& path) {
  const std::string supported = " Kiln runs SD1.x (Stable Diffusion 1.x) and SDXL models.";
  if (info.family == ModelFamily::Unknown)
    throw Error(ErrorKind::Unsupported, q(path) + " holds a diffusion model Kiln does not recognise (not SD1.x, SD2.x or SDXL)." +
                                            supported);
  if (info.family == ModelFamily::SD2)
    throw Error(ErrorKind::Unsupported, q(path) + " is an " + std::string(to_string(info.family)) + " model." + supported);
  // 4 channels: an ordinary model; 9: an inpainting model (latent + mask + masked-image latent).
  if (info.unet_in_channels != 4 && info.unet_in_channels != 9)
    throw Error(ErrorKind::Unsupported, q(path) + " is an " + to_string(info.family) + " variant whose UNet takes " +
                                            std::to_string(info.unet_in_channels) +
                                            " input channels (such as instruct-pix2pix); Kiln runs ordinary (4-channel) and inpainting (9-channel) models only.");
}

// The component name of a family's text encoder i, for messages and WeightSource.
std::string text_encoder_name(const FamilyTraits& family, size_t i) {
  return family.text_encoders.size() == 1 ? "text encoder" : "text encoder " + std::to_string(i + 1);
}

// `te_where(i)`: where text encoder i lives in this layout, for the message.
void require_components(const Checkpoint::Parts& parts, const fs::path& path, const char* unet_where,
                        const char* vae_where, const std::function<std::string(size_t)>& te_where) {
  std::string missing;
  auto check = [&](const WeightSource* s, const std::string& what, const std::string& where) {
    if (!s || s->size() == 0) missing += std::string(missing.empty() ? "" : "; ") + "no " + what + " (" + where + ")";
  };
  check(parts.unet.get(), "UNet", unet_where);
  check(parts.vae.get(), "VAE", vae_where);
  const FamilyTraits& family = family_traits(parts.info.family);
  for (size_t i = 0; i < family.text_encoders.size(); ++i)
    check(i < parts.text_encoders.size() ? parts.text_encoders[i].get() : nullptr, text_encoder_name(family, i),
          te_where(i));
  if (!missing.empty())
    throw Error(ErrorKind::NotFound, q(path) + " is incomplete: " + missing + ". Kiln needs a full " +
                                         to_string(parts.info.family) + " checkpoint with UNet, VAE and " +
                                         (family.text_encoders.size() == 1 ? "text encoder" : "both text encoders") +
                                         "; download the complete model.");
}

// ---- single file -------------------------------------------------------------------------------

constexpr const char* kUnetPrefix = "model.diffusion_model.";
constexpr const char* kVaePrefix = "first_stage_model.";

bool strip(const std::string& name, const std::string& prefix, std::string& rest) {
  if (name.compare(0, prefix.size(), prefix) != 0) return false;
  rest = name.substr(prefix.size());
  return true;
}

FilePtr open_single_file(const fs::path& path) {
  if (has_pickle_extension(path) || looks_like_pickle(path)) refuse_pickle(path);
  return SafeTensorsFile::open(path);
}

// A text encoder stored as an OpenCLIP state dict, under Hugging Face names (see key_map.h).
void add_open_clip(WeightSource& te, const FilePtr& file, const TensorInfo& t, const std::string& rest) {
  const auto pieces = open_clip_text_to_hf(rest);
  if (!pieces) {
    te.add(rest, file, t.name, t.shape);  // reported as unexpected by the model loader
    return;
  }
  for (const OpenClipPiece& piece : *pieces) {
    if (piece.part >= 0 || piece.transpose) te.add_part(piece.hf_name, file, t.name, piece.part, 3, piece.transpose);
    else te.add(piece.hf_name, file, t.name, t.shape);
  }
}

Checkpoint::Parts read_single_file(const FilePtr& file, ModelInfo info) {
  Checkpoint::Parts parts;
  parts.path = file->path();
  parts.info = std::move(info);
  parts.unet = std::make_unique<WeightSource>("UNet");
  parts.vae = std::make_unique<WeightSource>("VAE");
  const FamilyTraits& family = family_traits(parts.info.family);
  for (size_t i = 0; i < family.text_encoders.size(); ++i)
    parts.text_encoders.push_back(std::make_unique<WeightSource>(text_encoder_name(family, i)));
  std::string rest;
  for (const TensorInfo& t : file->tensors()) {
    if (strip(t.name, kUnetPrefix, rest)) {
      parts.unet->add(rest, file, t.name, t.shape);
      continue;
    }
    if (strip(t.name, kVaePrefix, rest)) {
      auto shape = t.shape;
      if (is_vae_attention_projection(rest) && shape.size() == 2) shape.insert(shape.end(), {1, 1});
      parts.vae->add(rest, file, t.name, std::move(shape));
      continue;
    }
    for (size_t i = 0; i < family.text_encoders.size(); ++i) {
      const TextEncoderSlot& slot = family.text_encoders[i];
      if (!strip(t.name, slot.single_file_prefix, rest)) continue;
      WeightSource& te = *parts.text_encoders[i];
      if (slot.open_clip_names) {
        add_open_clip(te, file, t, rest);
      } else if (rest.size() < 12 || rest.compare(rest.size() - 12, 12, "position_ids") != 0) {  // not a buffer
        // Unknown names are kept as they are, so the model loader reports them as unexpected.
        te.add(text_encoder_normalize(rest).value_or(rest), file, t.name, t.shape);
      }
      break;
    }
  }
  require_components(parts, file->path(), "model.diffusion_model.*", "first_stage_model.*",
                     [&](size_t i) { return std::string(family.text_encoders[i].single_file_prefix) + "*"; });
  return parts;
}

// ---- diffusers folder --------------------------------------------------------------------------

struct Component {
  std::vector<FilePtr> files;
  std::vector<TensorInfo> tensors;  // of all files, each name once
  std::vector<FilePtr> owner;       // owner[i] holds tensors[i]
};

// A sharded component: "<name>.safetensors.index.json" = {"weight_map": {tensor: shard file}}.
Component read_index(const fs::path& index_path) {
  const nlohmann::json index = read_json(index_path);
  const auto map = index.find("weight_map");
  if (map == index.end() || !map->is_object())
    throw Error(ErrorKind::BadFormat, q(index_path) + " has no \"weight_map\"; the model folder is damaged, download it again.");
  Component c;
  std::map<std::string, FilePtr> shards;
  for (const auto& [tensor, shard] : map->items()) {
    const fs::path rel = shard.is_string() ? fs::path(shard.get<std::string>()) : fs::path();
    // Shards must sit beside the index: never follow a path out of the model folder.
    if (rel.empty() || rel.has_parent_path() || rel.filename() == "..")
      throw Error(ErrorKind::BadFormat, q(index_path) + " names an invalid shard file for '" + tensor + "'.");
    auto& file = shards[rel.string()];
    if (!file) {
      file = open_single_file(index_path.parent_path() / rel);
      c.files.push_back(file);
    }
    if (!file->contains(tensor))
      throw Error(ErrorKind::BadFormat, q(index_path) + " says '" + tensor + "' is in " + q(rel) +
                                            ", but it is not there; the download is incomplete.");
    c.tensors.push_back(file->info(tensor));
    c.owner.push_back(file);
  }
  return c;
}

// Finds <dir>/<stem>{,.fp16}.safetensors[.index.json]. Empty when the folder is absent.
std::optional<Component> read_component(const fs::path& dir, const std::string& stem, const char* what,
                                        const fs::path& model_dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return std::nullopt;
  for (const char* variant : {"", ".fp16"}) {
    const fs::path single = dir / (stem + variant + ".safetensors");
    if (fs::is_regular_file(single, ec)) {
      Component c;
      auto file = open_single_file(single);
      c.files.push_back(file);
      for (const auto& t : file->tensors()) {
        c.tensors.push_back(t);
        c.owner.push_back(file);
      }
      return c;
    }
    const fs::path index = dir / (stem + variant + ".safetensors.index.json");
    if (fs::is_regular_file(index, ec)) return read_index(index);
  }
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (has_pickle_extension(entry.path())) refuse_pickle(entry.path());
  throw Error(ErrorKind::NotFound, q(model_dir) + " has a " + dir.filename().string() + "/ folder without " + what +
                                       " weights (" + stem + ".safetensors); the download is incomplete.");
}

UnetLayout unet_layout_of(const std::vector<TensorInfo>& tensors) {
  UnetLayout layout;
  std::set<int> down0_resnets;
  std::vector<bool> up_attn;
  for (const auto& t : tensors) {
    int i = 0, j = 0;
    if (std::sscanf(t.name.c_str(), "down_blocks.0.resnets.%d.", &j) == 1) down0_resnets.insert(j);
    if (std::sscanf(t.name.c_str(), "up_blocks.%d.", &i) == 1 && i >= 0 && i < 64) {
      if (up_attn.size() <= static_cast<size_t>(i)) up_attn.resize(i + 1, false);
      if (t.name.find(".attentions.") != std::string::npos) up_attn[i] = true;
    }
  }
  if (!down0_resnets.empty()) layout.layers_per_block = static_cast<int>(down0_resnets.size());
  if (!up_attn.empty()) layout.up_block_has_attention = up_attn;
  return layout;
}

int vae_up_blocks_of(const std::vector<TensorInfo>& tensors) {
  int n = 0, i = 0;
  for (const auto& t : tensors)
    if (std::sscanf(t.name.c_str(), "decoder.up_blocks.%d.", &i) == 1 && i >= 0 && i < 64) n = std::max(n, i + 1);
  return n == 0 ? 4 : n;
}

[[noreturn]] void unmapped(const Component& c, const std::vector<std::string>& names, const char* what) {
  std::string list;
  for (size_t i = 0; i < names.size() && i < 5; ++i) list += (i ? ", " : "") + names[i];
  if (names.size() > 5) list += " and " + std::to_string(names.size() - 5) + " more";
  throw Error(ErrorKind::BadFormat, q(c.files.front()->path()) + " has " + what + " tensors Kiln does not recognise (" +
                                        list + "); it is not a Stable Diffusion (SD1.x or SDXL) " + what + " or the file is damaged.");
}

struct DiffusersFolder {
  fs::path dir;
  nlohmann::json model_index = nlohmann::json::object();
  std::optional<Component> unet, vae, text_encoder;
  nlohmann::json text_encoder_config = nlohmann::json::object();
  bool has_text_encoder_2 = false;
};

DiffusersFolder read_diffusers(const fs::path& dir) {
  DiffusersFolder f;
  f.dir = dir;
  std::error_code ec;
  const bool has_index = fs::is_regular_file(dir / "model_index.json", ec);
  if (!has_index && !fs::is_directory(dir / "unet", ec))
    throw Error(ErrorKind::NotFound, q(dir) + " is a folder but not a diffusers model: it has no model_index.json. Choose the "
                                              "model's .safetensors file, or the diffusers folder that holds model_index.json.");
  if (has_index) f.model_index = read_json(dir / "model_index.json");
  f.unet = read_component(dir / "unet", "diffusion_pytorch_model", "UNet", dir);
  f.vae = read_component(dir / "vae", "diffusion_pytorch_model", "VAE", dir);
  f.text_encoder = read_component(dir / "text_encoder", "model", "text encoder", dir);
  if (fs::is_regular_file(dir / "text_encoder" / "config.json", ec)) f.text_encoder_config = read_json(dir / "text_encoder" / "config.json");
  f.has_text_encoder_2 = fs::is_directory(dir / "text_encoder_2", ec);
  std::string missing;
  for (const auto& [c, name] : {std::pair{&f.unet, "unet/"}, {&f.vae, "vae/"}, {&f.text_encoder, "text_encoder/"}})
    if (!*c) missing += std::string(missing.empty() ? "" : ", ") + name;
  if (!missing.empty())
    throw Error(ErrorKind::NotFound, q(dir) + " is missing the folder(s) " + missing +
                                         ". Kiln needs the UNet, VAE and text encoder of a diffusers model; download the complete model.");
  return f;
}

ModelInfo detect(const DiffusersFolder& f) {
  return detect_diffusers(f.model_index, f.unet->tensors, f.text_encoder_config, f.has_text_encoder_2);
}

Checkpoint::Parts build_diffusers(const DiffusersFolder& f, ModelInfo info) {
  Checkpoint::Parts parts;
  parts.path = f.dir;
  parts.info = std::move(info);
  std::vector<std::string> bad;
  parts.unet = std::make_unique<WeightSource>("UNet");
  const UnetLayout layout = unet_layout_of(f.unet->tensors);
  for (size_t i = 0; i < f.unet->tensors.size(); ++i) {
    const TensorInfo& t = f.unet->tensors[i];
    if (auto ldm = unet_module_diffusers_to_ldm(t.name, layout)) parts.unet->add(*ldm, f.unet->owner[i], t.name, t.shape);
    else bad.push_back(t.name);
  }
  if (!bad.empty()) unmapped(*f.unet, bad, "UNet");

  parts.vae = std::make_unique<WeightSource>("VAE");
  const int up_blocks = vae_up_blocks_of(f.vae->tensors);
  for (size_t i = 0; i < f.vae->tensors.size(); ++i) {
    const TensorInfo& t = f.vae->tensors[i];
    auto ldm = vae_diffusers_to_ldm(t.name, up_blocks);
    if (!ldm) {
      bad.push_back(t.name);
      continue;
    }
    auto shape = t.shape;
    if (is_vae_attention_projection(*ldm) && shape.size() == 2) shape.insert(shape.end(), {1, 1});
    parts.vae->add(*ldm, f.vae->owner[i], t.name, std::move(shape));
  }
  if (!bad.empty()) unmapped(*f.vae, bad, "VAE");

  const FamilyTraits& family = family_traits(parts.info.family);
  for (size_t k = 0; k < family.text_encoders.size(); ++k) {
    // The first encoder was read with the folder; further ones only for a family that has them.
    const std::optional<Component> c =
        k == 0 ? f.text_encoder
               : read_component(f.dir / family.text_encoders[k].diffusers_folder, "model", "second text encoder", f.dir);
    parts.text_encoders.push_back(std::make_unique<WeightSource>(text_encoder_name(family, k)));
    if (!c) continue;  // require_components names it
    for (size_t i = 0; i < c->tensors.size(); ++i) {
      const TensorInfo& t = c->tensors[i];
      if (auto name = text_encoder_normalize(t.name)) parts.text_encoders[k]->add(*name, c->owner[i], t.name, t.shape);
      else if (t.name.find("position_ids") == std::string::npos) bad.push_back(t.name);
    }
    if (!bad.empty()) unmapped(*c, bad, "text encoder");
  }

  require_components(parts, f.dir, "unet/", "vae/",
                     [&](size_t i) { return std::string(family.text_encoders[i].diffusers_folder) + "/"; });
  return parts;
}

fs::path resolve(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec))
    throw Error(ErrorKind::NotFound, q(path) + " does not exist; check the path of the model.");
  if (path.filename() == "model_index.json" && fs::is_regular_file(path, ec)) return path.parent_path();
  return path;
}

}  // namespace

namespace {
ModelInfo single_file_info(const SafeTensorsFile& file, const fs::path& path) {
  ModelInfo info = detect_single_file(file.tensors(), path.string());
  if (const auto it = file.metadata().find("modelspec.resolution"); it != file.metadata().end())
    info.native_size = native_size_from_modelspec(it->second);
  return info;
}
}  // namespace

ModelInfo Checkpoint::inspect(const fs::path& given) {
  const fs::path path = resolve(given);
  std::error_code ec;
  if (fs::is_directory(path, ec)) return detect(read_diffusers(path));
  const FilePtr file = open_single_file(path);
  return single_file_info(*file, path);
}

std::shared_ptr<const Checkpoint> Checkpoint::open(const fs::path& given) {
  const fs::path path = resolve(given);
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const DiffusersFolder folder = read_diffusers(path);
    ModelInfo info = detect(folder);
    require_supported(info, path);
    return std::shared_ptr<const Checkpoint>(new Checkpoint(build_diffusers(folder, std::move(info))));
  }
  const FilePtr file = open_single_file(path);
  ModelInfo info = single_file_info(*file, path);
  require_supported(info, path);
  return std::shared_ptr<const Checkpoint>(new Checkpoint(read_single_file(file, std::move(info))));
}

}  // namespace kiln::engine
