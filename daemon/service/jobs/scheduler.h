#pragma once
// The job queue and the device scheduler. One worker thread owns the compute device and runs
// every job. Interactive jobs (generate, previews) go before long ones (training); a long job
// calls checkpoint() between its steps, where waiting interactive jobs run before it continues.
// Every state change is persisted (atomically) so `jobs.list` after a restart shows what happened,
// and resumable jobs interrupted by a stop or a crash continue at the next start.
#include <any>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "protocol/image_ref.h"
#include "service/images/image_leases.h"
#include "service/jobs/job_context.h"
#include "service/jobs/job_store.h"

namespace kiln::service {

class Scheduler {
 public:
  enum class Event { State, Progress };
  using Observer = std::function<void(const JobRecord& record, Event event, const std::optional<protocol::ImageRef>& preview)>;

  Scheduler(JobStore& store, ImageLeases& leases);
  ~Scheduler();

  void register_type(JobType type);
  void set_observer(Observer observer);  // called from the worker and request threads

  // Loads persisted records: resumable jobs that were queued, running or stopped with the daemon
  // are queued again; others that were cut off are marked failed with the reason.
  void recover();
  void start();
  // Stops taking work, interrupts the running job at its next checkpoint and waits up to `grace`.
  // Returns false if the job did not reach a checkpoint in time (its record says so anyway).
  bool stop(std::chrono::milliseconds grace);

  // `attachment` travels with the job in memory only (input pixels and the like).
  JobRecord submit(const std::string& type, Json params, const std::string& client,
                   std::optional<JobPriority> priority = std::nullopt, std::any attachment = {});
  // The type's plan for these params (JobType::plan), checked as submit() checks them; nothing is queued.
  Json plan(const std::string& type, const Json& params) const;
  JobRecord get(const std::string& id) const;
  std::vector<JobRecord> list(std::optional<JobState> state, std::size_t limit) const;
  JobRecord cancel(const std::string& id);
  JobRecord pause(const std::string& id);
  JobRecord resume(const std::string& id);
  Json queue_summary() const;
  bool knows_type(const std::string& type) const;

 private:
  struct Job;
  class Context;

  std::shared_ptr<Job> find(const std::string& id) const;  // throws NotFound; lock held
  std::shared_ptr<Job> next_job(bool interactive_only);    // lock held
  void worker_loop();
  void execute(const std::shared_ptr<Job>& job);           // worker thread, lock NOT held
  void checkpoint(Job& job);                               // worker thread
  void report(Job& job, int64_t step, int64_t total, const std::string& message, const Json& extra);
  void preview(Job& job, ipc::ShmImage image);
  void save_resume_state(Job& job, const Json& state);
  void set_state(Job& job, JobState state, const std::string& message);  // lock held
  // Snapshot under the lock, then persist and notify outside it.
  void publish(Job& job, Event event, bool persist, std::unique_lock<std::mutex>& lock,
               const std::optional<protocol::ImageRef>& preview = std::nullopt);
  std::string new_job_id() const;  // lock held

  JobStore& store_;
  ImageLeases& leases_;
  Observer observer_;
  std::map<std::string, JobType> types_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::map<std::string, std::shared_ptr<Job>> jobs_;
  std::deque<std::shared_ptr<Job>> interactive_queue_, long_queue_;
  std::shared_ptr<Job> running_;  // the outermost job on the worker
  bool stopping_ = false;
  bool worker_done_ = false;
  std::thread worker_;

  std::mutex persist_mutex_;  // orders writes of the same record
};

}  // namespace kiln::service
