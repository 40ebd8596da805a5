#include "service/library/lora_library.h"

#include <algorithm>
#include <fstream>
#include <regex>

#include <spdlog/spdlog.h>

#include "engine/io/atomic_file.h"
#include "engine/lora/lora_file.h"
#include "service/errors.h"
#include "studio/names.h"

namespace kiln::service {
namespace fs = std::filesystem;
using protocol::ErrorCode;
using Json = nlohmann::json;

Json to_json(const LoraEntry& e) {
  Json epochs = Json::array();
  for (const LoraEpochFile& f : e.epochs)
    epochs.push_back({{"epoch", f.epoch}, {"path", f.path.string()}, {"size_bytes", f.size_bytes}});
  auto optional_path = [](const std::optional<fs::path>& p) { return p ? Json(p->string()) : Json(); };
  return {{"name", e.name},
          {"folder", e.folder.string()},
          {"file", optional_path(e.final_file)},
          {"epochs", epochs},
          {"info", e.info},
          {"grid", optional_path(e.grid)},
          {"loss_curve", optional_path(e.loss_curve)},
          {"config", optional_path(e.config)},
          {"chosen_epoch", e.chosen_epoch ? Json(*e.chosen_epoch) : Json()}};
}

namespace {

// chosen.json: which epoch the final file holds since use_epoch, and which epoch the trained final
// file was (kept as its epoch file).
constexpr const char* kChosenFile = "chosen.json";

Json read_json_file(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return nullptr;
  Json j = Json::parse(in, nullptr, false);
  return j.is_discarded() ? Json() : j;
}

std::string epoch_file_name(const std::string& name, int epoch) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "-%06d", epoch);
  return name + buf + ".safetensors";
}

// Copies a file as a crash-safe replacement of `to` (temporary file, fsync, rename).
void copy_atomically(const fs::path& from, const fs::path& to) {
  std::ifstream in(from, std::ios::binary);
  if (!in) throw ServiceError(ErrorCode::NotFound, "cannot read " + from.string());
  write_file_atomically(to, [&in](std::ostream& out) { out << in.rdbuf(); });
}

}  // namespace

LoraLibrary::LoraLibrary(fs::path root) : root_(std::move(root)) { fs::create_directories(root_); }

std::optional<LoraEntry> LoraLibrary::scan(const std::string& name) const {
  const fs::path folder = root_ / name;
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) return std::nullopt;
  LoraEntry entry;
  entry.name = name;
  entry.folder = folder;
  const std::regex epoch_file(std::regex_replace(name, std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)") + R"(-(\d{6})\.safetensors)");
  for (const auto& f : fs::directory_iterator(folder, ec)) {
    const std::string file = f.path().filename().string();
    std::smatch m;
    if (file == name + ".safetensors") entry.final_file = f.path();
    else if (std::regex_match(file, m, epoch_file))
      entry.epochs.push_back({std::stoi(m[1]), f.path(), static_cast<int64_t>(f.file_size(ec))});
  }
  std::sort(entry.epochs.begin(), entry.epochs.end(), [](auto& a, auto& b) { return a.epoch < b.epoch; });
  if (!entry.final_file && entry.epochs.empty()) return std::nullopt;  // a run that saved nothing yet
  const fs::path newest = entry.final_file ? *entry.final_file : entry.epochs.back().path;
  try {
    entry.info = engine::lora::to_json(engine::lora::read_lora_info(newest));
  } catch (const std::exception& e) {
    entry.info = {{"error", e.what()}};
  }
  for (auto [member, file] : {std::pair{&entry.grid, "grid.png"}, {&entry.loss_curve, "loss.png"}, {&entry.config, "config.json"}})
    if (fs::exists(folder / file, ec)) *member = folder / file;
  const Json chosen = read_json_file(folder / kChosenFile);
  if (entry.final_file && chosen.is_object() && chosen.value("epoch", Json()).is_number_integer())
    entry.chosen_epoch = chosen.at("epoch").get<int>();
  return entry;
}

std::vector<LoraEntry> LoraLibrary::list() const {
  std::vector<LoraEntry> out;
  std::error_code ec;
  for (const auto& d : fs::directory_iterator(root_, ec)) {
    const std::string name = d.path().filename().string();
    if (!studio::is_valid_library_name(name)) continue;  // not ours
    if (auto entry = scan(name)) out.push_back(std::move(*entry));
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.name < b.name; });
  return out;
}

LoraEntry LoraLibrary::get(const std::string& name) const {
  studio::validate_library_name(name, "LoRA name");
  if (auto entry = scan(name)) return *entry;
  throw ServiceError(ErrorCode::NotFound, "no LoRA named '" + name + "' in the library (`kiln loras list` shows them)");
}

fs::path LoraLibrary::folder_for(const std::string& name) const {
  studio::validate_library_name(name, "LoRA name");
  const fs::path folder = studio::safe_join(root_, name);
  fs::create_directories(folder);
  return folder;
}

