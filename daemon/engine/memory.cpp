#include "engine/memory.h"

#include <fstream>
#include <string>

#include <torch/types.h>

#if KILN_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>
#endif

namespace kiln::engine {

namespace {

// A "Key: <n> kB" line of a /proc file, in bytes; nullopt when absent.
std::optional<int64_t> proc_kib_field(const char* file, const std::string& field) {
  std::ifstream in(file);
  std::string key;
  while (in >> key) {
    if (key == field + ":") {
      int64_t kib = 0;
      if (in >> kib) return kib * 1024;
      return std::nullopt;
    }
    in.ignore(1 << 12, '\n');
  }
  return std::nullopt;
}

}  // namespace

int64_t current_rss_bytes() {
  return proc_kib_field("/proc/self/status", "VmRSS").value_or(0);
}

int64_t peak_rss_bytes() {
  return proc_kib_field("/proc/self/status", "VmHWM").value_or(0);
}

void reset_peak_rss() {
  std::ofstream clear("/proc/self/clear_refs");
  if (clear) clear << "5";  // "5" resets VmHWM
}

std::optional<DeviceMemory> device_memory(const DeviceChoice& choice) {
  if (choice.device.is_cpu()) {
    const auto available = proc_kib_field("/proc/meminfo", "MemAvailable");
    const auto total = proc_kib_field("/proc/meminfo", "MemTotal");
    if (!available || !total) return std::nullopt;
    return DeviceMemory{*available, *total};
  }
#if KILN_WITH_CUDA
  if (choice.device.is_cuda()) {
    const c10::cuda::CUDAGuard guard(choice.device);
    size_t free = 0, total = 0;
    if (cudaMemGetInfo(&free, &total) != cudaSuccess) {
      (void)cudaGetLastError();  // clear the sticky error for LibTorch's next call
      return std::nullopt;
    }
    // Memory LibTorch already holds in its cache is free for our own tensors too.
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(choice.device.index());
    const int64_t cached = stats.reserved_bytes[0].current - stats.allocated_bytes[0].current;  // [0]: all pools
    return DeviceMemory{static_cast<int64_t>(free) + cached, static_cast<int64_t>(total)};
  }
#endif
  return std::nullopt;
}

std::optional<int64_t> peak_device_bytes(const DeviceChoice& choice) {
#if KILN_WITH_CUDA
  if (choice.device.is_cuda())
    return c10::cuda::CUDACachingAllocator::getDeviceStats(choice.device.index()).allocated_bytes[0].peak;
#endif
  (void)choice;
  return std::nullopt;
}

void reset_peak_device_bytes(const DeviceChoice& choice) {
#if KILN_WITH_CUDA
  if (choice.device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(choice.device.index());
#endif
  (void)choice;
}

}  // namespace kiln::engine
