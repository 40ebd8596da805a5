#pragma once
// What a running job sees of the scheduler. Job code is a plain loop that calls checkpoint()
// between steps; the scheduler uses those points to cancel, pause, stop for a daemon shutdown,
// and let interactive jobs run first.
#include <any>
#include <exception>
#include <filesystem>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "ipc/shm_image.h"
#include "service/jobs/job_record.h"

namespace kiln::service {

// Thrown by checkpoint(): the user cancelled. Let it propagate.
struct JobCancelled : std::exception {
  const char* what() const noexcept override { return "cancelled"; }
};
// Thrown by checkpoint(): the daemon is stopping. Resumable jobs have saved their state; let it propagate.
struct JobInterrupted : std::exception {
  const char* what() const noexcept override { return "interrupted by a daemon shutdown"; }
};

class JobContext {
 public:
  virtual ~JobContext() = default;
  virtual const std::string& id() const = 0;
  virtual const Json& params() const = 0;
  virtual const Json& resume_state() const = 0;  // null unless resuming
  // What the request handed over besides JSON (e.g. input pixels copied out of shared memory);
  // empty after a restart, since it is not persisted.
  virtual const std::any& attachment() const = 0;
  virtual std::filesystem::path dir() const = 0;  // jobs/<id>/, for state files and logs

  // Progress: step of total, a short message, and job-specific live values (loss, epoch, ...).
  virtual void report(int64_t step, int64_t total, const std::string& message, const Json& extra = Json::object()) = 0;
  // Hands a preview image to the daemon, which offers it to subscribers for a while.
  virtual void preview(ipc::ShmImage image) = 0;
  // Persists small state needed to resume (atomically, with the job record).
  virtual void save_resume_state(const Json& state) = 0;

  virtual void checkpoint() = 0;
  virtual bool stop_requested() const = 0;  // cheap; for long steps that can stop early
};

struct JobType {
  std::string name;
  JobPriority priority = JobPriority::Long;
  bool resumable = false;
  // Checks params before the job is queued; throws ServiceError(InvalidParams, ...).
  std::function<void(const Json& params)> validate;
  // Optional: what the job would do with these params, without queuing it (train.plan).
  std::function<Json(const Json& params)> plan;
  // Does the work; returns the job's result.
  std::function<Json(JobContext& context)> run;
};

}  // namespace kiln::service
