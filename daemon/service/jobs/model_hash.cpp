#include "service/jobs/model_hash.h"

#include <algorithm>

#include "service/jobs/compute.h"
#include "service/library/file_hash.h"
#include "service/library/model_registry.h"

namespace kiln::service {
namespace fs = std::filesystem;

std::string model_sha256(Compute& compute, ModelRegistry& registry, const ModelEntry& model, JobContext& ctx) {
  if (!fs::is_regular_file(model.path)) return "";
  if (!model.sha256.empty()) return model.sha256;
  const std::string key = model.path.string();
  if (auto it = compute.model_hashes.find(key); it != compute.model_hashes.end()) return it->second;
  ctx.report(0, 0, "hashing " + model.path.filename().string() + " (once per model)");
  const std::string sha = sha256_file(model.path, [&](uint64_t done, uint64_t total) {
    ctx.report(0, 0, "hashing " + model.path.filename().string() + ": " + std::to_string(100 * done / std::max<uint64_t>(total, 1)) + "%");
    return !ctx.stop_requested();
  });
  compute.model_hashes[key] = sha;
  registry.remember_hash(model.path, sha);
  return sha;
}

}  // namespace kiln::service
