#include "service/jobs/scheduler.h"

#include <algorithm>
#include <random>

#include <spdlog/spdlog.h>

#include "service/errors.h"

namespace kiln::service {

using protocol::ErrorCode;
using Clock = std::chrono::steady_clock;

namespace {
constexpr auto kNotifyInterval = std::chrono::milliseconds(50);  // at most ~20 progress notes/s per job
constexpr auto kPersistInterval = std::chrono::seconds(1);       // progress is persisted at most once a second
}  // namespace

struct Scheduler::Job {
  JobRecord record;
  const JobType* type = nullptr;
  bool cancel_requested = false;
  bool pause_requested = false;
  bool on_worker = false;          // inside execute()
  uint64_t version = 0;            // bumped on every change; orders persisted writes
  uint64_t persisted_version = 0;
  Clock::time_point last_notify{}, last_persist{};
  // Rate estimate for the ETA: exponential moving average of steps per second.
  std::any attachment;
  Clock::time_point rate_time{};
  int64_t rate_step = -1;
  double rate = 0;
};

class Scheduler::Context final : public JobContext {
 public:
  Context(Scheduler& scheduler, Job& job, Json params, Json resume_state, std::filesystem::path dir)
      : scheduler_(scheduler), job_(job), params_(std::move(params)), resume_(std::move(resume_state)), dir_(std::move(dir)) {}
  const std::any& attachment() const override { return job_.attachment; }
  const std::string& id() const override { return job_.record.id; }
  const Json& params() const override { return params_; }
  const Json& resume_state() const override { return resume_; }
  std::filesystem::path dir() const override { return dir_; }
  void report(int64_t step, int64_t total, const std::string& message, const Json& extra) override {
    scheduler_.report(job_, step, total, message, extra);
  }
  void preview(ipc::ShmImage image) override { scheduler_.preview(job_, std::move(image)); }
  void save_resume_state(const Json& state) override { scheduler_.save_resume_state(job_, state); }
  void checkpoint() override { scheduler_.checkpoint(job_); }
  bool stop_requested() const override {
    std::lock_guard lock(scheduler_.mutex_);
    return job_.cancel_requested || scheduler_.stopping_;
  }

 private:
  Scheduler& scheduler_;
  Job& job_;
  Json params_;
  Json resume_;
  std::filesystem::path dir_;
};

Scheduler::Scheduler(JobStore& store, ImageLeases& leases) : store_(store), leases_(leases) {}

Scheduler::~Scheduler() { stop(std::chrono::seconds(60)); }

void Scheduler::register_type(JobType type) {
  std::string name = type.name;
  types_[name] = std::move(type);
}

void Scheduler::set_observer(Observer observer) { observer_ = std::move(observer); }

bool Scheduler::knows_type(const std::string& type) const { return types_.count(type) > 0; }

Json Scheduler::plan(const std::string& type_name, const Json& params) const {
  auto type = types_.find(type_name);
  if (type == types_.end() || !type->second.plan)
    throw ServiceError(ErrorCode::InvalidParams, "jobs of type '" + type_name + "' cannot be planned");
  return type->second.plan(params);
}

std::string Scheduler::new_job_id() const {
  static thread_local std::mt19937 rng{std::random_device{}()};
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  for (;;) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%04d%02d%02d-%02d%02d%02d-%04x", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<unsigned>(rng() & 0xffff));
    if (!jobs_.count(buf)) return buf;
  }
}

