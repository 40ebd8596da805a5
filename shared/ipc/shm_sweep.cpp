#include "ipc/shm_sweep.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <system_error>

#include "ipc/shm_image.h"

namespace kiln::ipc {

bool process_alive(int pid) {
  if (pid <= 0) return false;
  // EPERM means it exists but belongs to someone else: alive.
  return ::kill(pid, 0) == 0 || errno == EPERM;
}

std::vector<ShmBlockInfo> list_shm_blocks() {
  std::vector<ShmBlockInfo> blocks;
#if defined(__linux__)
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/dev/shm", ec)) {
    std::string name = entry.path().filename().string();
    if (!is_valid_shm_name(name)) continue;
    // kiln.<uid>.<pid>.<hex>
    const auto first = name.find('.'), second = name.find('.', first + 1), third = name.find('.', second + 1);
    ShmBlockInfo info;
    info.name = name;
    info.creator_pid = std::stoi(name.substr(second + 1, third - second - 1));
    blocks.push_back(std::move(info));
  }
#endif
  return blocks;
}

std::vector<std::string> sweep_orphan_shm_blocks() {
  std::vector<std::string> removed;
  for (const ShmBlockInfo& block : list_shm_blocks())
    if (!process_alive(block.creator_pid) && remove_shm(block.name)) removed.push_back(block.name);
  return removed;
}

}  // namespace kiln::ipc
