// jobs.*: list, get, cancel, pause, resume, subscribe, unsubscribe, and the simulated job.
#include "protocol/methods.h"
#include "service/errors.h"
#include "service/jobs/scheduler.h"
#include "service/server/session.h"

namespace kiln::service {

using protocol::ErrorCode;
using Json = nlohmann::json;

namespace {

std::optional<std::string> optional_id(const Json& params) {
  if (!params.contains("id")) return std::nullopt;
  return params.at("id").get<std::string>();
}

Json list(Call& call) {
  std::optional<JobState> state;
  if (call.params.contains("state")) {
    state = job_state_from_string(call.params.at("state").get<std::string>());
    if (!state)
      throw ServiceError(ErrorCode::InvalidParams,
                         "jobs.list: 'state' must be one of queued, running, paused, done, failed, cancelled");
  }
  const int64_t limit = call.params.value("limit", int64_t{100});
  if (limit < 1) throw ServiceError(ErrorCode::InvalidParams, "jobs.list: 'limit' must be at least 1");
  Json jobs = Json::array();
  for (const JobRecord& r : call.services.scheduler.list(state, static_cast<std::size_t>(limit))) jobs.push_back(to_json(r));
  return {{"jobs", jobs}};
}

Json get(Call& call) { return to_json(call.services.scheduler.get(call.params.at("id").get<std::string>())); }
Json cancel(Call& call) { return to_json(call.services.scheduler.cancel(call.params.at("id").get<std::string>())); }
Json pause(Call& call) { return to_json(call.services.scheduler.pause(call.params.at("id").get<std::string>())); }
Json resume(Call& call) { return to_json(call.services.scheduler.resume(call.params.at("id").get<std::string>())); }

Json subscribe(Call& call) {
  auto id = optional_id(call.params);
  Json current = nullptr;
  if (id) current = to_json(call.services.scheduler.get(*id));  // NotFound for unknown ids
  call.session.subscribe(id);
  return {{"subscribed", id ? Json(*id) : Json("all")}, {"job", current}};
}

Json unsubscribe(Call& call) {
  call.session.unsubscribe(optional_id(call.params));
  return {{"unsubscribed", true}};
}

Json simulate(Call& call) {
  std::optional<JobPriority> priority;
  if (call.params.contains("priority")) priority = job_priority_from_string(call.params.at("priority").get<std::string>());
  return to_json(call.services.scheduler.submit("simulate", call.params, call.session.client_name(), priority));
}

}  // namespace

void register_job_handlers(Dispatcher& d) {
  d.add(protocol::method::kJobsList, list);
  d.add(protocol::method::kJobsGet, get);
  d.add(protocol::method::kJobsCancel, cancel);
  d.add(protocol::method::kJobsPause, pause);
  d.add(protocol::method::kJobsResume, resume);
  d.add(protocol::method::kJobsSubscribe, subscribe);
  d.add(protocol::method::kJobsUnsubscribe, unsubscribe);
  d.add(protocol::method::kJobsSimulate, simulate);
}

}  // namespace kiln::service
