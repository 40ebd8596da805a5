#include "service/library/model_registry.h"

#include <fstream>

#include <spdlog/spdlog.h>

#include "engine/io/atomic_file.h"
#include "engine/io/checkpoint.h"
#include "service/errors.h"
#include "service/jobs/job_record.h"
#include "studio/names.h"

namespace kiln::service {
namespace fs = std::filesystem;
using protocol::ErrorCode;
using Json = nlohmann::json;

Json to_json(const ModelEntry& e) {
  const auto& family = engine::family_traits(engine::family_from_string(e.family));
  const int64_t side = e.native_size > 0 ? e.native_size : family.default_size;
  return {{"name", e.name},         {"path", e.path.string()}, {"layout", e.layout},  {"family", e.family},
          {"size_bytes", e.size_bytes}, {"added_at", e.added_at}, {"sha256", e.sha256},
          {"hash", e.sha256.empty() ? "" : e.sha256.substr(0, 10)}, {"inpainting", e.inpainting},
          {"default_size", side}, {"native_size", e.native_size}};
}

namespace {
ModelEntry entry_from_json(const Json& j) {
  ModelEntry e;
  e.name = j.at("name").get<std::string>();
  e.path = j.at("path").get<std::string>();
  e.layout = j.value("layout", "");
  e.family = j.value("family", "");
  e.size_bytes = j.value("size_bytes", int64_t{0});
  e.added_at = j.value("added_at", "");
  e.sha256 = j.value("sha256", "");
  e.inpainting = j.value("inpainting", false);
  e.native_size = j.value("native_size", int64_t{-1});
  return e;
}

int64_t size_on_disk(const fs::path& path) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return static_cast<int64_t>(fs::file_size(path, ec));
  int64_t total = 0;
  for (const auto& entry : fs::recursive_directory_iterator(path, ec))
    if (entry.is_regular_file(ec)) total += static_cast<int64_t>(entry.file_size(ec));
  return total;
}
}  // namespace

ModelRegistry::ModelRegistry(fs::path file) : file_(std::move(file)) {
  if (!fs::exists(file_)) return;
  try {
    std::ifstream in(file_);
    const Json j = Json::parse(in);
    for (const Json& m : j.at("models")) entries_.push_back(entry_from_json(m));
  } catch (const std::exception& e) {
    // Keep the unreadable file for the user and start empty rather than refusing to run.
    const fs::path aside = file_.string() + ".unreadable";
    std::error_code ec;
    fs::rename(file_, aside, ec);
    spdlog::error("{} is unreadable ({}); moved to {} and starting with no registered models", file_.string(), e.what(),
                  aside.string());
  }
}

void ModelRegistry::save() const {
  Json models = Json::array();
  for (const ModelEntry& e : entries_) models.push_back(to_json(e));
  write_file_atomically(file_, Json{{"version", 1}, {"models", models}}.dump(2) + "\n");
}

ModelEntry ModelRegistry::add(const fs::path& raw_path, const std::string& requested_name) {
  if (!raw_path.is_absolute())
    throw ServiceError(ErrorCode::InvalidParams, "models.add: give the model's absolute path (got '" + raw_path.string() + "')");
  const fs::path path = raw_path.lexically_normal();
  const engine::ModelInfo info = engine::Checkpoint::inspect(path);  // throws a clear engine error
  const bool family_ok = info.family == engine::ModelFamily::SD1 || info.family == engine::ModelFamily::SDXL;
  if (!family_ok || (info.unet_in_channels != 4 && !info.inpainting))
    throw ServiceError(ErrorCode::Unsupported, path.string() + " is " + info.describe() +
                                                   "; Kiln runs SD1.x and SDXL models (ordinary and inpainting)");
  std::string name = requested_name;
  if (name.empty()) name = path.filename() == "model_index.json" ? path.parent_path().filename().string() : path.stem().string();
  studio::validate_library_name(name, "model name");

  ModelEntry entry;
  entry.name = name;
  entry.path = path.filename() == "model_index.json" ? path.parent_path() : path;
  entry.layout = info.layout;
  entry.family = engine::to_string(info.family);
  entry.inpainting = info.inpainting;
  entry.native_size = info.native_size;
  entry.size_bytes = size_on_disk(entry.path);
  entry.added_at = utc_now_iso8601();

  std::lock_guard lock(mutex_);
  for (const ModelEntry& e : entries_) {
    if (e.name == name)
      throw ServiceError(ErrorCode::AlreadyExists, "a model named '" + name + "' is already registered (" + e.path.string() +
                                                       "); choose another name with --name");
    if (e.path == entry.path)
      throw ServiceError(ErrorCode::AlreadyExists, entry.path.string() + " is already registered as '" + e.name + "'");
  }
  entries_.push_back(entry);
  save();
  return entry;
}

void ModelRegistry::remove(const std::string& name) {
  std::lock_guard lock(mutex_);
  auto it = std::find_if(entries_.begin(), entries_.end(), [&](const ModelEntry& e) { return e.name == name; });
  if (it == entries_.end()) throw ServiceError(ErrorCode::NotFound, "no model named '" + name + "' is registered");
  entries_.erase(it);
  save();
}

std::vector<ModelEntry> ModelRegistry::list() const {
  std::lock_guard lock(mutex_);
  return entries_;
}

std::optional<ModelEntry> ModelRegistry::find(const std::string& name) const {
  std::lock_guard lock(mutex_);
  for (const ModelEntry& e : entries_)
    if (e.name == name) return e;
  return std::nullopt;
}

ModelEntry ModelRegistry::resolve(const std::string& reference) const {
  if (auto found = find(reference)) return *found;
  const fs::path path(reference);
  if (path.is_absolute()) {
    std::lock_guard lock(mutex_);
    for (const ModelEntry& e : entries_)
      if (e.path == path.lexically_normal()) return e;
    ModelEntry unregistered;
    unregistered.name = path.filename() == "model_index.json" ? path.parent_path().filename().string() : path.stem().string();
    unregistered.path = path.filename() == "model_index.json" ? path.parent_path() : path.lexically_normal();
    return unregistered;
  }
  std::string names;
  for (const ModelEntry& e : list()) names += (names.empty() ? "" : ", ") + e.name;
  throw ServiceError(ErrorCode::NotFound, "no model named '" + reference + "'" +
                                              (names.empty() ? "; none is registered yet: `kiln models add PATH`"
                                                             : " (registered: " + names + ")"));
}

engine::ModelFamily ModelRegistry::family_of(const ModelEntry& entry) const {
  if (!entry.family.empty()) return engine::family_from_string(entry.family);
  try {
    return engine::Checkpoint::inspect(entry.path).family;  // headers only
  } catch (const std::exception&) {
    return engine::ModelFamily::Unknown;
  }
}

int64_t ModelRegistry::default_size_of(const ModelEntry& entry) const {
  if (entry.native_size > 0) return entry.native_size;
  if (entry.native_size == 0 && !entry.family.empty())
    return engine::family_traits(engine::family_from_string(entry.family)).default_size;
  try {
    const engine::ModelInfo info = engine::Checkpoint::inspect(entry.path);  // headers only
    return info.native_size > 0 ? info.native_size : engine::family_traits(info.family).default_size;
  } catch (const std::exception&) {
    return engine::family_traits(engine::ModelFamily::SD1).default_size;
  }
}

void ModelRegistry::remember_hash(const fs::path& path, const std::string& sha256) {
  std::lock_guard lock(mutex_);
  for (ModelEntry& e : entries_)
    if (e.path == path && e.sha256 != sha256) {
      e.sha256 = sha256;
      save();
    }
}

}  // namespace kiln::service
