#pragma once
// The fixture models, loaded once per test program (fp32 CPU).
#include <string>

#include "engine/models/stable_diffusion.h"

namespace kiln::test {

const engine::models::StableDiffusion& tiny_sd();

// sdxl-tiny from either of its layouts: the single file (SGM keys, OpenCLIP second encoder) or the
// diffusers folder. The same weights; every SDXL fixture test runs on both.
enum class Layout { SingleFile, Diffusers };
const engine::models::StableDiffusion& tiny_sdxl(Layout layout = Layout::SingleFile);
std::string layout_name(Layout layout);  // "single_file", "diffusers" (test names)

}  // namespace kiln::test
