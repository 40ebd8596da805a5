// loras.list, loras.get, loras.add, loras.remove.
#include "protocol/methods.h"
#include "service/library/lora_library.h"
#include "service/server/session.h"

namespace kiln::service {

using Json = nlohmann::json;

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

}  // namespace

void register_lora_handlers(Dispatcher& d) {
  d.add(protocol::method::kLorasList, list);
  d.add(protocol::method::kLorasGet, get);
  d.add(protocol::method::kLorasAdd, add);
  d.add(protocol::method::kLorasRemove, remove);
}

}  // namespace kiln::service
