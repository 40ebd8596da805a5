#pragma once
// The LoRA library: <data dir>/loras/<name>/ holds a LoRA's files — the final <name>.safetensors,
// the epoch files <name>-000001.safetensors ..., and for trained ones config.json, loss.csv/json,
// loss.png, samples/ and grid.png. The folders are the index: nothing to get out of step.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kiln::service {

struct LoraEpochFile {
  int epoch = 0;  // 0 for the final file
  std::filesystem::path path;
  int64_t size_bytes = 0;
};

struct LoraEntry {
  std::string name;
  std::filesystem::path folder;
  std::optional<std::filesystem::path> final_file;  // <name>.safetensors when it exists
  std::vector<LoraEpochFile> epochs;                // epoch files, in epoch order
  nlohmann::json info;                              // rank, alpha, metadata, trigger words (of the newest file)
  std::optional<std::filesystem::path> grid, loss_curve, config;
  // Set by use_epoch(): the epoch whose weights the final file holds (chosen.json in the folder).
  std::optional<int> chosen_epoch;
};

nlohmann::json to_json(const LoraEntry& entry);

class LoraLibrary {
 public:
  explicit LoraLibrary(std::filesystem::path root);

  // Copies a kohya LoRA file into the library as <name>/<name>.safetensors (LoRAs are small; the
  // library then owns its copy). Refuses files that are not SD1.x or SDXL LoRAs, with the reason.
  LoraEntry add(const std::filesystem::path& file, const std::string& name = "");
  void remove(const std::string& name);
  // "Use this epoch": the final <name>.safetensors becomes a copy of epoch `epoch`'s file, so
  // <lora:NAME:w> gives that epoch. No file is lost: the trained final file is first kept as its own
  // epoch's file (kohya writes the last epoch only as the final one), and choosing the last epoch
  // undoes a choice. Throws NotFound naming the epochs there are.
  LoraEntry use_epoch(const std::string& name, int epoch);
  std::vector<LoraEntry> list() const;
  LoraEntry get(const std::string& name) const;  // throws ServiceError(NotFound)

  // What a <lora:NAME:w> tag refers to: NAME's final file (else its newest epoch), or the epoch
  // file NAME is the stem of ("product-000002"). Empty when there is none.
  std::optional<std::filesystem::path> find_file(const std::string& tag_name) const;

  // The folder a training run named `name` writes to (validated, created).
  std::filesystem::path folder_for(const std::string& name) const;
  const std::filesystem::path& root() const { return root_; }

 private:
  std::optional<LoraEntry> scan(const std::string& name) const;
  std::filesystem::path root_;
};

}  // namespace kiln::service
