#include "service/jobs/job_store.h"

#include <fstream>

#include <spdlog/spdlog.h>

#include "engine/io/atomic_file.h"

namespace kiln::service {
namespace fs = std::filesystem;

JobStore::JobStore(fs::path jobs_dir) : root_(std::move(jobs_dir)) { fs::create_directories(root_); }

fs::path JobStore::job_dir(const std::string& id) const {
  fs::path dir = root_ / id;  // ids are made by the scheduler, never by clients
  fs::create_directories(dir);
  return dir;
}

void JobStore::save(const JobRecord& record) const {
  write_file_atomically(job_dir(record.id) / "job.json", to_json(record).dump(2) + "\n");
}

std::vector<JobRecord> JobStore::load_all() const {
  std::vector<JobRecord> records;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root_, ec)) {
    const fs::path file = entry.path() / "job.json";
    if (!entry.is_directory() || !fs::exists(file)) continue;
    try {
      std::ifstream in(file);
      JobRecord r = job_record_from_json(Json::parse(in));
      if (r.id != entry.path().filename().string()) throw std::runtime_error("id does not match its folder");
      records.push_back(std::move(r));
    } catch (const std::exception& e) {
      spdlog::warn("job record {} is unreadable and was skipped: {}", file.string(), e.what());
    }
  }
  return records;
}

}  // namespace kiln::service