void Scheduler::recover() {
  std::vector<JobRecord> records = store_.load_all();
  std::sort(records.begin(), records.end(), [](const JobRecord& a, const JobRecord& b) { return a.created_at < b.created_at; });
  std::unique_lock lock(mutex_);
  for (JobRecord& r : records) {
    auto job = std::make_shared<Job>();
    auto type = types_.find(r.type);
    job->type = type == types_.end() ? nullptr : &type->second;
    const bool was_cut_off = r.state == JobState::Running || r.state == JobState::Queued ||
                             (r.state == JobState::Paused && r.resume_on_start);
    const bool held_by_user = r.state == JobState::Paused && !r.resume_on_start;
    job->record = std::move(r);
    jobs_[job->record.id] = job;
    if (!was_cut_off || held_by_user) continue;
    if (job->type && job->record.resumable) {
      job->record.state = JobState::Queued;
      job->record.resume_on_start = false;
      job->record.progress.message = "resuming after a daemon restart";
      (job->record.priority == JobPriority::Interactive ? interactive_queue_ : long_queue_).push_back(job);
      spdlog::info("job {} ({}) will resume from where it stopped", job->record.id, job->record.type);
    } else {
      job->record.state = JobState::Failed;
      job->record.finished_at = utc_now_iso8601();
      job->record.error = JobError{static_cast<int>(ErrorCode::JobFailed),
                                   job->type ? "the daemon stopped (crash, kill or shutdown) before this job finished; run it again"
                                             : "job type '" + job->record.type + "' is unknown to this version of Kiln"};
      spdlog::info("job {} ({}) was cut off by the last daemon stop; marked failed", job->record.id, job->record.type);
    }
    ++job->version;
    store_.save(job->record);
    job->persisted_version = job->version;
  }
}

void Scheduler::start() {
  std::lock_guard lock(mutex_);
  if (worker_.joinable()) return;
  stopping_ = false;
  worker_done_ = false;
  worker_ = std::thread([this] { worker_loop(); });
}

bool Scheduler::stop(std::chrono::milliseconds grace) {
  std::unique_lock lock(mutex_);
  stopping_ = true;
  wake_.notify_all();
  if (!worker_.joinable()) return true;
  const bool finished = wake_.wait_for(lock, grace, [this] { return worker_done_; });
  if (!finished) {
    // A step that will not end soon: record what is happening; the process is about to exit.
    if (running_) {
      running_->record.progress.message = "the daemon stopped in the middle of a step";
      if (running_->type && running_->record.resumable) {
        running_->record.state = JobState::Paused;
        running_->record.resume_on_start = true;
      }
      store_.save(running_->record);
    }
    worker_.detach();
    return false;
  }
  lock.unlock();
  worker_.join();
  return true;
}

std::shared_ptr<Scheduler::Job> Scheduler::find(const std::string& id) const {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) throw ServiceError(ErrorCode::NotFound, "no job with id '" + id + "' (`kiln jobs list` shows them)");
  return it->second;
}

JobRecord Scheduler::submit(const std::string& type_name, Json params, const std::string& client,
                            std::optional<JobPriority> priority, std::any attachment) {
  auto type = types_.find(type_name);
  if (type == types_.end()) throw ServiceError(ErrorCode::InvalidParams, "unknown job type '" + type_name + "'");
  if (type->second.validate) type->second.validate(params);
  std::unique_lock lock(mutex_);
  if (stopping_) throw ServiceError(ErrorCode::ShuttingDown, "the daemon is shutting down and takes no new jobs");
  auto job = std::make_shared<Job>();
  job->type = &type->second;
  job->attachment = std::move(attachment);
  JobRecord& r = job->record;
  r.id = new_job_id();
  r.type = type_name;
  r.priority = priority.value_or(type->second.priority);
  r.client = client;
  r.created_at = utc_now_iso8601();
  r.params = std::move(params);
  r.resumable = type->second.resumable;
  r.progress.message = "queued";
  jobs_[r.id] = job;
  (r.priority == JobPriority::Interactive ? interactive_queue_ : long_queue_).push_back(job);
  ++job->version;
  JobRecord queued = job->record;  // as submitted: the worker may pick it up at once
  publish(*job, Event::State, true, lock);
  wake_.notify_all();
  return queued;
}

JobRecord Scheduler::get(const std::string& id) const {
  std::lock_guard lock(mutex_);
  return find(id)->record;
}

