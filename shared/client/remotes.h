#pragma once
// Remote daemons as a client sees them: addresses ("kiln+tls://host:port" or "host:port"), the
// saved remotes (`kiln remote add NAME host:port --token T`) and the pinned certificate
// fingerprints, trusted on first contact as SSH trusts host keys.
//
// Files, in the client config dir ($KILN_CONFIG_DIR, else $XDG_CONFIG_HOME/kiln, else
// ~/.config/kiln; the folder 0700):
//   remotes.json        {"remotes": {"NAME": {"address": "host:port", "token": "kiln_..."}}}   0600
//   known_daemons.json  {"host:port": {"fingerprint": "SHA256:AB:...", "pinned_at": "..."}}      0600
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace kiln {

inline constexpr const char* kRemoteScheme = "kiln+tls://";

struct RemoteAddress {
  std::string host;  // a name, an IPv4 address, or an IPv6 address without brackets
  uint16_t port = 0;
  std::string str() const;  // "host:port", "[::1]:port"
  std::string url() const { return kRemoteScheme + str(); }
};

// "kiln+tls://host:port", "host:port" or "[v6]:port". Throws std::invalid_argument saying what
// is wrong and how an address looks.
RemoteAddress parse_remote_address(const std::string& text);
bool is_remote_url(const std::string& text);  // starts with kiln+tls://

struct SavedRemote {
  std::string name;
  RemoteAddress address;
  std::string token;
};

// Checks a remote's name (1-64 letters, digits, '.', '-', '_', not starting with '.'); returns
// the problem or "".
std::string check_remote_name(const std::string& name);

class RemoteConfig {
 public:
  explicit RemoteConfig(std::filesystem::path dir = {});  // empty: the default dir
  static std::filesystem::path default_dir();
  const std::filesystem::path& dir() const { return dir_; }

  std::vector<SavedRemote> remotes() const;
  std::optional<SavedRemote> find(const std::string& name) const;
  std::optional<SavedRemote> find_by_address(const RemoteAddress& address) const;
  void save_remote(const SavedRemote& remote);  // adds or replaces; the file is 0600
  bool remove_remote(const std::string& name);

  std::optional<std::string> pinned(const RemoteAddress& address) const;
  void pin(const RemoteAddress& address, const std::string& fingerprint);
  bool unpin(const RemoteAddress& address);

 private:
  std::filesystem::path dir_;
};

}  // namespace kiln
