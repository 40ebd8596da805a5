#pragma once
// Images in shared memory. A block is a 64-byte self-describing header followed by the pixel
// rows. Names are "kiln.<uid>.<creator pid>.<128 random bits in hex>": unguessable, and they say
// whose block it is so the daemon can sweep the blocks of processes that died.
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include "protocol/image_ref.h"

namespace kiln::ipc {

using protocol::ColorSpace;
using protocol::ImageDesc;
using protocol::ImageRef;
using protocol::PixelType;

// On-wire header at offset 0 of every block (little-endian, as on every platform Kiln runs on).
struct ShmImageHeader {
  char magic[8];          // "KILNIMG\0"
  uint32_t version;       // 1
  uint32_t header_size;   // sizeof(ShmImageHeader) == 64; pixels start here
  uint32_t width, height;
  uint32_t channels;      // 1, 3, 4
  uint32_t dtype;         // PixelType
  uint64_t stride;        // bytes per row, >= width * channels * bytes per sample
  uint64_t data_size;     // stride * height
  uint32_t flags;         // bit 0: premultiplied alpha
  uint32_t color_space;   // ColorSpace
  uint8_t reserved[8];
};
static_assert(sizeof(ShmImageHeader) == 64, "the shm header is part of the protocol");

inline constexpr uint32_t kMaxImageSide = 32768;
inline constexpr uint64_t kMaxImageBytes = 4ull << 30;  // 4 GiB of pixels

class ImageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A mapped block. Move-only. The creator owns the name: destroying an owning ShmImage removes
// the name (the mapping of anyone who opened it stays valid until they close it).
class ShmPool;

class ShmImage {
 public:
  friend class ShmMappings;
  enum class Access { ReadOnly, ReadWrite };

  // Creates a block for `desc` (stride 0 = tightly packed). Throws ImageError.
  // With a pool, a block of a finished request is reused when one fits (no new pages to
  // allocate and zero), and destroying the image gives the block back instead of removing it.
  static ShmImage create(const ImageDesc& desc, const std::shared_ptr<ShmPool>& pool = nullptr);
  // Opens an existing block by name and validates its header against the mapping's size.
  // Throws ImageError naming the problem (bad name, missing, too small, lying header, ...).
  static ShmImage open(const std::string& name, Access access = Access::ReadOnly);
  // Opens and checks that the header agrees with what the JSON reference claims.
  static ShmImage open(const ImageRef& ref, Access access = Access::ReadOnly);

  ShmImage(ShmImage&&) noexcept;
  ShmImage& operator=(ShmImage&&) noexcept;
  ~ShmImage();

  const std::string& name() const;
  const ImageDesc& desc() const;
  ImageRef ref() const;
  uint8_t* data();                // first pixel row (ReadWrite only)
  const uint8_t* data() const;
  uint64_t data_size() const;     // stride * height
  uint8_t* row(uint32_t y) { return data() + desc().stride * y; }
  const uint8_t* row(uint32_t y) const { return data() + desc().stride * y; }

  // Another view of the same mapping, not owning the name (writable only if this one is).
  ShmImage share(Access access = Access::ReadOnly) const;

  bool owns_name() const;
  void disown();                  // hand the name to someone else (they remove it)
  void remove();                  // remove the name now; the mapping stays valid

  struct Impl;

 private:
  friend class ShmPool;
  explicit ShmImage(std::unique_ptr<Impl> impl);
  static void release(std::unique_ptr<Impl> impl);  // back to its pool, or removed
  std::unique_ptr<Impl> impl_;
};

// Mappings of other processes' blocks kept between requests (the daemon keeps one per session).
// A client reuses its blocks (ShmPool), so the daemon finds them already mapped: no fresh
// mapping, no page-table work per request. Every open still re-opens the name (it must exist and
// be the same object: same inode and size) and re-validates the header, which a reused block
// rewrites. Bounded (the least recently used mapping goes first); thread-safe.
class ShmMappings {
 public:
  explicit ShmMappings(std::size_t max_entries = 8, uint64_t max_bytes = 2ull << 30);
  ~ShmMappings();
  ShmImage open(const ImageRef& ref, ShmImage::Access access = ShmImage::Access::ReadOnly);
  std::size_t size() const;
  void clear();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// The pixel bytes of an image of `desc` (its stride must be set). Throws ImageError when the
// description is out of Kiln's limits.
uint64_t image_data_size(const ImageDesc& desc);

// Blocks kept for reuse by one process (the client side). Bounded: at most `max_blocks` idle
// blocks and `max_bytes` in all; the oldest go first. Thread-safe. Destroying the pool removes
// every idle block.
class ShmPool : public std::enable_shared_from_this<ShmPool> {
 public:
  explicit ShmPool(std::size_t max_blocks = 8, uint64_t max_bytes = 1ull << 30);
  ~ShmPool();
  std::size_t idle_blocks() const;

 private:
  friend class ShmImage;
  std::unique_ptr<ShmImage::Impl> take(uint64_t bytes_needed);
  void give_back(std::unique_ptr<ShmImage::Impl> block);

  struct State;
  std::unique_ptr<State> state_;
};

// Name checks: only well-formed names of this user are ever opened or removed.
bool is_valid_shm_name(const std::string& name);
std::string new_shm_name();               // for the current process
bool remove_shm(const std::string& name);  // true if it existed

}  // namespace kiln::ipc
