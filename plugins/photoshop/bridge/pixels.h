#pragma once
// Pixels between JavaScript buffers and shared-memory image blocks, in one pass each way.
//
// JavaScript side: tightly packed 8-bit rows, top row first, in one of three layouts: "RGBA"
// (Photoshop's imaging.getPixels of a layer with transparency), "RGB" (a background layer, or
// getPixels with applyAlpha) and "L" (one byte per pixel: imaging.getSelection's mask).
// Block side: an u8 block of 1, 3 or 4 channels with its own row stride. The copy converts
// between the two as it goes, so a 4096x4096 layer crosses once, never through a temporary.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "ipc/shm_image.h"

namespace kiln::ps {

enum class Layout { RGBA, RGB, L };

Layout parse_layout(const std::string& name);  // throws JsError::type for anything else
const char* layout_name(Layout layout);
int layout_channels(Layout layout);
// The layout whose channels match a block's: 4 -> RGBA, 3 -> RGB, 1 -> L.
Layout layout_of_channels(uint32_t channels);

struct Rgb {
  uint8_t r = 255, g = 255, b = 255;
};

// Bytes of a tightly packed width x height image in `layout`.
std::size_t packed_size(uint32_t width, uint32_t height, Layout layout);

// Copies `size` bytes of tightly packed `layout` pixels into `block` (u8, writable), converting:
// RGBA -> RGB drops alpha, or composites onto `background` when given (transparent areas become
// that colour instead of whatever colour they hold); RGB -> RGBA sets alpha 255; L -> RGB(A)
// repeats the grey. Throws JsError naming the problem (wrong size, impossible conversion).
void write_pixels(const uint8_t* src, std::size_t size, Layout layout, ipc::ShmImage& block,
                  std::optional<Rgb> background = std::nullopt);

// Copies `block` (u8) into `dst`, which holds packed_size(width, height, layout) bytes:
// RGB -> RGBA adds alpha 255, RGBA -> RGB drops alpha, L -> RGB(A) repeats the grey.
void read_pixels(const ipc::ShmImage& block, Layout layout, uint8_t* dst);

}  // namespace kiln::ps
