#pragma once
// A file being downloaded from a remote daemon (kiln::Client::download_file): written to a
// temporary file beside the target and renamed when complete, so a broken transfer never leaves
// a half file under the target's name. Internal to the client.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <string>

namespace kiln {

struct FileSink {
  std::filesystem::path target, temporary;
  int fd = -1;
  ~FileSink() {
    if (fd >= 0) ::close(fd);
    if (!temporary.empty()) ::unlink(temporary.c_str());
  }
  void open(const std::filesystem::path& to) {
    target = to;
    if (!to.parent_path().empty()) std::filesystem::create_directories(to.parent_path());
    std::random_device rd;
    temporary = to.string() + ".part-" + std::to_string(rd());
    fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error("cannot write " + temporary.string() + ": " + std::strerror(errno));
  }
  void write(const uint8_t* data, std::size_t size) {
    std::size_t done = 0;
    while (done < size) {
      const ssize_t n = ::write(fd, data + done, size - done);
      if (n <= 0) throw std::runtime_error("cannot write " + temporary.string() + ": " + std::strerror(errno));
      done += static_cast<std::size_t>(n);
    }
  }
  void finish() {
    ::fsync(fd);
    ::close(fd);
    fd = -1;
    if (::rename(temporary.c_str(), target.c_str()) != 0)
      throw std::runtime_error("cannot write " + target.string() + ": " + std::strerror(errno));
    temporary.clear();
  }
};

}  // namespace kiln