std::vector<JobRecord> Scheduler::list(std::optional<JobState> state, std::size_t limit) const {
  std::vector<JobRecord> out;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, job] : jobs_)
      if (!state || job->record.state == *state) out.push_back(job->record);
  }
  std::sort(out.begin(), out.end(), [](const JobRecord& a, const JobRecord& b) { return a.created_at > b.created_at; });
  if (out.size() > limit) out.resize(limit);
  return out;
}

JobRecord Scheduler::cancel(const std::string& id) {
  std::unique_lock lock(mutex_);
  auto job = find(id);
  JobRecord& r = job->record;
  if (is_finished(r.state))
    throw ServiceError(ErrorCode::InvalidState, "job " + id + " already ended (" + to_string(r.state) + ")");
  if (job->on_worker) {
    job->cancel_requested = true;  // it stops at its next checkpoint
    r.progress.message = "cancelling";
    ++job->version;
    publish(*job, Event::Progress, false, lock);
    wake_.notify_all();
    return job->record;
  }
  for (auto* queue : {&interactive_queue_, &long_queue_})
    queue->erase(std::remove(queue->begin(), queue->end(), job), queue->end());
  job->attachment.reset();
  r.finished_at = utc_now_iso8601();
  set_state(*job, JobState::Cancelled, "cancelled before it ran");
  publish(*job, Event::State, true, lock);
  return job->record;
}

JobRecord Scheduler::pause(const std::string& id) {
  std::unique_lock lock(mutex_);
  auto job = find(id);
  JobRecord& r = job->record;
  if (is_finished(r.state)) throw ServiceError(ErrorCode::InvalidState, "job " + id + " already ended (" + to_string(r.state) + ")");
  if (r.priority == JobPriority::Interactive)
    throw ServiceError(ErrorCode::InvalidState, "job " + id + " is interactive and short; cancel it instead of pausing");
  if (job->pause_requested || (r.state == JobState::Paused && !job->on_worker)) return r;
  if (job->on_worker) {
    job->pause_requested = true;  // takes effect at its next checkpoint
    r.progress.message = "pausing";
    ++job->version;
    publish(*job, Event::Progress, false, lock);
    return job->record;
  }
  long_queue_.erase(std::remove(long_queue_.begin(), long_queue_.end(), job), long_queue_.end());
  set_state(*job, JobState::Paused, "paused before it started; `kiln jobs resume " + id + "` continues");
  publish(*job, Event::State, true, lock);
  return job->record;
}

JobRecord Scheduler::resume(const std::string& id) {
  std::unique_lock lock(mutex_);
  if (stopping_) throw ServiceError(ErrorCode::ShuttingDown, "the daemon is shutting down");
  auto job = find(id);
  JobRecord& r = job->record;
  if (job->on_worker) {
    if (!job->pause_requested) return r;
    job->pause_requested = false;
    r.progress.message = "resuming";
    ++job->version;
    publish(*job, Event::Progress, false, lock);
    wake_.notify_all();
    return job->record;
  }
  const bool held = r.state == JobState::Paused;
  const bool retry = (r.state == JobState::Failed || r.state == JobState::Cancelled) && r.resumable && !r.resume_state.is_null();
  if (!held && !retry) {
    if (r.state == JobState::Queued) return r;
    throw ServiceError(ErrorCode::InvalidState,
                       "job " + id + " is " + to_string(r.state) +
                           (r.resumable ? " and saved no state to continue from" : " and its type cannot be resumed"));
  }
  if (!job->type) throw ServiceError(ErrorCode::Unsupported, "job type '" + r.type + "' is unknown to this version of Kiln");
  r.error.reset();
  r.finished_at.clear();
  r.resume_on_start = false;
  set_state(*job, JobState::Queued, retry ? "queued to continue from its last saved state" : "queued");
  (r.priority == JobPriority::Interactive ? interactive_queue_ : long_queue_).push_back(job);
  publish(*job, Event::State, true, lock);
  wake_.notify_all();
  return job->record;
}

