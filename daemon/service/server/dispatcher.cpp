#include "service/server/dispatcher.h"

#include <stdexcept>

#include "protocol/methods.h"

namespace kiln::service {

void Dispatcher::add(const std::string& method, Handler handler) {
  if (!handlers_.emplace(method, std::move(handler)).second)
    throw std::logic_error("two handlers registered for method '" + method + "'");
}

const Handler* Dispatcher::find(const std::string& method) const {
  auto it = handlers_.find(method);
  return it == handlers_.end() ? nullptr : &it->second;
}

std::vector<std::string> Dispatcher::mismatches() const {
  std::vector<std::string> out;
  for (const auto& spec : protocol::all_methods())
    if (!handlers_.count(spec.name)) out.push_back(std::string("no handler for ") + spec.name);
  for (const auto& [name, handler] : handlers_)
    if (!protocol::find_method(name)) out.push_back("handler for unknown method " + name);
  return out;
}

}  // namespace kiln::service
