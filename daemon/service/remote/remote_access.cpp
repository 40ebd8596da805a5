#include "service/remote/remote_access.h"

#include <openssl/rand.h>

#include <cstdio>

#include "service/errors.h"
#include "service/server/server.h"

namespace kiln::service {
namespace fs = std::filesystem;
using protocol::ErrorCode;

namespace {
std::string random_hex(int bytes) {
  unsigned char b[32];
  if (RAND_bytes(b, bytes) != 1) throw std::runtime_error("OpenSSL's random generator failed");
  std::string out;
  char hex[3];
  for (int i = 0; i < bytes; ++i) {
    std::snprintf(hex, sizeof hex, "%02x", b[i]);
    out += hex;
  }
  return out;
}

// The last component of a client's file name, if it is a plain, harmless name.
std::string safe_file_name(const std::string& name) {
  std::string base = name;
  if (auto slash = base.find_last_of("/\\"); slash != std::string::npos) base = base.substr(slash + 1);
  if (base.empty() || base == "." || base == ".." || base.size() > 200 || base.front() == '.')
    throw ServiceError(ErrorCode::InvalidName, "files.upload: '" + name.substr(0, 200) +
                                                   "' is not a file name Kiln keeps (1-200 characters, not starting with '.')");
  for (unsigned char c : base)
    if (c < 0x20 || c == 0x7f || c == ':' || c == '*' || c == '?' || c == '"' || c == '<' || c == '>' || c == '|')
      throw ServiceError(ErrorCode::InvalidName, "files.upload: '" + base + "' has a character file names should not have");
  return base;
}
}  // namespace

RemoteAccess::RemoteAccess(fs::path data_dir, RemoteSettings settings)
    : data_dir_(std::move(data_dir)),
      uploads_(data_dir_ / "uploads"),
      settings_(std::move(settings)),
      tokens_(data_dir_ / "remote" / "tokens.json"),
      throttle_(settings_.auth_delay) {}

void RemoteAccess::set_listening(std::string address, std::string fingerprint) {
  std::lock_guard lock(mutex_);
  address_ = std::move(address);
  fingerprint_ = std::move(fingerprint);
}

bool RemoteAccess::listening() const {
  std::lock_guard lock(mutex_);
  return !address_.empty();
}

std::string RemoteAccess::address() const {
  std::lock_guard lock(mutex_);
  return address_;
}

std::string RemoteAccess::fingerprint() const {
  std::lock_guard lock(mutex_);
  return fingerprint_;
}

fs::path RemoteAccess::incoming_file_path() {
  ensure_private_directory(uploads_);
  return uploads_ / ("incoming-" + random_hex(12));
}

fs::path RemoteAccess::store_upload(const fs::path& received, const std::string& name, const std::string& folder) {
  const std::string base = safe_file_name(name);
  fs::path dir;
  if (folder.empty()) {
    dir = uploads_ / random_hex(12);
  } else {
    std::error_code ec;
    if (folder.size() != 24 || folder.find_first_not_of("0123456789abcdef") != std::string::npos ||
        !fs::is_directory(uploads_ / folder, ec))
      throw ServiceError(ErrorCode::InvalidParams, "files.upload: '" + folder.substr(0, 64) +
                                                       "' is not the folder of an earlier upload (the folder name of a path "
                                                       "files.upload returned)");
    dir = uploads_ / folder;
  }
  ensure_private_directory(dir);
  const fs::path target = dir / base;
  fs::rename(received, target);
  return target;
}

std::size_t RemoteAccess::sweep_uploads(std::chrono::hours older_than) {
  std::error_code ec;
  if (!fs::is_directory(uploads_, ec)) return 0;
  const auto limit = fs::file_time_type::clock::now() - older_than;
  std::size_t removed = 0;
  for (const auto& entry : fs::directory_iterator(uploads_, ec)) {
    const auto when = fs::last_write_time(entry.path(), ec);
    if (ec || when > limit) continue;
    removed += fs::remove_all(entry.path(), ec) > 0 ? 1 : 0;
  }
  return removed;
}

fs::path RemoteAccess::downloadable(const std::string& path) const {
  const auto refuse = [&](const std::string& why) -> fs::path {
    throw ServiceError(ErrorCode::Forbidden, "files.download: '" + path.substr(0, 300) + "' " + why +
                                                 "; remote clients may download files of the data dir's outputs/, loras/ and "
                                                 "datasets/ (the paths results name)");
  };
  if (path.empty() || fs::path(path).is_relative()) return refuse("is not an absolute path");
  std::error_code ec;
  const fs::path real = fs::canonical(path, ec);
  if (ec) throw ServiceError(ErrorCode::NotFound, "files.download: '" + path.substr(0, 300) + "' does not exist on the daemon's machine");
  const fs::path data = fs::weakly_canonical(data_dir_, ec);
  for (const char* area : {"outputs", "loras", "datasets"}) {
    const fs::path root = data / area;
    auto r = root.begin();
    auto p = real.begin();
    for (; r != root.end() && p != real.end() && *r == *p; ++r, ++p) {
    }
    if (r == root.end() && p != real.end()) {
      if (!fs::is_regular_file(real, ec)) return refuse("is not a file");
      return real;
    }
  }
  return refuse("is outside the folders results are kept in");
}

bool RemoteAccess::admit_unauthenticated(const std::string& address) {
  std::lock_guard lock(mutex_);
  int& n = unauthenticated_[address];
  if (n >= settings_.max_unauthenticated_per_address) return false;
  ++n;
  return true;
}

void RemoteAccess::settle_unauthenticated(const std::string& address) {
  std::lock_guard lock(mutex_);
  auto it = unauthenticated_.find(address);
  if (it == unauthenticated_.end()) return;
  if (--it->second <= 0) unauthenticated_.erase(it);
}

}  // namespace kiln::service
