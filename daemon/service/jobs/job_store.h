#pragma once
// Job records on disk: <data>/jobs/<id>/job.json, written atomically. The folder also holds
// whatever a job saves to resume (training state) and its log.
#include <filesystem>
#include <vector>

#include "service/jobs/job_record.h"

namespace kiln::service {

class JobStore {
 public:
  explicit JobStore(std::filesystem::path jobs_dir);

  void save(const JobRecord& record) const;      // atomic; throws std::system_error
  std::vector<JobRecord> load_all() const;       // skips (and logs) unreadable records
  std::filesystem::path job_dir(const std::string& id) const;  // created on demand
  const std::filesystem::path& root() const { return root_; }

 private:
  std::filesystem::path root_;
};

}  // namespace kiln::service
