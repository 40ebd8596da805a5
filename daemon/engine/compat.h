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