Json Scheduler::queue_summary() const {
  std::lock_guard lock(mutex_);
  Json running = nullptr;
  int queued = 0, paused = 0, active = 0;
  for (const auto& [id, job] : jobs_) {
    switch (job->record.state) {
      case JobState::Queued: ++queued; break;
      case JobState::Paused: ++paused; break;
      case JobState::Running: ++active; break;
      default: break;
    }
  }
  if (running_) running = running_->record.id;
  return {{"queued", queued}, {"running", active}, {"paused", paused}, {"current_job", running},
          {"waiting_interactive", interactive_queue_.size()}, {"waiting_long", long_queue_.size()}};
}

std::shared_ptr<Scheduler::Job> Scheduler::next_job(bool interactive_only) {
  auto* queue = !interactive_queue_.empty() ? &interactive_queue_ : (interactive_only ? nullptr : &long_queue_);
  if (!queue || queue->empty()) return nullptr;
  auto job = queue->front();
  queue->pop_front();
  return job;
}

void Scheduler::worker_loop() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    auto job = next_job(false);
    if (!job) {
      wake_.wait(lock, [this] { return stopping_ || !interactive_queue_.empty() || !long_queue_.empty(); });
      continue;
    }
    running_ = job;
    lock.unlock();
    execute(job);
    lock.lock();
    running_.reset();
  }
  worker_done_ = true;
  wake_.notify_all();
}

void Scheduler::execute(const std::shared_ptr<Job>& job) {
  std::unique_lock lock(mutex_);
  JobRecord& r = job->record;
  job->on_worker = true;
  job->cancel_requested = false;
  job->rate_step = -1;
  job->rate = 0;
  if (r.started_at.empty()) r.started_at = utc_now_iso8601();
  ++r.attempts;
  set_state(*job, JobState::Running, r.resume_state.is_null() ? "started" : "continuing from saved state");
  publish(*job, Event::State, true, lock);
  Context context(*this, *job, r.params, r.resume_state, store_.job_dir(r.id));
  const JobType* type = job->type;
  lock.unlock();

  Json result;
  std::optional<JobState> outcome;
  std::optional<JobError> error;
  std::string message;
  try {
    result = type->run(context);
    outcome = JobState::Done;
    message = "done";
  } catch (const JobCancelled&) {
    outcome = JobState::Cancelled;
    message = "cancelled";
  } catch (const JobInterrupted&) {
    message = "stopped with the daemon";
  } catch (...) {
    MappedError e = map_current_exception();
    if (e.code == ErrorCode::Cancelled) {
      outcome = JobState::Cancelled;
      message = "cancelled";
    } else {
      outcome = JobState::Failed;
      error = JobError{static_cast<int>(e.code), e.message};
      message = "failed: " + e.message;
      spdlog::error("job {} ({}) failed: {}", r.id, r.type, e.message);
    }
  }

  lock.lock();
  job->on_worker = false;
  job->pause_requested = false;
  if (outcome) job->attachment.reset();  // inputs are not needed once the job has ended
  if (!outcome) {  // interrupted by a shutdown
    if (r.resumable) {
      r.resume_on_start = true;
      set_state(*job, JobState::Paused, "stopped with the daemon; continues when it starts again");
    } else {
      r.finished_at = utc_now_iso8601();
      r.error = JobError{static_cast<int>(ErrorCode::ShuttingDown), "the daemon was shut down while this job ran; run it again"};
      set_state(*job, JobState::Failed, "stopped with the daemon");
    }
  } else {
    r.finished_at = utc_now_iso8601();
    r.error = error;
    if (*outcome == JobState::Done) {
      r.result = std::move(result);
      r.progress.fraction = 1.0;
      r.progress.eta_s = 0;
    }
    set_state(*job, *outcome, message);
  }
  publish(*job, Event::State, true, lock);
}

