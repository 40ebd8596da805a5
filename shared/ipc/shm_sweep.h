#pragma once
// Finds and removes image blocks whose creating process has died (a killed client, a crashed
// daemon). Blocks of live processes are never touched.
#include <string>
#include <vector>

namespace kiln::ipc {

struct ShmBlockInfo {
  std::string name;
  int creator_pid = 0;
};

// This user's Kiln image blocks (Linux: the entries of /dev/shm). Empty where not supported.
std::vector<ShmBlockInfo> list_shm_blocks();

// Removes the blocks of dead creators; returns the names removed.
std::vector<std::string> sweep_orphan_shm_blocks();

bool process_alive(int pid);

}  // namespace kiln::ipc
