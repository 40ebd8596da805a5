#include "studio/png.h"

#include <png.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>

#include "studio/atomic_write.h"
#include "studio/error.h"
#include "studio/text_encoding.h"

namespace kiln::studio {
namespace {

// libpng reports errors by longjmp. The functions that call setjmp below create no C++ objects
// between setjmp and the libpng calls that may jump, so no destructor is ever skipped.
struct ErrorSink {
  char message[256] = "unknown libpng error";
};

void on_error(png_structp png, png_const_charp msg) {
  auto* sink = static_cast<ErrorSink*>(png_get_error_ptr(png));
  std::snprintf(sink->message, sizeof sink->message, "%s", msg);
  png_longjmp(png, 1);
}

void on_warning(png_structp, png_const_charp) {}  // ancillary-chunk warnings do not concern the caller

void write_to_string(png_structp png, png_bytep data, png_size_t length) {
  auto* out = static_cast<std::string*>(png_get_io_ptr(png));
  try {
    out->append(reinterpret_cast<const char*>(data), length);
  } catch (...) {
    png_error(png, "out of memory while encoding");  // never let a C++ exception cross libpng's C frames
  }
}

void flush_nothing(png_structp) {}

struct MemorySource {
  const uint8_t* data;
  std::size_t size;
  std::size_t pos;
};

void read_from_memory(png_structp png, png_bytep out, png_size_t length) {
  auto* src = static_cast<MemorySource*>(png_get_io_ptr(png));
  if (src->size - src->pos < length) png_error(png, "the file ends early (truncated)");
  std::memcpy(out, src->data + src->pos, length);
  src->pos += length;
}

bool valid_keyword(const std::string& key) {
  if (key.empty() || key.size() > 79 || key.front() == ' ' || key.back() == ' ') return false;
  for (const char c : key)
    if (c < 32 || c > 126) return false;
  return key.find("  ") == std::string::npos;
}

// Text prepared for png_set_text: libpng wants mutable char pointers, so the strings live here.
struct PreparedText {
  std::string key;
  std::string bytes;
  bool itxt = false;
};

bool encode_rows(png_structp png, png_infop info, int width, int height, int color_type, png_bytepp rows,
                 png_textp texts, int text_count) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), 8, color_type,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (text_count > 0) png_set_text(png, info, texts, text_count);
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, info);
  return true;
}

struct HeaderResult {
  png_uint_32 width = 0, height = 0;
  int channels = 0;
  std::size_t rowbytes = 0;
};

bool read_header(png_structp png, png_infop info, HeaderResult* out) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_info(png, info);
  const int color = png_get_color_type(png, info);
  const int depth = png_get_bit_depth(png, info);
  const bool trns = png_get_valid(png, info, PNG_INFO_tRNS) != 0;
  if (depth == 16) png_set_strip_16(png);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (trns) png_set_tRNS_to_alpha(png);
  // Grey with alpha becomes RGBA: callers handle 1, 3 and 4 channels only.
  if (color == PNG_COLOR_TYPE_GRAY_ALPHA || (color == PNG_COLOR_TYPE_GRAY && trns)) png_set_gray_to_rgb(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  out->width = png_get_image_width(png, info);
  out->height = png_get_image_height(png, info);
  out->channels = png_get_channels(png, info);
  out->rowbytes = png_get_rowbytes(png, info);
  return true;
}

bool read_rows(png_structp png, png_infop info, png_bytepp rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_image(png, rows);
  png_read_end(png, info);  // text chunks after the image data land in `info` too
  return true;
}

}  // namespace

const std::string* PngImage::find_text(std::string_view key) const {
  for (const TextChunk& t : text)
    if (t.key == key) return &t.value;
  return nullptr;
}