void Scheduler::checkpoint(Job& job) {
  std::unique_lock lock(mutex_);
  for (;;) {
    if (job.cancel_requested) throw JobCancelled();
    if (stopping_) throw JobInterrupted();
    if (job.record.priority == JobPriority::Long && !interactive_queue_.empty()) {
      // Yield the device: run every waiting interactive job, then carry on.
      const JobState before = job.record.state;
      set_state(job, JobState::Paused, "waiting while an interactive job runs");
      publish(job, Event::State, false, lock);
      while (auto next = next_job(true)) {
        lock.unlock();
        execute(next);
        lock.lock();
        if (stopping_) break;
      }
      if (before == JobState::Running && !job.pause_requested) {
        set_state(job, JobState::Running, "running");
        publish(job, Event::State, false, lock);
      }
      job.rate_step = -1;  // the wait is not part of this job's speed
      continue;
    }
    if (job.pause_requested) {
      if (job.record.state != JobState::Paused) {
        set_state(job, JobState::Paused, "paused; `kiln jobs resume " + job.record.id + "` continues");
        publish(job, Event::State, true, lock);
      }
      wake_.wait(lock, [&] { return !job.pause_requested || job.cancel_requested || stopping_ || !interactive_queue_.empty(); });
      job.rate_step = -1;
      continue;
    }
    if (job.record.state == JobState::Paused) {
      set_state(job, JobState::Running, "running");
      publish(job, Event::State, true, lock);
    }
    return;
  }
}

void Scheduler::report(Job& job, int64_t step, int64_t total, const std::string& message, const Json& extra) {
  std::unique_lock lock(mutex_);
  JobProgress& p = job.record.progress;
  const auto now = Clock::now();
  if (job.rate_step >= 0 && step > job.rate_step) {
    const double dt = std::chrono::duration<double>(now - job.rate_time).count();
    if (dt > 0) {
      const double instant = double(step - job.rate_step) / dt;
      job.rate = job.rate > 0 ? 0.8 * job.rate + 0.2 * instant : instant;
    }
  }
  if (step != job.rate_step) {
    job.rate_step = step;
    job.rate_time = now;
  }
  p.step = step;
  p.total = total;
  p.fraction = total > 0 ? std::clamp(double(step) / double(total), 0.0, 1.0) : 0.0;
  p.steps_per_s = job.rate;
  p.eta_s = job.rate > 0 && total >= step ? double(total - step) / job.rate : -1;
  p.message = message;
  p.extra = extra.is_object() ? extra : Json::object();
  ++job.version;
  const bool last = total > 0 && step >= total;
  if (now - job.last_notify >= kNotifyInterval || last) {
    job.last_notify = now;
    const bool persist = now - job.last_persist >= kPersistInterval || last;
    if (persist) job.last_persist = now;
    publish(job, Event::Progress, persist, lock);
  }
}

void Scheduler::preview(Job& job, ipc::ShmImage image) {
  protocol::ImageRef ref = leases_.keep_preview(job.record.id, std::move(image));
  std::unique_lock lock(mutex_);
  publish(job, Event::Progress, false, lock, ref);
}

void Scheduler::save_resume_state(Job& job, const Json& state) {
  std::unique_lock lock(mutex_);
  job.record.resume_state = state;
  ++job.version;
  publish(job, Event::Progress, true, lock);
}

void Scheduler::set_state(Job& job, JobState state, const std::string& message) {
  job.record.state = state;
  job.record.progress.message = message;
  ++job.version;
}

void Scheduler::publish(Job& job, Event event, bool persist, std::unique_lock<std::mutex>& lock,
                        const std::optional<protocol::ImageRef>& preview) {
  JobRecord snapshot = job.record;
  const uint64_t version = job.version;
  Job* raw = &job;
  lock.unlock();
  if (persist) {
    std::lock_guard persist_lock(persist_mutex_);
    if (version > raw->persisted_version) {
      try {
        store_.save(snapshot);
        raw->persisted_version = version;
      } catch (const std::exception& e) {
        spdlog::error("cannot save the record of job {}: {}", snapshot.id, e.what());
      }
    }
  }
  if (observer_) observer_(snapshot, event, preview);
  lock.lock();
}

}  // namespace kiln::service
