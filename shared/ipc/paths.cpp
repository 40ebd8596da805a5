#include "ipc/paths.h"

#include <pwd.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>

namespace kiln::ipc {
namespace fs = std::filesystem;

namespace {
std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}
}  // namespace

fs::path home_dir() {
  if (std::string h = env("HOME"); !h.empty()) return h;
  if (const passwd* pw = ::getpwuid(::getuid()); pw && pw->pw_dir) return pw->pw_dir;
  return fs::temp_directory_path();
}

fs::path default_socket_path() {
  if (std::string s = env("KILN_SOCKET"); !s.empty()) return fs::absolute(s);
  if (std::string runtime = env("XDG_RUNTIME_DIR"); !runtime.empty() && fs::is_directory(runtime))
    return fs::path(runtime) / "kiln" / "kilnd.sock";
  return home_dir() / ".cache" / "kiln" / "kilnd.sock";
}

fs::path default_data_dir() {
  if (std::string d = env("KILN_DATA_DIR"); !d.empty()) return fs::absolute(d);
  if (std::string xdg = env("XDG_DATA_HOME"); !xdg.empty()) return fs::path(xdg) / "kiln";
  return home_dir() / ".local" / "share" / "kiln";
}

fs::path resolve_socket_path(const std::string& explicit_path) {
  return explicit_path.empty() ? default_socket_path() : fs::absolute(explicit_path);
}

fs::path resolve_data_dir(const std::string& explicit_dir) {
  return explicit_dir.empty() ? default_data_dir() : fs::absolute(explicit_dir);
}

std::string check_socket_path(const fs::path& path) {
  const std::size_t limit = sizeof(sockaddr_un::sun_path) - 1;
  if (path.native().size() > limit)
    return "socket path '" + path.string() + "' is " + std::to_string(path.native().size()) +
           " bytes long; Unix sockets allow at most " + std::to_string(limit) + ". Choose a shorter --socket path.";
  return "";
}

}  // namespace kiln::ipc
