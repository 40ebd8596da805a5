#pragma once
// Extracting a plugin bundle (a .zip) with libzip, refusing entries that would land outside the
// target folder (absolute names, "..", symbolic links).
#include <filesystem>
#include <string>
#include <vector>

namespace kiln::cli {

// The names of the files (not folders) in `zip`, in archive order. Throws std::runtime_error naming
// the zip when it cannot be read or an entry's name is unsafe.
std::vector<std::string> zip_file_names(const std::filesystem::path& zip);

// Writes every file of `zip` under `target` (creating folders) and returns the paths written.
// `dry_run` writes nothing but returns the same list.
std::vector<std::filesystem::path> extract_zip(const std::filesystem::path& zip, const std::filesystem::path& target,
                                               bool dry_run);

}  // namespace kiln::cli
