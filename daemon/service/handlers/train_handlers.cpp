// train and lora.grid: both queue a job on the device worker (the job types check the request
// first, so a bad config is refused here, before anything is queued).
#include "protocol/methods.h"
#include "service/jobs/scheduler.h"
#include "service/server/session.h"

namespace kiln::service {

using Json = nlohmann::json;

namespace {

Json train(Call& call) { return to_json(call.services.scheduler.submit("train", call.params, call.session.client_name())); }

Json grid(Call& call) { return to_json(call.services.scheduler.submit("lora.grid", call.params, call.session.client_name())); }

}  // namespace

void register_train_handlers(Dispatcher& d) {
  d.add(protocol::method::kTrain, train);
  d.add(protocol::method::kLoraGrid, grid);
}

}  // namespace kiln::service
