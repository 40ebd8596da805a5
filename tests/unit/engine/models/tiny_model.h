#pragma once
// The sd15-tiny fixture model, loaded once per test program (fp32 CPU).
#include "engine/models/stable_diffusion.h"

namespace kiln::test {

const engine::models::StableDiffusion& tiny_sd();

}  // namespace kiln::test
