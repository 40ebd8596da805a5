#pragma once
// Crash-safe file replacement for the studio's outputs (images, captions, dataset.json): write a
// temporary file beside the target, fsync, rename over it, fsync the folder. Readers see the old
// file or the new one, never half of one. (The same technique as engine/io/atomic_file, kept here
// so kiln_studio builds and links without the LibTorch engine.)
#include <filesystem>
#include <string_view>

namespace kiln::studio {

// Throws std::system_error naming the file (and the system's reason: no space, no permission).
void write_atomically(const std::filesystem::path& target, std::string_view contents);

}  // namespace kiln::studio
