// models.list, models.add, models.remove.
#include "protocol/methods.h"
#include "service/library/model_registry.h"
#include "service/server/session.h"

namespace kiln::service {

using Json = nlohmann::json;

namespace {

Json list(Call& call) {
  Json models = Json::array();
  for (const ModelEntry& e : call.services.models.list()) models.push_back(to_json(e));
  return {{"models", models}};
}

Json add(Call& call) {
  return to_json(call.services.models.add(call.params.at("path").get<std::string>(), call.params.value("name", "")));
}

Json remove(Call& call) {
  const std::string name = call.params.at("name");
  call.services.models.remove(name);
  return {{"removed", name}};
}

}  // namespace

void register_model_handlers(Dispatcher& d) {
  d.add(protocol::method::kModelsList, list);
  d.add(protocol::method::kModelsAdd, add);
  d.add(protocol::method::kModelsRemove, remove);
}

}  // namespace kiln::service