std::string encode_png(const PixelView& v, const std::vector<TextChunk>& text) {
  if (v.data == nullptr || v.width <= 0 || v.height <= 0)
    throw Error(ErrorKind::InvalidArgument, "cannot write a PNG of " + std::to_string(v.width) + "x" +
                                                std::to_string(v.height) + " pixels with no data");
  if (v.channels != 1 && v.channels != 3 && v.channels != 4)
    throw Error(ErrorKind::InvalidArgument, "PNG pixels must have 1 (grey), 3 (RGB) or 4 (RGBA) channels, not " +
                                                std::to_string(v.channels));
  const std::size_t row_bytes = static_cast<std::size_t>(v.width) * v.channels;
  const std::size_t stride = v.stride == 0 ? row_bytes : v.stride;
  if (stride < row_bytes)
    throw Error(ErrorKind::InvalidArgument, "PNG row stride " + std::to_string(stride) + " is shorter than a row (" +
                                                std::to_string(row_bytes) + " bytes)");

  std::vector<PreparedText> prepared;
  prepared.reserve(text.size());
  for (const TextChunk& t : text) {
    if (!valid_keyword(t.key))
      throw Error(ErrorKind::InvalidArgument, "'" + t.key + "' is not a valid PNG text keyword (1-79 printable ASCII "
                                              "characters, no leading, trailing or double spaces)");
    if (t.value.find('\0') != std::string::npos)
      throw Error(ErrorKind::InvalidArgument, "PNG text '" + t.key + "' contains a NUL character, which PNG text cannot hold");
    if (!is_valid_utf8(t.value))
      throw Error(ErrorKind::InvalidArgument, "PNG text '" + t.key + "' is not valid UTF-8");
    PreparedText p{t.key, {}, false};
    if (auto latin1 = utf8_to_latin1(t.value)) {
      p.bytes = std::move(*latin1);
    } else {
      p.bytes = t.value;
      p.itxt = true;
    }
    prepared.push_back(std::move(p));
  }
  std::vector<png_text> texts(prepared.size());
  static char empty[] = "";
  for (std::size_t i = 0; i < prepared.size(); ++i) {
    png_text& t = texts[i];
    std::memset(&t, 0, sizeof t);
    t.compression = prepared[i].itxt ? PNG_ITXT_COMPRESSION_NONE : PNG_TEXT_COMPRESSION_NONE;
    t.key = prepared[i].key.data();
    t.text = prepared[i].bytes.data();
    t.text_length = prepared[i].itxt ? 0 : prepared[i].bytes.size();
    t.itxt_length = prepared[i].itxt ? prepared[i].bytes.size() : 0;
    t.lang = empty;
    t.lang_key = empty;
  }
  std::vector<png_bytep> rows(static_cast<std::size_t>(v.height));
  for (int y = 0; y < v.height; ++y) rows[y] = const_cast<png_bytep>(v.data + stride * static_cast<std::size_t>(y));

  std::string out;
  out.reserve(row_bytes * v.height / 2 + 1024);
  ErrorSink sink;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &sink, on_error, on_warning);
  if (png == nullptr) throw std::bad_alloc();
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_write_struct(&png, nullptr);
    throw std::bad_alloc();
  }
  png_set_write_fn(png, &out, write_to_string, flush_nothing);
  const int color_type = v.channels == 1 ? PNG_COLOR_TYPE_GRAY : v.channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_RGBA;
  const bool ok =
      encode_rows(png, info, v.width, v.height, color_type, rows.data(), texts.data(), static_cast<int>(texts.size()));
  png_destroy_write_struct(&png, &info);
  if (!ok) throw Error(ErrorKind::InvalidArgument, std::string("cannot encode the PNG: ") + sink.message);
  return out;
}

void write_png(const std::filesystem::path& path, const PixelView& pixels, const std::vector<TextChunk>& text) {
  const std::string bytes = encode_png(pixels, text);
  write_atomically(path, bytes);
}

PngImage decode_png(std::string_view bytes, const std::string& name) {
  const auto bad = [&](const std::string& why) {
    return Error(ErrorKind::BadFormat, "cannot read " + name + " as a PNG: " + why + "; the file is damaged or not a PNG");
  };
  if (bytes.size() < 8 || png_sig_cmp(reinterpret_cast<png_const_bytep>(bytes.data()), 0, 8) != 0)
    throw bad("it does not start with the PNG signature");

  ErrorSink sink;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &sink, on_error, on_warning);
  if (png == nullptr) throw std::bad_alloc();
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    throw std::bad_alloc();
  }
  // Frees libpng's state on every path out, exceptions included.
  const auto destroy = [&](void*) { png_destroy_read_struct(&png, &info, nullptr); };
  std::unique_ptr<void, decltype(destroy)> guard(reinterpret_cast<void*>(1), destroy);

  MemorySource src{reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), 0};
  png_set_read_fn(png, &src, read_from_memory);
  png_set_user_limits(png, 32768, 32768);  // the same bound the daemon puts on shared-memory images

  HeaderResult header;
  if (!read_header(png, info, &header)) throw bad(sink.message);
  if (header.channels != 1 && header.channels != 3 && header.channels != 4)
    throw bad("unexpected channel count " + std::to_string(header.channels));

  PngImage image;
  image.width = static_cast<int>(header.width);
  image.height = static_cast<int>(header.height);
  image.channels = header.channels;
  image.pixels.resize(header.rowbytes * header.height);
  std::vector<png_bytep> rows(header.height);
  for (png_uint_32 y = 0; y < header.height; ++y) rows[y] = image.pixels.data() + header.rowbytes * y;
  if (!read_rows(png, info, rows.data())) throw bad(sink.message);

  png_textp texts = nullptr;
  const int count = png_get_text(png, info, &texts, nullptr);
  for (int i = 0; i < count; ++i) {
    const png_text& t = texts[i];
    const bool itxt = t.compression == PNG_ITXT_COMPRESSION_NONE || t.compression == PNG_ITXT_COMPRESSION_zTXt;
    const std::string_view raw(t.text != nullptr ? t.text : "", itxt ? t.itxt_length : t.text_length);
    image.text.push_back({t.key, itxt ? std::string(raw) : latin1_to_utf8(raw)});
  }
  return image;
}

std::string read_file_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorKind::NotFound, "cannot open " + path.string() + ": it does not exist or is not readable");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw Error(ErrorKind::NotFound, "cannot read " + path.string());
  return bytes;
}

PngImage read_png(const std::filesystem::path& path) { return decode_png(read_file_bytes(path), path.string()); }

}  // namespace kiln::studio
