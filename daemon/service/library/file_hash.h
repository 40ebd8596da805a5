#pragma once
// SHA-256 of model files, as A1111 prints it in "Model hash" (the first 10 hex digits).
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

namespace kiln::service {

// Full lowercase hex SHA-256 of a file, streamed (constant memory). `progress(done, total)` is
// called every few hundred MB; returning false from `keep_going` stops with std::runtime_error.
std::string sha256_file(const std::filesystem::path& path,
                        const std::function<bool(uint64_t done, uint64_t total)>& keep_going = nullptr);

inline std::string a1111_short_hash(const std::string& sha256_hex) { return sha256_hex.substr(0, 10); }

}  // namespace kiln::service
