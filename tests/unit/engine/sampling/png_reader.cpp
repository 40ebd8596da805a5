#include "unit/engine/sampling/png_reader.h"

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <zlib.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <vector>

namespace kiln::test {

namespace {
uint32_t be32(const unsigned char* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}

int paeth(int a, int b, int c) {
  const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  return (pa <= pb && pa <= pc) ? a : (pb <= pc ? b : c);
}
}  // namespace

torch::Tensor read_png(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  const std::vector<unsigned char> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  static const unsigned char signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (data.size() < 8 || !std::equal(signature, signature + 8, data.begin())) {
    ADD_FAILURE() << path << " is not a PNG";
    return {};
  }
  uint32_t width = 0, height = 0, channels = 0;
  std::vector<unsigned char> idat;
  for (size_t pos = 8; pos + 12 <= data.size();) {
    const uint32_t len = be32(&data[pos]);
    const std::string type(data.begin() + pos + 4, data.begin() + pos + 8);
    const unsigned char* body = &data[pos + 8];
    if (type == "IHDR") {
      width = be32(body);
      height = be32(body + 4);
      const int depth = body[8], colour = body[9], interlace = body[12];
      channels = colour == 2 ? 3 : colour == 6 ? 4 : colour == 0 ? 1 : 0;
      if (depth != 8 || channels == 0 || interlace != 0) {
        ADD_FAILURE() << path << ": only 8-bit, non-interlaced gray/RGB/RGBA PNGs are read here";
        return {};
      }
    } else if (type == "IDAT") {
      idat.insert(idat.end(), body, body + len);
    }
    pos += 12 + len;
  }
  const size_t stride = size_t(width) * channels;
  std::vector<unsigned char> raw((stride + 1) * height);
  uLongf raw_len = raw.size();
  if (uncompress(raw.data(), &raw_len, idat.data(), idat.size()) != Z_OK || raw_len != raw.size()) {
    ADD_FAILURE() << path << ": bad image data";
    return {};
  }
  auto out = torch::empty({int64_t(height), int64_t(width), int64_t(channels)}, torch::kUInt8);
  unsigned char* px = out.data_ptr<uint8_t>();
  for (uint32_t y = 0; y < height; ++y) {
    const unsigned char filter = raw[y * (stride + 1)];
    const unsigned char* src = &raw[y * (stride + 1) + 1];
    unsigned char* row = px + y * stride;
    const unsigned char* up = y ? row - stride : nullptr;
    for (size_t x = 0; x < stride; ++x) {
      const int a = x >= channels ? row[x - channels] : 0, b = up ? up[x] : 0;
      const int c = (up && x >= channels) ? up[x - channels] : 0;
      int pred = 0;
      switch (filter) {
        case 0: pred = 0; break;
        case 1: pred = a; break;
        case 2: pred = b; break;
        case 3: pred = (a + b) / 2; break;
        case 4: pred = paeth(a, b, c); break;
        default: ADD_FAILURE() << path << ": unknown PNG filter " << int(filter); return {};
      }
      row[x] = static_cast<unsigned char>(src[x] + pred);
    }
  }
  return out;
}

}  // namespace kiln::test
