#include "engine/io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <random>
#include <system_error>

namespace kiln {
namespace fs = std::filesystem;

namespace {
[[noreturn]] void fail(const std::string& what, const fs::path& path, int err) {
  throw std::system_error(err, std::generic_category(), what + " '" + path.string() + "'");
}

void fsync_path(const fs::path& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  if (fd < 0) fail("cannot open for fsync", path, errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) fail("fsync failed for", path, err);
}

fs::path temporary_beside(const fs::path& target) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return target.parent_path() / ("." + target.filename().string() + ".tmp-" + std::to_string(::getpid()) + "-" +
                                 std::to_string(rng() & 0xffffffu));
}
}  // namespace

void write_file_atomically(const fs::path& target, const std::function<void(std::ostream&)>& write) {
  const fs::path dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  const fs::path tmp = temporary_beside(target);
  try {
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      if (!out) fail("cannot create", tmp, errno);
      write(out);
      out.flush();
      if (!out) fail("cannot write", tmp, errno ? errno : EIO);
    }
    fsync_path(tmp, false);
    if (::rename(tmp.c_str(), target.c_str()) != 0) fail("cannot rename into place", target, errno);
    fsync_path(dir, true);
  } catch (...) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw;
  }
}

void write_file_atomically(const fs::path& target, std::string_view contents) {
  write_file_atomically(target, [&](std::ostream& out) { out.write(contents.data(), static_cast<std::streamsize>(contents.size())); });
}

}  // namespace kiln
