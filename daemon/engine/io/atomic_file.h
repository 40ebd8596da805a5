#pragma once
// Crash-safe file replacement: write a temporary file in the same directory, fsync it, rename it
// over the target, fsync the directory. Readers see the old or the new file, never a torn one.
#include <filesystem>
#include <functional>
#include <ostream>
#include <string_view>

namespace kiln {

// Throws std::system_error (with the path in the message) when any step fails; the temporary
// file is removed on failure.
void write_file_atomically(const std::filesystem::path& target, std::string_view contents);

// For large outputs: `write` streams into the temporary file.
void write_file_atomically(const std::filesystem::path& target, const std::function<void(std::ostream&)>& write);

}  // namespace kiln
