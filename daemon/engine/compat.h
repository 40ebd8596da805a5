#pragma once
// The one place that knows LibTorch version differences (1.13 on Debian, 2.x with CUDA).
#include <torch/torch.h>
#include <torch/version.h>

#define KILN_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

// at::scaled_dot_product_attention (fused flash / memory-efficient kernels) arrived in 2.0.
#define KILN_HAS_FUSED_SDPA KILN_TORCH_AT_LEAST(2, 0)

// On the CPU, at::scaled_dot_product_attention only became a fused (flash) kernel in 2.1; before
// that it materialises the whole score matrix, so the engine's chunked attention is leaner there.
#define KILN_HAS_CPU_FLASH_SDPA KILN_TORCH_AT_LEAST(2, 1)

// CUDA autocast (mixed-precision training): 2.4 replaced the CUDA-only calls with per-device ones.
#include <ATen/autocast_mode.h>

namespace kiln::engine::compat {

// Runs CUDA ops in `dtype` (fp16 / bf16) where autocast allows, for the guard's lifetime.
class CudaAutocast {
 public:
  explicit CudaAutocast(at::ScalarType dtype) {
#if KILN_TORCH_AT_LEAST(2, 4)
    was_enabled_ = at::autocast::is_autocast_enabled(at::kCUDA);
    old_dtype_ = at::autocast::get_autocast_dtype(at::kCUDA);
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, dtype);
#else
    was_enabled_ = at::autocast::is_enabled();
    old_dtype_ = at::autocast::get_autocast_gpu_dtype();
    at::autocast::set_enabled(true);
    at::autocast::set_autocast_gpu_dtype(dtype);
#endif
    at::autocast::increment_nesting();
  }
  ~CudaAutocast() {
    // Leaving the outermost region drops the cached fp16 copies of the weights.
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
#if KILN_TORCH_AT_LEAST(2, 4)
    at::autocast::set_autocast_enabled(at::kCUDA, was_enabled_);
    at::autocast::set_autocast_dtype(at::kCUDA, old_dtype_);
#else
    at::autocast::set_enabled(was_enabled_);
    at::autocast::set_autocast_gpu_dtype(old_dtype_);
#endif
  }
  CudaAutocast(const CudaAutocast&) = delete;
  CudaAutocast& operator=(const CudaAutocast&) = delete;

 private:
  bool was_enabled_;
  at::ScalarType old_dtype_;
};

}  // namespace kiln::engine::compat
