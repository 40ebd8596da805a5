#include "engine/device.h"

#include <cstdlib>

#include <thread>

#include <torch/torch.h>
#include <torch/version.h>

#include "engine/error.h"

namespace kiln::engine {

void use_all_cpu_cores() {
  if (std::getenv("OMP_NUM_THREADS")) return;  // the user's (or a test runner's) explicit choice wins
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  if (at::get_num_threads() < static_cast<int>(cores)) at::set_num_threads(static_cast<int>(cores));
}

namespace {
torch::Dtype pick_dtype(const torch::Device& device, const std::string& precision) {
  if (precision == "fp32" || precision == "float32") return torch::kFloat32;
  if (precision == "fp16" || precision == "float16") return torch::kFloat16;
  if (precision == "bf16" || precision == "bfloat16") return torch::kBFloat16;
  if (precision != "auto")
    throw Error(ErrorKind::InvalidArgument,
                "unknown precision '" + precision + "': use auto, fp32, fp16 or bf16");
  return device.is_cpu() ? torch::kFloat32 : torch::kFloat16;
}

bool mps_available() {
#if defined(__APPLE__)
  return torch::mps::is_available();
#else
  return false;
#endif
}
}  // namespace

DeviceChoice choose_device(const std::string& name, const std::string& precision) {
  DeviceChoice choice;
  if (name == "auto" || name.empty()) {
    if (torch::cuda::is_available()) choice.device = torch::Device(torch::kCUDA, 0);
    else if (mps_available()) choice.device = torch::Device(torch::kMPS);
    else choice.device = torch::Device(torch::kCPU);
  } else {
    try {
      choice.device = torch::Device(name);
    } catch (const std::exception&) {
      throw Error(ErrorKind::InvalidArgument,
                  "unknown device '" + name + "': use auto, cpu, cuda, cuda:N or mps");
    }
    if (choice.device.is_cuda() && !torch::cuda::is_available())
      throw Error(ErrorKind::Unsupported,
                  "device '" + name + "' asked for, but this LibTorch has no usable CUDA GPU; use --device cpu");
    if (choice.device.is_cuda() && choice.device.has_index() &&
        choice.device.index() >= static_cast<int>(torch::cuda::device_count()))
      throw Error(ErrorKind::InvalidArgument, "device '" + name + "' does not exist: this machine has " +
                                                  std::to_string(torch::cuda::device_count()) + " CUDA device(s)");
    if (choice.device.is_mps() && !mps_available())
      throw Error(ErrorKind::Unsupported, "device 'mps' asked for, but Metal is not available here");
  }
  if (choice.device.is_cuda() && !choice.device.has_index()) choice.device = torch::Device(torch::kCUDA, 0);
  choice.dtype = pick_dtype(choice.device, precision);
  if (choice.device.is_cpu() && choice.dtype != torch::kFloat32)
    throw Error(ErrorKind::Unsupported, "half precision on the CPU is too slow to be useful; use fp32 on the CPU");
  if (choice.device.is_cpu()) use_all_cpu_cores();
  return choice;
}

std::string describe_device(const DeviceChoice& choice) {
  std::string s = choice.device.str();
  if (choice.device.is_cpu())
    s += " (" + std::to_string(at::get_num_threads()) + " threads";
  else
    s += " (" + std::string(c10::toString(choice.dtype));
  s += ", LibTorch " TORCH_VERSION ")";
  return s;
}

}  // namespace kiln::engine
