#pragma once
// What Kiln remembers about a job, as persisted in jobs/<id>/job.json and sent to clients.
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace kiln::service {

using Json = nlohmann::json;

enum class JobState { Queued, Running, Paused, Done, Failed, Cancelled };
enum class JobPriority { Interactive, Long };  // interactive jobs run before long ones

const char* to_string(JobState state);
const char* to_string(JobPriority priority);
std::optional<JobState> job_state_from_string(const std::string& s);
std::optional<JobPriority> job_priority_from_string(const std::string& s);
bool is_finished(JobState state);

struct JobProgress {
  double fraction = 0;    // 0..1
  int64_t step = 0;
  int64_t total = 0;
  double eta_s = -1;      // -1 while unknown
  double steps_per_s = 0;
  std::string message;
  Json extra = Json::object();  // job-specific live values (loss, epoch, learning rate, ...)
};

struct JobError {
  int code = 0;
  std::string message;
};

struct JobRecord {
  std::string id;
  std::string type;
  JobState state = JobState::Queued;
  JobPriority priority = JobPriority::Long;
  std::string client;           // the client that submitted it
  std::string created_at, started_at, finished_at;  // ISO 8601 UTC, empty until it happens
  JobProgress progress;
  Json params = Json::object();
  Json result;                  // null until done
  std::optional<JobError> error;
  bool resumable = false;       // its type can continue from saved state after a restart
  bool resume_on_start = false; // interrupted by a daemon stop: continue at the next start
  Json resume_state;            // small state the job saved for resuming (null if none)
  int attempts = 0;             // how many times it has been started
};

Json to_json(const JobRecord& record);
JobRecord job_record_from_json(const Json& j);  // throws nlohmann::json::exception on bad shape
Json to_json(const JobProgress& progress);

std::string utc_now_iso8601();

}  // namespace kiln::service
