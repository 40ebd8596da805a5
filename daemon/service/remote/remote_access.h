#pragma once
// What the daemon keeps for remote clients: the token store, the slow-down of failed attempts,
// the TLS listener's address and certificate, and the folder of uploaded files. It exists even
// when kilnd does not listen, so tokens can be made before the first --listen.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>

#include "service/remote/auth_throttle.h"
#include "service/remote/token_store.h"

namespace kiln::service {

struct RemoteSettings {
  std::string listen;                  // HOST:PORT; empty: no listener (the default)
  std::string tls_cert, tls_key;       // empty: kilnd's own certificate in <data dir>/tls
  std::chrono::milliseconds handshake_timeout{10000};  // TLS handshake, then hello with a token
  std::chrono::milliseconds auth_delay{500};           // the first failed attempt's wait; doubles
  uint64_t max_upload_bytes = 4ull << 30;              // all attachments of one request
  int max_unauthenticated_per_address = 16;            // connections still in handshake or before hello
};

class RemoteAccess {
 public:
  RemoteAccess(std::filesystem::path data_dir, RemoteSettings settings);

  TokenStore& tokens() { return tokens_; }
  AuthThrottle& throttle() { return throttle_; }
  const RemoteSettings& settings() const { return settings_; }

  void set_listening(std::string address, std::string fingerprint);
  bool listening() const;
  std::string address() const;      // "0.0.0.0:7433" as bound, "" when not listening
  std::string fingerprint() const;  // of the certificate in use, "" when not listening

  // Uploads: <data dir>/uploads/<folder>/<name>, the folder new (24 random hex digits) or one an
  // earlier upload made. `name` is reduced to its last component and checked. Moves `received`
  // (a finished temporary file) there and returns the new path. Throws ServiceError.
  std::filesystem::path store_upload(const std::filesystem::path& received, const std::string& name,
                                     const std::string& folder = "");
  std::filesystem::path incoming_file_path();  // a fresh temporary path for an arriving file
  std::size_t sweep_uploads(std::chrono::hours older_than = std::chrono::hours(24));
  // A file a remote client may download: a regular file under the data dir's outputs/, loras/
  // or datasets/ (after resolving links). Throws ServiceError saying why not.
  std::filesystem::path downloadable(const std::string& path) const;

  // Pre-authentication accounting per address (the listener refuses beyond the limit).
  bool admit_unauthenticated(const std::string& address);
  void settle_unauthenticated(const std::string& address);

 private:
  std::filesystem::path data_dir_, uploads_;
  RemoteSettings settings_;
  TokenStore tokens_;
  AuthThrottle throttle_;
  mutable std::mutex mutex_;
  std::string address_, fingerprint_;
  std::map<std::string, int> unauthenticated_;
};

}  // namespace kiln::service
