#include "client/daemon_launcher.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <vector>

#include "client/client.h"

namespace kiln {
namespace fs = std::filesystem;

namespace {
bool executable(const fs::path& p) { return ::access(p.c_str(), X_OK) == 0 && fs::is_regular_file(p); }

fs::path this_module_dir() {
  Dl_info info{};
  if (::dladdr(reinterpret_cast<void*>(&find_daemon_executable), &info) && info.dli_fname)
    return fs::weakly_canonical(fs::path(info.dli_fname)).parent_path();
  return {};
}
}  // namespace

fs::path find_daemon_executable(const std::string& explicit_path) {
  std::vector<fs::path> candidates;
  if (!explicit_path.empty()) candidates.emplace_back(explicit_path);
  if (const char* env = std::getenv("KILN_DAEMON"); env && *env) candidates.emplace_back(env);
  if (fs::path dir = this_module_dir(); !dir.empty()) {
    candidates.push_back(dir / "kilnd");
    candidates.push_back(dir / ".." / "bin" / "kilnd");
  }
  if (const char* path = std::getenv("PATH")) {
    std::stringstream ss(path);
    for (std::string entry; std::getline(ss, entry, ':');)
      if (!entry.empty()) candidates.push_back(fs::path(entry) / "kilnd");
  }
  std::string tried;
  for (const fs::path& c : candidates) {
    if (executable(c)) return fs::weakly_canonical(c);
    tried += "\n  " + c.string();
  }
  throw ConnectionError("kilnd is not running and its program was not found; looked at:" + tried +
                        "\nInstall Kiln, put kilnd on PATH, or set KILN_DAEMON to its path.");
}

void spawn_daemon(const fs::path& exe, const fs::path& socket, const std::string& data_dir) {
  // Everything the child needs is prepared before fork: after fork only async-signal-safe calls.
  std::vector<std::string> args{exe.string(), "--socket", socket.string()};
  if (!data_dir.empty()) {
    args.emplace_back("--data-dir");
    args.push_back(data_dir);
  }
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const long max_fd = std::min<long>(::sysconf(_SC_OPEN_MAX) > 0 ? ::sysconf(_SC_OPEN_MAX) : 1024, 65536);

  const pid_t child = ::fork();
  if (child < 0) throw ConnectionError(std::string("cannot start kilnd: fork failed: ") + std::strerror(errno));
  if (child == 0) {
    // First child: new session, then fork again so the daemon is not our child (no zombie).
    ::setsid();
    const pid_t grandchild = ::fork();
    if (grandchild != 0) ::_exit(grandchild < 0 ? 1 : 0);
    const int devnull = ::open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      ::dup2(devnull, 0);
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
    }
    for (long fd = 3; fd < max_fd; ++fd) ::close(static_cast<int>(fd));
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw ConnectionError("cannot start kilnd (" + exe.string() + "): the launcher failed");
}

}  // namespace kiln
