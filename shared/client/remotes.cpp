#include "client/remotes.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "ipc/paths.h"

namespace kiln {
namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {
std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

void ensure_private_dir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw std::runtime_error("cannot create " + dir.string() + ": " + ec.message());
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0 && st.st_uid == ::getuid() && (st.st_mode & 0777) != 0700) ::chmod(dir.c_str(), 0700);
}

Json read_json(const fs::path& file) {
  std::ifstream in(file);
  if (!in) return Json::object();
  try {
    Json j = Json::parse(in);
    return j.is_object() ? j : Json::object();
  } catch (const Json::exception& e) {
    throw std::runtime_error(file.string() + " is not valid JSON (" + e.what() + "); fix or delete it");
  }
}

// Written whole to a temporary file created 0600, flushed, then renamed over the old one.
void write_private_json(const fs::path& file, const Json& j) {
  ensure_private_dir(file.parent_path());
  std::random_device rd;
  const fs::path tmp = file.string() + ".tmp-" + std::to_string(rd());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("cannot write " + tmp.string() + ": " + std::strerror(errno));
  const std::string text = j.dump(2) + "\n";
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n <= 0) {
      ::close(fd);
      ::unlink(tmp.c_str());
      throw std::runtime_error("cannot write " + tmp.string() + ": " + std::strerror(errno));
    }
    done += static_cast<std::size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
  if (::rename(tmp.c_str(), file.c_str()) != 0) {
    ::unlink(tmp.c_str());
    throw std::runtime_error("cannot replace " + file.string() + ": " + std::strerror(errno));
  }
}

std::string now_iso() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

const char* kAddressHelp = "a remote daemon's address is HOST:PORT (e.g. gpu-box.local:7433, [fd00::2]:7433), optionally "
                           "written kiln+tls://HOST:PORT";
}  // namespace

std::string RemoteAddress::str() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

bool is_remote_url(const std::string& text) { return text.rfind(kRemoteScheme, 0) == 0; }

RemoteAddress parse_remote_address(const std::string& text) {
  std::string s = text;
  if (is_remote_url(s)) s = s.substr(std::strlen(kRemoteScheme));
  else if (s.find("://") != std::string::npos)
    throw std::invalid_argument("'" + text + "' is not a Kiln address: " + kAddressHelp + " (the only scheme is kiln+tls://)");
  while (!s.empty() && s.back() == '/') s.pop_back();
  RemoteAddress a;
  std::string port;
  if (!s.empty() && s.front() == '[') {
    const auto close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':')
      throw std::invalid_argument("'" + text + "': " + kAddressHelp);
    a.host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    const auto colon = s.rfind(':');
    if (colon == std::string::npos || s.find(':') != colon)
      throw std::invalid_argument("'" + text + "' has no port: " + kAddressHelp);
    a.host = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  if (a.host.empty() || a.host.size() > 253) throw std::invalid_argument("'" + text + "' has no host: " + kAddressHelp);
  for (char c : a.host)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == ':' || c == '_' || c == '%'))
      throw std::invalid_argument("'" + text + "': the host has a character hosts do not have ('" + std::string(1, c) + "')");
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) < 1 ||
      std::stoi(port) > 65535)
    throw std::invalid_argument("'" + text + "': the port must be a number from 1 to 65535");
  a.port = static_cast<uint16_t>(std::stoi(port));
  return a;
}

std::string check_remote_name(const std::string& name) {
  if (name.empty() || name.size() > 64) return "a remote's name has 1 to 64 characters";
  if (name.front() == '.') return "a remote's name cannot start with '.'";
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_'))
      return "'" + name + "': a remote's name takes letters, digits, '.', '-' and '_'";
  if (is_remote_url(name) || name.find(':') != std::string::npos) return "a remote's name is not an address";
  return "";
}

RemoteConfig::RemoteConfig(fs::path dir) : dir_(dir.empty() ? default_dir() : std::move(dir)) {}

fs::path RemoteConfig::default_dir() {
  if (std::string d = env("KILN_CONFIG_DIR"); !d.empty()) return fs::absolute(d);
  if (std::string xdg = env("XDG_CONFIG_HOME"); !xdg.empty()) return fs::path(xdg) / "kiln";
  return ipc::home_dir() / ".config" / "kiln";
}

std::vector<SavedRemote> RemoteConfig::remotes() const {
  std::vector<SavedRemote> out;
  const Json j = read_json(dir_ / "remotes.json");
  const Json all = j.value("remotes", Json::object());
  if (!all.is_object()) return out;
  for (const auto& [name, r] : all.items()) {
    if (!r.is_object()) continue;
    try {
      out.push_back(SavedRemote{name, parse_remote_address(r.value("address", "")), r.value("token", "")});
    } catch (const std::invalid_argument&) {
      // an entry someone edited by hand into something unusable: skip it
    }
  }
  return out;
}

std::optional<SavedRemote> RemoteConfig::find(const std::string& name) const {
  for (auto& r : remotes())
    if (r.name == name) return r;
  return std::nullopt;
}

std::optional<SavedRemote> RemoteConfig::find_by_address(const RemoteAddress& address) const {
  for (auto& r : remotes())
    if (r.address.str() == address.str()) return r;
  return std::nullopt;
}

void RemoteConfig::save_remote(const SavedRemote& remote) {
  if (std::string problem = check_remote_name(remote.name); !problem.empty()) throw std::invalid_argument(problem);
  Json j = read_json(dir_ / "remotes.json");
  if (!j.contains("remotes") || !j["remotes"].is_object()) j["remotes"] = Json::object();
  j["remotes"][remote.name] = {{"address", remote.address.str()}, {"token", remote.token}};
  write_private_json(dir_ / "remotes.json", j);
}

bool RemoteConfig::remove_remote(const std::string& name) {
  Json j = read_json(dir_ / "remotes.json");
  if (!j.contains("remotes") || !j["remotes"].is_object() || !j["remotes"].contains(name)) return false;
  j["remotes"].erase(name);
  write_private_json(dir_ / "remotes.json", j);
  return true;
}

std::optional<std::string> RemoteConfig::pinned(const RemoteAddress& address) const {
  const Json j = read_json(dir_ / "known_daemons.json");
  auto it = j.find(address.str());
  if (it == j.end() || !it->is_object() || !it->contains("fingerprint") || !(*it)["fingerprint"].is_string()) return std::nullopt;
  return (*it)["fingerprint"].get<std::string>();
}

void RemoteConfig::pin(const RemoteAddress& address, const std::string& fingerprint) {
  Json j = read_json(dir_ / "known_daemons.json");
  j[address.str()] = {{"fingerprint", fingerprint}, {"pinned_at", now_iso()}};
  write_private_json(dir_ / "known_daemons.json", j);
}

bool RemoteConfig::unpin(const RemoteAddress& address) {
  Json j = read_json(dir_ / "known_daemons.json");
  if (!j.contains(address.str())) return false;
  j.erase(address.str());
  write_private_json(dir_ / "known_daemons.json", j);
  return true;
}

}  // namespace kiln
