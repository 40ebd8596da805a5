// remote.tokens.create|list|revoke (local socket only) and files.upload|download (remote only).
#include <filesystem>

#include "protocol/methods.h"
#include "service/errors.h"
#include "service/remote/remote_access.h"
#include "service/server/server.h"
#include "service/server/session.h"

namespace kiln::service {

using protocol::ErrorCode;
using Json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

RemoteAccess& remote_of(Call& call) {
  if (!call.services.remote) throw ServiceError(ErrorCode::Unsupported, "this kilnd was built without remote access");
  return *call.services.remote;
}

// What a person pairing a laptop needs besides the token.
Json listener(RemoteAccess& remote) {
  if (!remote.listening()) return {{"listening", false}};
  return {{"listening", true}, {"address", remote.address()}, {"fingerprint", remote.fingerprint()}};
}

Json tokens_create(Call& call) {
  RemoteAccess& remote = remote_of(call);
  const auto created = remote.tokens().create(call.params.value("name", ""), call.params.value("read_only", false));
  Json out = to_json(created.info);
  out["token"] = created.token;
  out["listener"] = listener(remote);
  return out;
}

Json tokens_list(Call& call) {
  RemoteAccess& remote = remote_of(call);
  Json tokens = Json::array();
  for (const TokenInfo& t : remote.tokens().list()) tokens.push_back(to_json(t));
  return {{"tokens", tokens}, {"listener", listener(remote)}};
}

Json tokens_revoke(Call& call) {
  RemoteAccess& remote = remote_of(call);
  const std::string which = call.params.at("id").get<std::string>();
  const auto revoked = remote.tokens().revoke(which);
  if (!revoked)
    throw ServiceError(ErrorCode::NotFound, "no token has the id or name '" + which.substr(0, 64) +
                                                "'; `kiln remote token list` shows them");
  const std::size_t closed = call.services.server ? call.services.server->close_sessions_of_token(revoked->id) : 0;
  Json out = to_json(*revoked);
  out["closed_sessions"] = closed;
  return out;
}

Json files_upload(Call& call) {
  RemoteAccess& remote = remote_of(call);
  const auto file = call.session.uploaded_file();
  if (!file)
    throw ServiceError(ErrorCode::InvalidParams, "files.upload: the request carries no file attachment (kiln::Client::upload_file sends one)");
  const uint64_t bytes = fs::file_size(*file);
  const fs::path stored =
      remote.store_upload(*file, call.params.at("name").get<std::string>(), call.params.value("folder", ""));
  return {{"path", stored.string()}, {"bytes", bytes}, {"folder", stored.parent_path().filename().string()}};
}

Json files_download(Call& call) {
  RemoteAccess& remote = remote_of(call);
  const fs::path file = remote.downloadable(call.params.at("path").get<std::string>());
  call.session.send_file_with_answer(file);
  return {{"path", file.string()}, {"bytes", fs::file_size(file)}};
}

}  // namespace

void register_remote_handlers(Dispatcher& d) {
  d.add(protocol::method::kRemoteTokensCreate, tokens_create);
  d.add(protocol::method::kRemoteTokensList, tokens_list);
  d.add(protocol::method::kRemoteTokensRevoke, tokens_revoke);
  d.add(protocol::method::kFilesUpload, files_upload);
  d.add(protocol::method::kFilesDownload, files_download);
}

}  // namespace kiln::service