LoraEntry LoraLibrary::add(const fs::path& file, const std::string& requested) {
  if (!file.is_absolute()) throw ServiceError(ErrorCode::InvalidParams, "loras.add: give the file's absolute path");
  const engine::lora::LoraInfo info = engine::lora::read_lora_info(file);  // clear errors for non-LoRA files
  if (info.family != engine::ModelFamily::SD1 && info.family != engine::ModelFamily::SDXL)
    throw ServiceError(ErrorCode::Unsupported, file.string() + " is a LoRA for " + engine::to_string(info.family) +
                                                   "; Kiln applies SD1.x and SDXL LoRAs");
  const std::string name = requested.empty() ? file.stem().string() : requested;
  studio::validate_library_name(name, "LoRA name");
  if (scan(name))
    throw ServiceError(ErrorCode::AlreadyExists, "a LoRA named '" + name + "' is already in the library; choose another --name");
  const fs::path folder = folder_for(name);
  const fs::path target = folder / (name + ".safetensors");
  std::error_code ec;
  fs::copy_file(file, folder / ("." + name + ".importing"), fs::copy_options::overwrite_existing, ec);
  if (ec) throw ServiceError(ErrorCode::InternalError, "cannot copy " + file.string() + " into the library: " + ec.message());
  fs::rename(folder / ("." + name + ".importing"), target);
  return *scan(name);
}

void LoraLibrary::remove(const std::string& name) {
  const LoraEntry entry = get(name);
  // Move aside first, so a half-finished removal never leaves a half LoRA under its name.
  const fs::path trash = root_ / ("." + name + ".removing");
  fs::rename(entry.folder, trash);
  fs::remove_all(trash);
}

LoraEntry LoraLibrary::use_epoch(const std::string& name, int epoch) {
  const LoraEntry entry = get(name);
  // The epoch the trained final file holds: recorded by an earlier choice, else its kohya metadata.
  std::optional<int> final_epoch;
  const Json chosen = read_json_file(entry.folder / kChosenFile);
  if (chosen.is_object() && chosen.value("final_epoch", Json()).is_number_integer())
    final_epoch = chosen.at("final_epoch").get<int>();
  else if (entry.final_file && entry.info.contains("metadata") && entry.info.at("metadata").contains("ss_epoch")) {
    try {
      final_epoch = std::stoi(entry.info.at("metadata").at("ss_epoch").get<std::string>());
    } catch (const std::exception&) {
    }
  }
  const fs::path wanted = entry.folder / epoch_file_name(name, epoch);
  std::error_code ec;
  if (entry.final_file && final_epoch && *final_epoch > 0 && !fs::exists(entry.folder / epoch_file_name(name, *final_epoch), ec)) {
    // kohya saves the last epoch only as the final file: keep it under its epoch's name first.
    copy_atomically(*entry.final_file, entry.folder / epoch_file_name(name, *final_epoch));
  }
  if (!fs::is_regular_file(wanted, ec)) {
    std::string list;
    for (const LoraEpochFile& f : get(name).epochs) list += (list.empty() ? "" : ", ") + std::to_string(f.epoch);
    throw ServiceError(ErrorCode::NotFound, "the LoRA '" + name + "' has no file for epoch " + std::to_string(epoch) + " (" +
                                                (list.empty() ? std::string("it has no epoch files; save some with save_every_n_epochs")
                                                              : "epochs with files: " + list) +
                                                ")");
  }
  if (entry.final_file && !final_epoch && !chosen.is_object())
    // Overwriting a final file of unknown epoch would lose it: nothing says which epoch file to keep it as.
    throw ServiceError(ErrorCode::InvalidParams,
                       "the final file of the LoRA '" + name + "' does not say which epoch it is (no ss_epoch in its "
                       "metadata), so choosing another epoch would lose it; use the epoch files directly as "
                       "<lora:" + name + "-NNNNNN:w>, or move the final file away first");
  copy_atomically(wanted, entry.folder / (name + ".safetensors"));
  Json record{{"epoch", epoch}, {"file", wanted.filename().string()}};
  if (final_epoch) record["final_epoch"] = *final_epoch;
  write_file_atomically(entry.folder / kChosenFile, record.dump(2));
  spdlog::info("LoRA '{}' now uses epoch {} ({})", name, epoch, wanted.filename().string());
  return get(name);
}

std::optional<fs::path> LoraLibrary::find_file(const std::string& tag_name) const {
  if (!studio::is_valid_library_name(tag_name)) return std::nullopt;
  if (auto entry = scan(tag_name)) return entry->final_file ? *entry->final_file : entry->epochs.back().path;
  // "<name>-000002": an epoch file of <name>.
  static const std::regex epoch_tag(R"((.+)-(\d{6}))");
  std::smatch m;
  if (std::regex_match(tag_name, m, epoch_tag)) {
    const fs::path file = root_ / m[1].str() / (tag_name + ".safetensors");
    std::error_code ec;
    if (studio::is_valid_library_name(m[1].str()) && fs::is_regular_file(file, ec)) return file;
  }
  return std::nullopt;
}

}  // namespace kiln::service
