#pragma once
// Reads the reference PNGs (8-bit RGB/RGBA/gray, not interlaced) for pixel comparisons.
#include <torch/types.h>

#include <filesystem>

namespace kiln::test {

// uint8 [H, W, C]. Fails the current test (and returns an undefined tensor) on anything else.
torch::Tensor read_png(const std::filesystem::path& path);

}  // namespace kiln::test
