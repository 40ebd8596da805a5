#include "pixels.h"

#include <cstring>

#include "js.h"

namespace kiln::ps {

Layout parse_layout(const std::string& name) {
  if (name == "RGBA" || name == "rgba") return Layout::RGBA;
  if (name == "RGB" || name == "rgb") return Layout::RGB;
  if (name == "L" || name == "l" || name == "Grayscale") return Layout::L;
  throw JsError::type("unknown pixel layout '" + name + "' (use \"RGBA\", \"RGB\" or \"L\")");
}

const char* layout_name(Layout layout) {
  switch (layout) {
    case Layout::RGBA: return "RGBA";
    case Layout::RGB: return "RGB";
    case Layout::L: return "L";
  }
  return "?";
}

int layout_channels(Layout layout) { return layout == Layout::RGBA ? 4 : layout == Layout::RGB ? 3 : 1; }

Layout layout_of_channels(uint32_t channels) {
  return channels == 4 ? Layout::RGBA : channels == 3 ? Layout::RGB : Layout::L;
}

std::size_t packed_size(uint32_t width, uint32_t height, Layout layout) {
  return std::size_t(width) * height * static_cast<std::size_t>(layout_channels(layout));
}

namespace {

void require_u8(const ipc::ShmImage& block) {
  if (block.desc().dtype != protocol::PixelType::U8)
    throw JsError("this image holds " + std::string(protocol::to_string(block.desc().dtype)) +
                  " samples; the bridge moves 8-bit pixels only");
}

// One row, from `from` channels to `to` channels. The common cases are tight loops the compiler
// vectorises; the rest are not on any hot path.
void convert_row(const uint8_t* s, Layout from, uint8_t* d, Layout to, uint32_t width, const std::optional<Rgb>& bg) {
  if (from == to) {
    std::memcpy(d, s, std::size_t(width) * layout_channels(from));
    return;
  }
  if (from == Layout::RGBA && to == Layout::RGB) {
    if (bg) {
      const uint32_t br = bg->r, bgg = bg->g, bb = bg->b;
      for (uint32_t x = 0; x < width; ++x, s += 4, d += 3) {
        const uint32_t a = s[3], ia = 255 - a;
        // Rounded integer blend, as kiln.pixels.flatten_onto does for Krita.
        d[0] = static_cast<uint8_t>((s[0] * a + br * ia + 127) / 255);
        d[1] = static_cast<uint8_t>((s[1] * a + bgg * ia + 127) / 255);
        d[2] = static_cast<uint8_t>((s[2] * a + bb * ia + 127) / 255);
      }
    } else {
      for (uint32_t x = 0; x < width; ++x, s += 4, d += 3) {
        d[0] = s[0];
        d[1] = s[1];
        d[2] = s[2];
      }
    }
    return;
  }
  if (from == Layout::RGB && to == Layout::RGBA) {
    for (uint32_t x = 0; x < width; ++x, s += 3, d += 4) {
      d[0] = s[0];
      d[1] = s[1];
      d[2] = s[2];
      d[3] = 255;
    }
    return;
  }
  if (from == Layout::L && (to == Layout::RGB || to == Layout::RGBA)) {
    const int n = layout_channels(to);
    for (uint32_t x = 0; x < width; ++x, ++s, d += n) {
      d[0] = d[1] = d[2] = *s;
      if (n == 4) d[3] = 255;
    }
    return;
  }
  throw JsError(std::string("cannot make ") + layout_name(to) + " pixels from " + layout_name(from) +
                " pixels (a mask is \"L\"; colour images are \"RGB\" or \"RGBA\")");
}

}  // namespace

void write_pixels(const uint8_t* src, std::size_t size, Layout layout, ipc::ShmImage& block, std::optional<Rgb> background) {
  require_u8(block);
  const auto& desc = block.desc();
  const std::size_t expected = packed_size(desc.width, desc.height, layout);
  if (size != expected)
    throw JsError("got " + std::to_string(size) + " bytes for a " + std::to_string(desc.width) + "x" +
                  std::to_string(desc.height) + " " + layout_name(layout) + " image, which needs " + std::to_string(expected));
  const Layout to = layout_of_channels(desc.channels);
  if (background && !(layout == Layout::RGBA && to == Layout::RGB)) background.reset();  // nothing to composite
  const std::size_t row = std::size_t(desc.width) * layout_channels(layout);
  for (uint32_t y = 0; y < desc.height; ++y) convert_row(src + row * y, layout, block.row(y), to, desc.width, background);
}

void read_pixels(const ipc::ShmImage& block, Layout layout, uint8_t* dst) {
  require_u8(block);
  const auto& desc = block.desc();
  const Layout from = layout_of_channels(desc.channels);
  const std::size_t row = std::size_t(desc.width) * layout_channels(layout);
  for (uint32_t y = 0; y < desc.height; ++y) convert_row(block.row(y), from, dst + row * y, layout, desc.width, std::nullopt);
}

}  // namespace kiln::ps
