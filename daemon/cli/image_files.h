#pragma once
// Image files on the command line: decoded with OpenCV (PNG, JPEG, WebP, TIFF, BMP) into a
// shared-memory block for the daemon.
#include <optional>
#include <string>
#include <utility>

#include "client/client.h"

namespace kiln::cli {

enum class ImageRole { Color, Mask, WithAlpha };

// Reads `path` (RGB for Color, grey for Mask, RGBA when the file has alpha for WithAlpha), resized to `size` (width, height) when given and
// different. Throws std::runtime_error naming the file when it cannot be read.
ipc::ShmImage load_image_file(Client& client, const std::string& path, ImageRole role,
                              std::optional<std::pair<int, int>> size = std::nullopt);

}  // namespace kiln::cli
