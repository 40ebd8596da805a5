// hello, status, shutdown.
#include <unistd.h>

#include "protocol/methods.h"
#include "protocol/version.h"
#include "service/errors.h"
#include "service/jobs/scheduler.h"
#include "service/remote/remote_access.h"
#include "service/server/server.h"
#include "service/server/session.h"

namespace kiln::service {

using protocol::ErrorCode;
using Json = nlohmann::json;

namespace {

Json hello(Call& call) {
  const int client_max = call.params.at("protocol").get<int>();
  const int client_min = call.params.value("min_protocol", client_max);
  const int chosen = std::min(client_max, protocol::kProtocolVersion);
  if (client_min > client_max || chosen < std::max(client_min, protocol::kMinProtocolVersion))
    throw ServiceError(ErrorCode::ProtocolMismatch,
                       "this kilnd speaks protocol " + std::to_string(protocol::kMinProtocolVersion) + ".." +
                           std::to_string(protocol::kProtocolVersion) + " but the client speaks " +
                           std::to_string(client_min) + ".." + std::to_string(client_max) +
                           "; update the older of the two",
                       {{"daemon_min", protocol::kMinProtocolVersion}, {"daemon_max", protocol::kProtocolVersion}});
  call.session.set_hello(call.params.at("client").get<std::string>().substr(0, 200), chosen);
  Json methods = Json::array();
  const auto& grant = call.session.grant();
  for (const auto& spec : protocol::all_methods()) {
    // A remote client is told only what its token lets it call.
    if (call.session.is_remote() &&
        (spec.access == protocol::Access::Local || (grant && grant->read_only && spec.access == protocol::Access::Write)))
      continue;
    if (!call.session.is_remote() && spec.access == protocol::Access::Remote) continue;
    methods.push_back(spec.name);
  }
  Json info = {{"daemon", "kilnd"},
               {"version", call.services.info.version},
               {"protocol", chosen},
               {"device", call.services.info.device},
               {"pid", ::getpid()},
               {"session", call.session.id()},
               {"methods", methods}};
  if (call.session.is_remote() && grant) info["remote"] = {{"token", grant->token_name}, {"read_only", grant->read_only}};
  return info;
}

// The TLS listener, for `kiln status` on the daemon's machine (remote clients see only whether it listens).
Json remote_status(Call& call) {
  const RemoteAccess* remote = call.services.remote;
  if (!remote || !remote->listening()) return {{"listening", false}};
  Json r{{"listening", true}, {"address", remote->address()}, {"fingerprint", remote->fingerprint()}};
  if (call.services.server) r["clients"] = call.services.server->remote_session_count();
  return r;
}

Json status(Call& call) {
  const DaemonInfo& info = call.services.info;
  const double uptime = std::chrono::duration<double>(std::chrono::steady_clock::now() - info.started).count();
  return {{"version", info.version},
          {"protocol", protocol::kProtocolVersion},
          {"device", info.device},
          {"pid", ::getpid()},
          {"uptime_s", uptime},
          {"socket", info.socket_path.string()},
          {"data_dir", info.data_dir.string()},
          {"clients", call.services.server ? call.services.server->session_count() : 0},
          {"queue", call.services.scheduler.queue_summary()},
          {"remote", remote_status(call)}};
}

Json shutdown(Call& call) {
  if (call.services.request_shutdown) call.services.request_shutdown();
  return {{"stopping", true}};
}

}  // namespace

void register_core_handlers(Dispatcher& d) {
  d.add(protocol::method::kHello, hello);
  d.add(protocol::method::kStatus, status);
  d.add(protocol::method::kShutdown, shutdown);
}

}  // namespace kiln::service
