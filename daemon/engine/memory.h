#pragma once
// How much memory the engine uses and has: the process's resident memory, and the free, total and
// peak memory of the compute device (the CUDA caching allocator's own figures on a GPU).
#include <cstdint>
#include <optional>

#include "engine/device.h"

namespace kiln::engine {

// Resident memory of this process, now and at its highest, in bytes (Linux; 0 elsewhere).
int64_t current_rss_bytes();
int64_t peak_rss_bytes();
// Lets the peak start again from the current resident memory (Linux ≥ 4.0; harmless elsewhere).
void reset_peak_rss();

struct DeviceMemory {
  int64_t free_bytes = 0;   // what a new allocation can still get (MemAvailable on the CPU)
  int64_t total_bytes = 0;
};
// Free and total memory of the device `choice` computes on. nullopt when this build cannot tell
// (a GPU other than CUDA, or a LibTorch built without CUDA).
std::optional<DeviceMemory> device_memory(const DeviceChoice& choice);

// Peak bytes of tensors on a CUDA device since the last reset, from LibTorch's caching allocator.
// nullopt on the CPU (use peak_rss_bytes there) and in builds without CUDA.
std::optional<int64_t> peak_device_bytes(const DeviceChoice& choice);
void reset_peak_device_bytes(const DeviceChoice& choice);

}  // namespace kiln::engine
