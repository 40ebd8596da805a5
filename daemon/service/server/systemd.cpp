#include "service/server/systemd.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace kiln::service::systemd {

std::optional<int> activated_socket(const std::filesystem::path& expected) {
  const int n = sd_listen_fds(/*unset_environment=*/1);  // children (none) must not inherit it
  if (n <= 0) return std::nullopt;
  if (n > 1)
    throw std::runtime_error("systemd passed " + std::to_string(n) +
                             " sockets; kilnd.socket must have exactly one ListenStream= (the path clients use)");
  const int fd = SD_LISTEN_FDS_START;
  if (sd_is_socket_unix(fd, SOCK_STREAM, /*listening=*/1, expected.c_str(), 0) <= 0)
    throw std::runtime_error("the socket systemd passed is not a listening Unix socket at " + expected.string() +
                             ", where clients look; make ListenStream= in kilnd.socket that path "
                             "(%t/kiln/kilnd.sock) or start kilnd with --socket set to it");
  return fd;
}

bool stderr_is_journal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (!stream) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(stream, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st {};
  return ::fstat(2, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

void notify_ready() { sd_notify(0, "READY=1"); }

void notify_stopping() { sd_notify(0, "STOPPING=1"); }

}  // namespace kiln::service::systemd
