#pragma once
// Tokens for remote clients, kept in <data dir>/remote/tokens.json (folder 0700, file 0600) as
// SHA-256 hashes only: the token itself is shown once, when it is made. A token is 256 random
// bits, so a plain hash is enough (no slow KDF needed) and checking one costs a hash and a
// constant-time comparison with every stored hash.
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kiln::service {

struct TokenInfo {
  std::string id;    // 8 hex digits, for `kiln remote token revoke`
  std::string name;  // laptop-1
  bool read_only = false;
  std::string created_at, last_used_at;  // ISO 8601 UTC; last_used_at "" until used
};
nlohmann::json to_json(const TokenInfo& t);

class TokenStore {
 public:
  explicit TokenStore(std::filesystem::path file);  // loads it when it exists; throws on a broken file

  struct Created {
    TokenInfo info;
    std::string token;  // "kiln_" + 43 base64url characters; never stored
  };
  // Throws ServiceError (InvalidName, AlreadyExists).
  Created create(const std::string& name, bool read_only);
  std::vector<TokenInfo> list() const;
  // By id or name; nullopt when there is no such token.
  std::optional<TokenInfo> revoke(const std::string& id_or_name);
  // The token's entry if `token` is one of ours. Compares the hash with every stored hash in
  // constant time. Records the use.
  std::optional<TokenInfo> verify(const std::string& token);
  bool exists(const std::string& id) const;

 private:
  struct Entry {
    TokenInfo info;
    std::string hash_hex;
    unsigned char hash[32];
  };
  void save() const;  // with mutex_ held
  std::filesystem::path file_;
  mutable std::mutex mutex_;
  std::vector<Entry> entries_;
};

}  // namespace kiln::service
