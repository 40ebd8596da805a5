#include "service/remote/token_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>

#include "engine/lora/sha256.h"
#include "service/errors.h"
#include "service/server/server.h"

namespace kiln::service {
namespace fs = std::filesystem;
using Json = nlohmann::json;
using protocol::ErrorCode;

namespace {
std::string now_iso() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

void random_bytes(unsigned char* out, int n) {
  if (RAND_bytes(out, n) != 1) throw std::runtime_error("OpenSSL's random generator failed");
}

std::string base64url(const unsigned char* data, int n) {
  std::string b64(4 * ((n + 2) / 3) + 1, '\0');
  const int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()), data, n);
  b64.resize(static_cast<std::size_t>(len));
  for (char& c : b64) c = c == '+' ? '-' : c == '/' ? '_' : c;
  while (!b64.empty() && b64.back() == '=') b64.pop_back();
  return b64;
}

void sha256(const std::string& s, unsigned char out[32]) {
  engine::lora::Sha256 h;
  h.update(s.data(), s.size());
  const auto d = h.digest();
  std::memcpy(out, d.data(), 32);
}

bool from_hex(const std::string& hex, unsigned char out[32]) {
  if (hex.size() != 64) return false;
  for (int i = 0; i < 32; ++i) {
    unsigned v = 0;
    if (std::sscanf(hex.c_str() + 2 * i, "%2x", &v) != 1) return false;
    out[i] = static_cast<unsigned char>(v);
  }
  return true;
}

void check_name(const std::string& name) {
  if (name.empty() || name.size() > 64)
    throw ServiceError(ErrorCode::InvalidName, "a token's name has 1 to 64 characters");
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_'))
      throw ServiceError(ErrorCode::InvalidName,
                         "'" + name.substr(0, 64) + "': a token's name takes letters, digits, '.', '-' and '_' (e.g. laptop-1)");
}
}  // namespace

Json to_json(const TokenInfo& t) {
  return {{"id", t.id}, {"name", t.name}, {"read_only", t.read_only}, {"created_at", t.created_at},
          {"last_used_at", t.last_used_at.empty() ? Json() : Json(t.last_used_at)}};
}

TokenStore::TokenStore(fs::path file) : file_(std::move(file)) {
  ensure_private_directory(file_.parent_path());
  std::ifstream in(file_);
  if (!in) return;
  Json j;
  try {
    j = Json::parse(in);
  } catch (const Json::exception& e) {
    throw std::runtime_error(file_.string() + " is not valid JSON (" + e.what() +
                             "); restore it, or delete it and make new tokens with `kiln remote token create`");
  }
  for (const Json& t : j.value("tokens", Json::array())) {
    if (!t.is_object()) continue;
    Entry e;
    e.info.id = t.value("id", "");
    e.info.name = t.value("name", "");
    e.info.read_only = t.value("read_only", false);
    e.info.created_at = t.value("created_at", "");
    // null until the token is first used (to_json writes it so)
    if (t.contains("last_used_at") && t.at("last_used_at").is_string()) e.info.last_used_at = t.at("last_used_at").get<std::string>();
    e.hash_hex = t.value("sha256", "");
    if (e.info.id.empty() || !from_hex(e.hash_hex, e.hash)) continue;
    entries_.push_back(std::move(e));
  }
}

void TokenStore::save() const {
  Json tokens = Json::array();
  for (const Entry& e : entries_) {
    Json t = to_json(e.info);
    t["sha256"] = e.hash_hex;
    tokens.push_back(std::move(t));
  }
  const std::string text = Json{{"tokens", tokens}}.dump(2) + "\n";
  const fs::path tmp = file_.string() + ".tmp";
  ::unlink(tmp.c_str());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("cannot write " + tmp.string() + ": " + std::strerror(errno));
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n <= 0) {
      ::close(fd);
      throw std::runtime_error("cannot write " + tmp.string() + ": " + std::strerror(errno));
    }
    done += static_cast<std::size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
  if (::rename(tmp.c_str(), file_.c_str()) != 0) throw std::runtime_error("cannot replace " + file_.string() + ": " + std::strerror(errno));
}

TokenStore::Created TokenStore::create(const std::string& requested_name, bool read_only) {
  std::lock_guard lock(mutex_);
  unsigned char id_bytes[4], secret[32];
  random_bytes(id_bytes, sizeof id_bytes);
  random_bytes(secret, sizeof secret);
  char id[9];
  std::snprintf(id, sizeof id, "%02x%02x%02x%02x", id_bytes[0], id_bytes[1], id_bytes[2], id_bytes[3]);
  const std::string name = requested_name.empty() ? std::string("token-") + id : requested_name;
  check_name(name);
  for (const Entry& e : entries_)
    if (e.info.name == name)
      throw ServiceError(ErrorCode::AlreadyExists, "a token called '" + name + "' exists; revoke it first or choose another name");
  Created c;
  c.token = "kiln_" + base64url(secret, sizeof secret);
  OPENSSL_cleanse(secret, sizeof secret);
  Entry e;
  e.info = TokenInfo{id, name, read_only, now_iso(), ""};
  sha256(c.token, e.hash);
  e.hash_hex = engine::lora::to_hex(e.hash, 32);
  entries_.push_back(e);
  save();
  c.info = e.info;
  return c;
}

std::vector<TokenInfo> TokenStore::list() const {
  std::lock_guard lock(mutex_);
  std::vector<TokenInfo> out;
  for (const Entry& e : entries_) out.push_back(e.info);
  return out;
}

std::optional<TokenInfo> TokenStore::revoke(const std::string& id_or_name) {
  std::lock_guard lock(mutex_);
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (it->info.id != id_or_name && it->info.name != id_or_name) continue;
    TokenInfo info = it->info;
    entries_.erase(it);
    save();
    return info;
  }
  return std::nullopt;
}

std::optional<TokenInfo> TokenStore::verify(const std::string& token) {
  unsigned char presented[32];
  sha256(token, presented);
  std::lock_guard lock(mutex_);
  Entry* found = nullptr;
  // Every stored hash is compared, in constant time, whatever matched before.
  for (Entry& e : entries_)
    if (CRYPTO_memcmp(e.hash, presented, 32) == 0) found = &e;
  if (!found) return std::nullopt;
  found->info.last_used_at = now_iso();
  try {
    save();
  } catch (const std::exception&) {
    // the use is recorded next time; refusing a valid token for it would be worse
  }
  return found->info;
}

bool TokenStore::exists(const std::string& id) const {
  std::lock_guard lock(mutex_);
  for (const Entry& e : entries_)
    if (e.info.id == id) return true;
  return false;
}

}  // namespace kiln::service
