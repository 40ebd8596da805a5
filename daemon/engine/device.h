#pragma once
// Choosing the compute device and dtype, and describing it to users.
#include <string>

#include <torch/types.h>

namespace kiln::engine {

struct DeviceChoice {
  torch::Device device{torch::kCPU};
  torch::Dtype dtype{torch::kFloat32};  // fp32 on CPU; fp16 (or bf16 on request) on CUDA
};

// "auto" picks cuda > mps > cpu. Also accepts "cpu", "cuda", "cuda:N", "mps".
// Throws Error(InvalidArgument) for unknown names and Error(Unsupported) for a device not present.
DeviceChoice choose_device(const std::string& name = "auto", const std::string& precision = "auto");

// One line for `kiln status`: e.g. "cpu (2 threads, LibTorch 1.13.0)" or "cuda:0 NVIDIA H100 80GB".
std::string describe_device(const DeviceChoice& choice);

// Uses every core for CPU work (Debian's LibTorch starts with one OpenMP thread).
void use_all_cpu_cores();

}  // namespace kiln::engine
