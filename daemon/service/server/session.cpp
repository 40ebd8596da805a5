#include "service/server/session.h"

#include <spdlog/spdlog.h>

#include "protocol/jsonrpc.h"
#include "protocol/methods.h"
#include "service/errors.h"
#include "service/images/image_leases.h"

namespace kiln::service {

using protocol::ErrorCode;
using Json = nlohmann::json;

Session::Session(uint64_t id, std::shared_ptr<ipc::FramedConnection> connection, const Dispatcher& dispatcher,
                 Services& services, std::function<void(uint64_t)> on_closed)
    : id_(id), connection_(std::move(connection)), dispatcher_(dispatcher), services_(services), on_closed_(std::move(on_closed)) {}

void Session::start() {
  auto self = shared_from_this();
  connection_->start({[self](std::string payload) { self->on_frame(payload); },
                      [self](const std::string& problem) { self->on_frame_error(problem); },
                      [self](const std::string& reason) { self->on_close(reason); }});
}

void Session::close(const std::string& reason) { connection_->close(reason); }
void Session::close_after_writes(const std::string& reason) { connection_->close_after_writes(reason); }

void Session::notify(const std::string& method, const Json& params) {
  connection_->send(protocol::encode(protocol::Notification{method, params}));
}

void Session::set_hello(std::string client, int protocol) {
  client_ = std::move(client);
  protocol_ = protocol;
}

void Session::subscribe(const std::optional<std::string>& job_id) {
  std::lock_guard lock(subscriptions_mutex_);
  if (job_id) jobs_.insert(*job_id);
  else all_jobs_ = true;
}

void Session::unsubscribe(const std::optional<std::string>& job_id) {
  std::lock_guard lock(subscriptions_mutex_);
  if (job_id) {
    jobs_.erase(*job_id);
  } else {
    all_jobs_ = false;
    jobs_.clear();
  }
}

bool Session::wants_job(const std::string& job_id) const {
  std::lock_guard lock(subscriptions_mutex_);
  return all_jobs_ || jobs_.count(job_id) > 0;
}

void Session::reply_error(const Json& id, ErrorCode code, const std::string& message, const Json& data) {
  connection_->send(protocol::encode(protocol::make_error(id, code, message, data)));
}

void Session::on_frame(const std::string& payload) {
  // Defence in depth: nothing a client sends may throw out of here into the I/O thread.
  try {
    handle_frame(payload);
  } catch (const std::exception& e) {
    spdlog::error("session {} ({}): unexpected error handling a frame: {}; closing it", id_, client_, e.what());
    connection_->close("internal error");
  }
}

void Session::handle_frame(const std::string& payload) {
  auto decoded = protocol::decode_message(payload);
  if (auto* bad = std::get_if<protocol::DecodeError>(&decoded)) {
    spdlog::debug("session {} ({}): bad message: {}", id_, client_, bad->error.message);
    reply_error(bad->id, bad->error.code, bad->error.message);
    return;
  }
  auto& message = std::get<protocol::Message>(decoded);
  auto* request = std::get_if<protocol::Request>(&message);
  if (!request) return;  // clients send no notifications or responses we act on

  const protocol::MethodSpec* spec = protocol::find_method(request->method);
  const Handler* handler = spec ? dispatcher_.find(request->method) : nullptr;
  if (!spec || !handler) {
    reply_error(request->id, ErrorCode::MethodNotFound, "unknown method '" + request->method.substr(0, 100) + "'");
    return;
  }
  if (protocol_ == 0 && !spec->before_hello) {
    reply_error(request->id, ErrorCode::HelloRequired, "call 'hello' first, to agree the protocol version");
    return;
  }
  if (auto problem = protocol::validate_params(*spec, request->params)) {
    reply_error(request->id, problem->code, problem->message);
    return;
  }
  try {
    Call call{request->params, *this, services_};
    Json result = (*handler)(call);
    connection_->send(protocol::encode(protocol::make_result(request->id, std::move(result))));
  } catch (...) {
    MappedError e = map_current_exception();
    if (e.code == ErrorCode::InternalError) spdlog::error("{} from {} failed: {}", request->method, client_, e.message);
    reply_error(request->id, e.code, e.message, e.data);
  }
}

void Session::on_frame_error(const std::string& problem) {
  spdlog::warn("session {} ({}): {}; closing it", id_, client_, problem);
  connection_->send_then_close(protocol::encode(
      protocol::make_error(nullptr, ErrorCode::FrameTooLarge, problem + "; the connection is closed")));
}

void Session::on_close(const std::string& reason) {
  spdlog::debug("session {} ({}) closed: {}", id_, client_, reason);
  services_.leases.session_closed(id_);
  if (on_closed_) on_closed_(id_);
}

}  // namespace kiln::service
