#pragma once
// PNG files with text chunks, through libpng: what Kiln writes for generated images (with A1111's
// `parameters` infotext), grids and plots, and what it reads back. No OpenCV here, so callers that
// hold pixels in other containers (tensors, shared memory) can use it directly.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::studio {

// 8-bit pixels in memory, rows top to bottom. Channels: 1 grey, 3 RGB, 4 RGBA (straight alpha).
struct PixelView {
  const uint8_t* data = nullptr;
  int width = 0;
  int height = 0;
  int channels = 0;
  std::size_t stride = 0;  // bytes from one row to the next; 0 means width * channels
};

// One text chunk. `key` is a PNG keyword (1–79 Latin-1 characters); `value` is UTF-8. It is
// written as tEXt when it fits Latin-1 (as PIL and A1111 do) and as uncompressed iTXt otherwise.
struct TextChunk {
  std::string key;
  std::string value;
};

struct PngImage {
  int width = 0;
  int height = 0;
  int channels = 0;             // 1 grey, 3 RGB or 4 RGBA; palette, 16-bit and grey+alpha are converted
  std::vector<uint8_t> pixels;  // tightly packed rows
  std::vector<TextChunk> text;  // in file order, values as UTF-8 whatever chunk type held them

  PixelView view() const { return {pixels.data(), width, height, channels, static_cast<std::size_t>(width) * channels}; }
  // The value of the first chunk with this keyword, or nullptr.
  const std::string* find_text(std::string_view key) const;
};

// Encodes to PNG bytes. Throws Error(InvalidArgument) for a bad view or keyword, or text with NUL.
std::string encode_png(const PixelView& pixels, const std::vector<TextChunk>& text = {});

// Encodes and replaces `path` atomically (readers never see half a file).
void write_png(const std::filesystem::path& path, const PixelView& pixels, const std::vector<TextChunk>& text = {});

// Decodes PNG bytes; `name` (usually the file name) appears in error messages.
// Throws Error(BadFormat) for anything that is not a complete, valid PNG.
PngImage decode_png(std::string_view bytes, const std::string& name);

// Reads a PNG file. Throws Error(NotFound) when it cannot be opened, Error(BadFormat) when corrupt.
PngImage read_png(const std::filesystem::path& path);

// Reads a whole file into memory. Throws Error(NotFound) naming the file when it cannot be read.
std::string read_file_bytes(const std::filesystem::path& path);

}  // namespace kiln::studio
