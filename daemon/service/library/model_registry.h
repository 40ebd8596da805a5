#pragma once
// The registry of model checkpoints the user added (<data dir>/models.json). Files are never
// copied: the registry remembers where they are, what they hold and their hash.
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/io/families.h"

namespace kiln::service {

struct ModelEntry {
  std::string name;
  std::filesystem::path path;  // absolute: a .safetensors file or a diffusers folder
  std::string layout;          // "single-file" or "diffusers"
  std::string family;          // "SD1.x" or "SDXL" ("" for an unregistered path until inspected)
  int64_t size_bytes = 0;
  std::string added_at;
  std::string sha256;          // of the file, once computed (empty for diffusers folders)
  bool inpainting = false;     // a 9-channel UNet: the best model for product shots and inpainting
  // The side the file says it was trained at (ModelInfo::native_size); 0: the family's;
  // −1: not known yet (registered before Kiln read it, or an unregistered path).
  int64_t native_size = -1;
};

// Includes "default_size": the side the model generates and trains at: its own when the file says
// (Kiln Mini: 64), else its family's (512 SD1.x, 1024 SDXL).
nlohmann::json to_json(const ModelEntry& entry);

class ModelRegistry {
 public:
  explicit ModelRegistry(std::filesystem::path file);  // loads it if present

  // Inspects the checkpoint (headers only) and registers it. `name` defaults to the file's stem.
  // Throws ServiceError: InvalidName, AlreadyExists, NotFound / ModelError / Unsupported.
  ModelEntry add(const std::filesystem::path& path, const std::string& name = "");
  void remove(const std::string& name);  // throws NotFound
  std::vector<ModelEntry> list() const;
  std::optional<ModelEntry> find(const std::string& name) const;

  // A model reference from a request: a registered name, or a path to a checkpoint (absolute; the
  // CLI makes paths absolute). Throws ServiceError(NotFound) listing the registered names.
  ModelEntry resolve(const std::string& reference) const;

  // The entry's model family: the registered one, else read from the checkpoint's headers;
  // Unknown when it cannot be read.
  engine::ModelFamily family_of(const ModelEntry& entry) const;
  // The side the entry's model generates and trains at: its native size when its file names one,
  // else its family's default (512 when nothing can be read).
  int64_t default_size_of(const ModelEntry& entry) const;

  // Remembers a computed hash for the entry with this path (if registered).
  void remember_hash(const std::filesystem::path& path, const std::string& sha256);

 private:
  void save() const;  // lock held
  std::filesystem::path file_;
  mutable std::mutex mutex_;
  std::vector<ModelEntry> entries_;
};

}  // namespace kiln::service
