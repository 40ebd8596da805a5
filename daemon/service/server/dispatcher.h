#pragma once
// Method name → handler. Every method the protocol defines (shared/protocol/methods.h) must
// have exactly one handler; the daemon checks this at start-up.
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "service/server/services.h"

namespace kiln::service {

class Session;

struct Call {
  const nlohmann::json& params;  // already validated against the method's spec
  Session& session;
  Services& services;
};

using Handler = std::function<nlohmann::json(Call& call)>;

class Dispatcher {
 public:
  void add(const std::string& method, Handler handler);
  const Handler* find(const std::string& method) const;
  // Methods of the protocol without a handler, and handlers for methods the protocol lacks.
  std::vector<std::string> mismatches() const;

 private:
  std::map<std::string, Handler> handlers_;
};

// Each area registers its methods (handlers/*.cpp).
void register_core_handlers(Dispatcher& dispatcher);
void register_job_handlers(Dispatcher& dispatcher);
void register_image_handlers(Dispatcher& dispatcher);
void register_model_handlers(Dispatcher& dispatcher);
void register_generate_handlers(Dispatcher& dispatcher);
void register_lora_handlers(Dispatcher& dispatcher);
void register_dataset_handlers(Dispatcher& dispatcher);
void register_train_handlers(Dispatcher& dispatcher);
void register_remote_handlers(Dispatcher& dispatcher);

}  // namespace kiln::service
