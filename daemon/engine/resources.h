#pragma once
// Where the engine's read-only data (the CLIP BPE vocabulary and its licence) lives at run time.
#include <filesystem>

namespace kiln::engine {

// Looks in $KILN_RESOURCE_DIR, then <executable>/../share/kiln, then the source tree the binary
// was built from. Throws Error(NotFound) naming every place it looked.
std::filesystem::path resource_path(const std::filesystem::path& relative);

}  // namespace kiln::engine
