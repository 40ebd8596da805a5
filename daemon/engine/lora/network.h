#pragma once
// A set of LoRA modules attached to a model's layers: a LoRA file applied for generation, or a
// network being trained (kohya networks/lora.py LoRANetwork). Attaching adds a low-rank path to
// each layer (models::LayerAdapter); the base weights are never modified, so detaching restores the
// model bit for bit and switching LoRAs never reloads it.
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

#include "engine/lora/lora_file.h"
#include "engine/lora/lora_module.h"
#include "engine/lora/python_repr.h"
#include "engine/lora/targets.h"
#include "engine/models/stable_diffusion.h"

namespace kiln::engine::lora {

// kohya train_network.py --network_dim/--network_alpha, --network_args conv_dim/conv_alpha,
// --network_train_unet_only / --network_train_text_encoder_only.
struct NetworkOptions {
  int64_t dim = 4;
  double alpha = 1.0;
  int64_t conv_dim = 0;  // 0: no 3×3 conv modules (kohya's default)
  double conv_alpha = 1.0;
  bool text_encoder = true;  // false = network_train_unet_only
  bool unet = true;          // false = network_train_text_encoder_only
};

// What applying a file did. Nothing in a file is skipped silently: every module that fits no layer
// of the model is listed.
struct ApplyReport {
  int64_t text_encoder_modules = 0;
  int64_t unet_modules = 0;
  std::vector<std::string> unmatched;  // module names and stray tensor names
};

struct SaveOptions {
  torch::Dtype dtype = torch::kFloat16;  // kohya --save_precision: fp16 (default), float, bf16
  // Caller's metadata (ss_* training facts, modelspec.*). The network adds ss_network_module,
  // ss_network_dim, ss_network_alpha, ss_network_args (conv), sshs_model_hash and sshs_legacy_hash.
  std::map<std::string, std::string> metadata;
};

class LoraNetwork {
 public:
  struct Entry {
    std::shared_ptr<LoraModule> module;
    LoraLayer layer;
  };

  // kohya create_network on the default targets (targets.h): lora_down ~ kaiming_uniform(a=√5),
  // i.e. U(±1/√fan_in), from a CPU generator seeded with `seed`, lora_up = 0. Float32 leaf tensors
  // on the model's device that require grad. Text encoder modules come first. Not attached.
  static std::unique_ptr<LoraNetwork> create(const models::StableDiffusion& model, const NetworkOptions& options,
                                             uint64_t seed);

  // A file's modules on the layers they name (kohya/diffusers or LDM module names), in each layer's
  // device and dtype, without gradients. Throws Error(Unsupported) for a LoRA of another model
  // family (SDXL, SD2.x) and Error(InvalidArgument) when a module's shape does not fit its layer.
  // Not attached.
  static std::unique_ptr<LoraNetwork> from_file(const models::StableDiffusion& model, const LoraFile& file,
                                                ApplyReport* report = nullptr);

  ~LoraNetwork();  // detaches
  LoraNetwork(const LoraNetwork&) = delete;
  LoraNetwork& operator=(const LoraNetwork&) = delete;

  void attach();
  void detach();
  bool attached() const { return attached_; }

  // A1111 <lora:name:te:unet>: the two multipliers may differ; negative subtracts the LoRA.
  void set_multiplier(double multiplier) { set_multipliers(multiplier, multiplier); }
  void set_multipliers(double text_encoder, double unet);

  const std::vector<Entry>& entries() const { return entries_; }
  // The trainable tensors of one component, in module order (down, up per module).
  std::vector<torch::Tensor> parameters(Component component) const;
  std::vector<torch::Tensor> parameters() const;

  // kohya keys (<name>.lora_down.weight, <name>.lora_up.weight, <name>.alpha as a 0-dim tensor),
  // sorted by name, as stored (float32 while training).
  std::vector<std::pair<std::string, torch::Tensor>> state_dict() const;
  // Copies down/up values from kohya keys (alpha entries ignored: they must match already).
  // Throws Error(InvalidArgument) for a missing key, an unknown key or a shape that differs.
  void load_state_dict(const std::map<std::string, torch::Tensor>& tensors);

  // kohya save_weights: every tensor converted to options.dtype, written sorted by name (as the
  // safetensors library orders them) atomically, with the sshs_* hashes kohya computes.
  void save(const std::filesystem::path& path, const SaveOptions& options) const;

  const NetworkOptions& options() const { return options_; }

 private:
  LoraNetwork() = default;
  std::vector<Entry> entries_;
  NetworkOptions options_;
  bool attached_ = false;
};

// The kohya / sd-webui-additional-networks hashes of a LoRA: the safetensors bytes of `tensors`
// (serialised in safetensors' order) with only the "ss_*" entries of `metadata`; model hash =
// sha256 of the data section, legacy hash = first 8 hex digits of sha256 of bytes
// [0x100000, 0x110000) of the whole serialisation.
struct KohyaHashes {
  std::string model_hash, legacy_hash;
};
KohyaHashes kohya_hashes(const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                         const std::map<std::string, std::string>& metadata);


}  // namespace kiln::engine::lora
