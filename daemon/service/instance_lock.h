#pragma once
// One kilnd per socket and per data dir: an flock(2) on a lock file, released by the kernel when
// the process dies (even by kill -9), so a crash never leaves a stale lock behind.
#include <filesystem>
#include <string>

namespace kiln::service {

class InstanceLock {
 public:
  // Takes the lock or throws std::runtime_error saying which daemon (pid) holds it.
  explicit InstanceLock(const std::filesystem::path& lock_file);
  ~InstanceLock();
  InstanceLock(const InstanceLock&) = delete;
  InstanceLock& operator=(const InstanceLock&) = delete;

 private:
  int fd_ = -1;
  std::filesystem::path path_;
};

}  // namespace kiln::service
