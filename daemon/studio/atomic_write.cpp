#include "studio/atomic_write.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <random>
#include <string>
#include <system_error>

namespace kiln::studio {
namespace fs = std::filesystem;
namespace {

[[noreturn]] void fail(const std::string& what, const fs::path& path, int err) {
  throw std::system_error(err, std::generic_category(), what + " " + path.string());
}

// Closes the descriptor on every path out.
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

void sync_folder(const fs::path& dir) {
  Fd d{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (d.fd < 0) fail("cannot open folder", dir, errno);
  if (::fsync(d.fd) != 0) fail("cannot flush folder", dir, errno);
}

}  // namespace

void write_atomically(const fs::path& target, std::string_view contents) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  const fs::path dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  // Hidden and unique, so folder scans never pick up a half-written file.
  const fs::path tmp = dir / ("." + target.filename().string() + ".tmp-" + std::to_string(::getpid()) + "-" +
                              std::to_string(rng() & 0xFFFFFFu));
  try {
    {
      Fd f{::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)};
      if (f.fd < 0) fail("cannot create", tmp, errno);
      for (std::size_t done = 0; done < contents.size();) {
        const ssize_t n = ::write(f.fd, contents.data() + done, contents.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail("cannot write", tmp, errno);
        done += static_cast<std::size_t>(n);
      }
      if (::fsync(f.fd) != 0) fail("cannot flush", tmp, errno);
    }
    if (::rename(tmp.c_str(), target.c_str()) != 0) fail("cannot move into place", target, errno);
    sync_folder(dir);
  } catch (...) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw;
  }
}

}  // namespace kiln::studio
