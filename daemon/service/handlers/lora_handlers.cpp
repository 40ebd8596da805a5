// loras.list, loras.get, loras.add, loras.remove, loras.use_epoch.
#include "protocol/methods.h"
#include "service/errors.h"
#include "service/jobs/scheduler.h"
#include "service/library/lora_library.h"
#include "service/server/session.h"

namespace kiln::service {

using Json = nlohmann::json;
using protocol::ErrorCode;

namespace {

Json list(Call& call) {
  Json loras = Json::array();
  for (const LoraEntry& e : call.services.loras.list()) loras.push_back(to_json(e));
  return {{"loras", loras}};
}

Json get(Call& call) { return to_json(call.services.loras.get(call.params.at("name").get<std::string>())); }

Json add(Call& call) {
  return to_json(call.services.loras.add(call.params.at("path").get<std::string>(), call.params.value("name", "")));
}

Json remove(Call& call) {
  const std::string name = call.params.at("name");
  call.services.loras.remove(name);
  return {{"removed", name}};
}

Json use_epoch(Call& call) {
  const std::string name = call.params.at("name");
  // A training that is still writing this LoRA would overwrite the choice with its final file.
  for (JobState state : {JobState::Queued, JobState::Running, JobState::Paused})
    for (const JobRecord& r : call.services.scheduler.list(state, 1000))
      if (r.type == "train" && r.params.value("name", "") == name)
        throw ServiceError(ErrorCode::InvalidState, "the LoRA '" + name + "' is still being trained (job " + r.id +
                                                        "); choose its epoch when the training has ended, or cancel it");
  return to_json(call.services.loras.use_epoch(name, call.params.at("epoch").get<int>()));
}

}  // namespace

void register_lora_handlers(Dispatcher& d) {
  d.add(protocol::method::kLorasList, list);
  d.add(protocol::method::kLorasGet, get);
  d.add(protocol::method::kLorasAdd, add);
  d.add(protocol::method::kLorasRemove, remove);
  d.add(protocol::method::kLorasUseEpoch, use_epoch);
}

}  // namespace kiln::service
