#include "service/jobs/job_record.h"

#include <chrono>
#include <ctime>

namespace kiln::service {

const char* to_string(JobState state) {
  switch (state) {
    case JobState::Queued: return "queued";
    case JobState::Running: return "running";
    case JobState::Paused: return "paused";
    case JobState::Done: return "done";
    case JobState::Failed: return "failed";
    case JobState::Cancelled: return "cancelled";
  }
  return "?";
}

const char* to_string(JobPriority priority) { return priority == JobPriority::Interactive ? "interactive" : "long"; }

std::optional<JobState> job_state_from_string(const std::string& s) {
  for (JobState st : {JobState::Queued, JobState::Running, JobState::Paused, JobState::Done, JobState::Failed,
                      JobState::Cancelled})
    if (s == to_string(st)) return st;
  return std::nullopt;
}

std::optional<JobPriority> job_priority_from_string(const std::string& s) {
  if (s == "interactive") return JobPriority::Interactive;
  if (s == "long") return JobPriority::Long;
  return std::nullopt;
}

bool is_finished(JobState state) {
  return state == JobState::Done || state == JobState::Failed || state == JobState::Cancelled;
}

Json to_json(const JobProgress& p) {
  return {{"fraction", p.fraction}, {"step", p.step},       {"total", p.total},
          {"eta_s", p.eta_s},       {"steps_per_s", p.steps_per_s}, {"message", p.message},
          {"extra", p.extra}};
}

Json to_json(const JobRecord& r) {
  Json j{{"id", r.id},
         {"type", r.type},
         {"state", to_string(r.state)},
         {"priority", to_string(r.priority)},
         {"client", r.client},
         {"created_at", r.created_at},
         {"started_at", r.started_at},
         {"finished_at", r.finished_at},
         {"progress", to_json(r.progress)},
         {"params", r.params},
         {"result", r.result},
         {"error", nullptr},
         {"resumable", r.resumable},
         {"resume_on_start", r.resume_on_start},
         {"resume_state", r.resume_state},
         {"attempts", r.attempts}};
  if (r.error) j["error"] = {{"code", r.error->code}, {"message", r.error->message}};
  return j;
}

JobRecord job_record_from_json(const Json& j) {
  JobRecord r;
  r.id = j.at("id").get<std::string>();
  r.type = j.at("type").get<std::string>();
  auto state = job_state_from_string(j.at("state").get<std::string>());
  if (!state) throw std::runtime_error("unknown job state '" + j.at("state").get<std::string>() + "'");
  r.state = *state;
  r.priority = job_priority_from_string(j.value("priority", std::string("long"))).value_or(JobPriority::Long);
  r.client = j.value("client", "");
  r.created_at = j.value("created_at", "");
  r.started_at = j.value("started_at", "");
  r.finished_at = j.value("finished_at", "");
  if (const Json& p = j.value("progress", Json::object()); p.is_object()) {
    r.progress.fraction = p.value("fraction", 0.0);
    r.progress.step = p.value("step", int64_t{0});
    r.progress.total = p.value("total", int64_t{0});
    r.progress.eta_s = p.value("eta_s", -1.0);
    r.progress.steps_per_s = p.value("steps_per_s", 0.0);
    r.progress.message = p.value("message", "");
    r.progress.extra = p.value("extra", Json::object());
  }
  r.params = j.value("params", Json::object());
  r.result = j.value("result", Json());
  if (const Json& e = j.value("error", Json()); e.is_object())
    r.error = JobError{e.value("code", 0), e.value("message", "")};
  r.resumable = j.value("resumable", false);
  r.resume_on_start = j.value("resume_on_start", false);
  r.resume_state = j.value("resume_state", Json());
  r.attempts = j.value("attempts", 0);
  return r;
}

std::string utc_now_iso8601() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

}  // namespace kiln::service
