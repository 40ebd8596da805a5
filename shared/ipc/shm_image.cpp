#include "ipc/shm_image.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <deque>
#include <mutex>
#include <random>
#include <regex>

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>

namespace kiln::ipc {
namespace bip = boost::interprocess;

namespace {
constexpr char kMagic[8] = {'K', 'I', 'L', 'N', 'I', 'M', 'G', '\0'};
constexpr uint32_t kVersion = 1;

std::string prefix_for_user() { return "kiln." + std::to_string(::getuid()) + "."; }

// Checks a description and computes its stride and data size without overflow.
uint64_t checked_data_size(ImageDesc& d, bool fill_stride) {
  if (d.width == 0 || d.height == 0) throw ImageError("image has zero width or height");
  if (d.width > kMaxImageSide || d.height > kMaxImageSide)
    throw ImageError("image of " + std::to_string(d.width) + "x" + std::to_string(d.height) +
                     " is larger than the limit of " + std::to_string(kMaxImageSide) + " pixels per side");
  if (d.channels != 1 && d.channels != 3 && d.channels != 4)
    throw ImageError("image has " + std::to_string(d.channels) + " channels; Kiln takes 1, 3 or 4");
  if (d.dtype != PixelType::U8 && d.dtype != PixelType::U16 && d.dtype != PixelType::F32)
    throw ImageError("image has an unknown sample type");
  const uint64_t min_stride = d.min_stride();
  if (fill_stride && d.stride == 0) d.stride = min_stride;
  if (d.stride < min_stride)
    throw ImageError("row stride " + std::to_string(d.stride) + " is smaller than a row of pixels (" +
                     std::to_string(min_stride) + " bytes)");
  if (d.stride > min_stride + 4096) throw ImageError("row stride " + std::to_string(d.stride) + " has implausible padding");
  const uint64_t size = d.stride * d.height;  // both bounded above, cannot overflow
  if (size > kMaxImageBytes) throw ImageError("image needs " + std::to_string(size) + " bytes, over the 4 GiB limit");
  return size;
}
}  // namespace

struct ShmImage::Impl {
  std::string name;
  ImageDesc desc;
  std::shared_ptr<bip::mapped_region> region;  // shared with a ShmMappings cache
  uint8_t* pixels = nullptr;
  bool owner = false;
  bool writable = false;
  std::weak_ptr<ShmPool> pool;  // where an owned block goes back to

  uint64_t capacity() const { return region->get_size() - sizeof(ShmImageHeader); }
};

namespace {
void write_header(ShmImage::Impl& impl, uint64_t data_size) {
  auto* header = static_cast<ShmImageHeader*>(impl.region->get_address());
  const ImageDesc& desc = impl.desc;
  std::memset(header, 0, sizeof(*header));
  std::memcpy(header->magic, kMagic, sizeof kMagic);
  header->version = kVersion;
  header->header_size = sizeof(ShmImageHeader);
  header->width = desc.width;
  header->height = desc.height;
  header->channels = desc.channels;
  header->dtype = static_cast<uint32_t>(desc.dtype);
  header->stride = desc.stride;
  header->data_size = data_size;
  header->flags = desc.premultiplied ? 1u : 0u;
  header->color_space = static_cast<uint32_t>(desc.color_space);
  impl.pixels = static_cast<uint8_t*>(impl.region->get_address()) + sizeof(ShmImageHeader);
}
}  // namespace

ShmImage::ShmImage(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ShmImage::ShmImage(ShmImage&&) noexcept = default;
ShmImage& ShmImage::operator=(ShmImage&& other) noexcept {
  if (this != &other) {
    release(std::move(impl_));
    impl_ = std::move(other.impl_);
  }
  return *this;
}
ShmImage::~ShmImage() { release(std::move(impl_)); }

bool is_valid_shm_name(const std::string& name) {
  static const std::regex pattern(R"(kiln\.[0-9]{1,10}\.[0-9]{1,10}\.[0-9a-f]{32})");
  return name.size() < 80 && std::regex_match(name, pattern) && name.rfind(prefix_for_user(), 0) == 0;
}

std::string new_shm_name() {
  static thread_local std::random_device entropy;  // the OS's CSPRNG on Linux
  std::array<uint32_t, 4> words{entropy(), entropy(), entropy(), entropy()};
  static const char* hex = "0123456789abcdef";
  std::string name = prefix_for_user() + std::to_string(::getpid()) + ".";
  for (uint32_t w : words)
    for (int shift = 28; shift >= 0; shift -= 4) name.push_back(hex[(w >> shift) & 0xf]);
  return name;
}

bool remove_shm(const std::string& name) { return bip::shared_memory_object::remove(name.c_str()); }

ShmImage ShmImage::create(const ImageDesc& requested, const std::shared_ptr<ShmPool>& pool) {
  ImageDesc desc = requested;
  const uint64_t data_size = checked_data_size(desc, /*fill_stride=*/true);
  if (pool) {
    if (auto reused = pool->take(data_size)) {
      reused->desc = desc;
      write_header(*reused, data_size);
      return ShmImage(std::move(reused));
    }
  }
  auto impl = std::make_unique<Impl>();
  impl->pool = pool;
  impl->name = new_shm_name();
  impl->desc = desc;
  impl->owner = true;
  impl->writable = true;
  try {
    bip::permissions only_me(0600);
    bip::shared_memory_object shm(bip::create_only, impl->name.c_str(), bip::read_write, only_me);
    // From here on the name exists; make sure a failure below removes it.
    struct Guard {
      std::string* name;
      ~Guard() { if (name) remove_shm(*name); }
    } guard{&impl->name};
    shm.truncate(static_cast<bip::offset_t>(sizeof(ShmImageHeader) + data_size));
    // MAP_POPULATE faults the pages in one go inside the kernel: much faster than first-touch.
    impl->region = std::make_shared<bip::mapped_region>(shm, bip::read_write, 0, 0, nullptr, MAP_POPULATE);
    guard.name = nullptr;
  } catch (const bip::interprocess_exception& e) {
    throw ImageError(std::string("cannot create a shared-memory image: ") + e.what() +
                     " (is /dev/shm full? `df -h /dev/shm` tells)");
  }
  write_header(*impl, data_size);
  return ShmImage(std::move(impl));
}

namespace {
// Reads and checks the header of a mapped block; fills impl's desc and pixels. Throws ImageError.
void validate_mapped(ShmImage::Impl& impl) {
  const std::string& name = impl.name;
  const auto* header = static_cast<const ShmImageHeader*>(impl.region->get_address());
  const uint64_t mapped = impl.region->get_size();
  if (mapped < sizeof(ShmImageHeader))
    throw ImageError("image block '" + name + "' is smaller than its header (" + std::to_string(mapped) + " bytes)");
  if (std::memcmp(header->magic, kMagic, sizeof kMagic) != 0)
    throw ImageError("image block '" + name + "' has no Kiln image header");
  if (header->version != kVersion || header->header_size != sizeof(ShmImageHeader))
    throw ImageError("image block '" + name + "' has header version " + std::to_string(header->version) +
                     "; this Kiln reads version " + std::to_string(kVersion));
  ImageDesc desc;
  desc.width = header->width;
  desc.height = header->height;
  desc.channels = header->channels;
  desc.dtype = static_cast<PixelType>(header->dtype);
  desc.stride = header->stride;
  desc.premultiplied = header->flags & 1u;
  desc.color_space = header->color_space <= 2 ? static_cast<ColorSpace>(header->color_space) : ColorSpace::Unspecified;
  uint64_t data_size = 0;
  try {
    data_size = checked_data_size(desc, /*fill_stride=*/false);
  } catch (const ImageError& e) {
    throw ImageError("image block '" + name + "' has a bad header: " + e.what());
  }
  if (header->data_size != data_size || sizeof(ShmImageHeader) + data_size > mapped)
    throw ImageError("image block '" + name + "' header claims " + std::to_string(header->data_size) +
                     " bytes of pixels (" + std::to_string(data_size) + " for its size) but the block holds " +
                     std::to_string(mapped - sizeof(ShmImageHeader)));
  impl.desc = desc;
  impl.pixels = static_cast<uint8_t*>(impl.region->get_address()) + sizeof(ShmImageHeader);
}

void check_matches(const ShmImage& image, const ImageRef& ref) {
  const ImageDesc& h = image.desc();
  const ImageDesc& r = ref.desc;
  if (h.width != r.width || h.height != r.height || h.channels != r.channels || h.dtype != r.dtype || h.stride != r.stride)
    throw ImageError("image block '" + ref.shm + "' holds " + std::to_string(h.width) + "x" + std::to_string(h.height) +
                     "x" + std::to_string(h.channels) + " " + protocol::to_string(h.dtype) + " (stride " +
                     std::to_string(h.stride) + ") but the request says " + std::to_string(r.width) + "x" +
                     std::to_string(r.height) + "x" + std::to_string(r.channels) + " " + protocol::to_string(r.dtype) +
                     " (stride " + std::to_string(r.stride) + ")");
}

void check_name(const std::string& name) {
  if (!is_valid_shm_name(name))
    throw ImageError("'" + name.substr(0, 80) + "' is not the name of a Kiln image block of this user");
}

[[noreturn]] void rethrow_open_error(const bip::interprocess_exception& e, const std::string& name) {
  if (e.get_error_code() == bip::not_found_error)
    throw ImageError("image block '" + name + "' does not exist (it was removed, or its creator exited)");
  throw ImageError("cannot open image block '" + name + "': " + e.what());
}
}  // namespace

uint64_t image_data_size(const ImageDesc& desc) {
  ImageDesc d = desc;
  return checked_data_size(d, /*fill_stride=*/false);
}

ShmImage ShmImage::open(const std::string& name, Access access) {
  check_name(name);
  auto impl = std::make_unique<Impl>();
  impl->name = name;
  impl->writable = access == Access::ReadWrite;
  const auto mode = impl->writable ? bip::read_write : bip::read_only;
  try {
    bip::shared_memory_object shm(bip::open_only, name.c_str(), mode);
    bip::offset_t size = 0;
    if (!shm.get_size(size) || size < static_cast<bip::offset_t>(sizeof(ShmImageHeader)))
      throw ImageError("image block '" + name + "' is smaller than its header (" + std::to_string(size) + " bytes)");
    impl->region = std::make_shared<bip::mapped_region>(shm, mode, 0, 0, nullptr, MAP_POPULATE);
  } catch (const bip::interprocess_exception& e) {
    rethrow_open_error(e, name);
  }
  validate_mapped(*impl);
  return ShmImage(std::move(impl));
}

ShmImage ShmImage::open(const ImageRef& ref, Access access) {
  ShmImage image = open(ref.shm, access);
  check_matches(image, ref);
  return image;
}

struct ShmMappings::State {
  struct Entry {
    std::string name;
    dev_t dev = 0;
    ino_t ino = 0;
    uint64_t size = 0;
    bool writable = false;
    std::shared_ptr<bip::mapped_region> region;
    uint64_t last_use = 0;
  };
  mutable std::mutex mutex;
  std::size_t max_entries;
  uint64_t max_bytes;
  uint64_t clock = 0;
  std::vector<Entry> entries;

  void evict_beyond_limits() {
    auto total = [&] {
      uint64_t t = 0;
      for (const Entry& e : entries) t += e.size;
      return t;
    };
    while (!entries.empty() && (entries.size() > max_entries || total() > max_bytes)) {
      auto oldest = std::min_element(entries.begin(), entries.end(),
                                     [](const Entry& a, const Entry& b) { return a.last_use < b.last_use; });
      entries.erase(oldest);
    }
  }
};

ShmMappings::ShmMappings(std::size_t max_entries, uint64_t max_bytes) : state_(std::make_unique<State>()) {
  state_->max_entries = max_entries;
  state_->max_bytes = max_bytes;
}
ShmMappings::~ShmMappings() = default;

std::size_t ShmMappings::size() const {
  std::lock_guard lock(state_->mutex);
  return state_->entries.size();
}

void ShmMappings::clear() {
  std::lock_guard lock(state_->mutex);
  state_->entries.clear();
}

ShmImage ShmMappings::open(const ImageRef& ref, ShmImage::Access access) {
  const std::string& name = ref.shm;
  check_name(name);
  auto impl = std::make_unique<ShmImage::Impl>();
  impl->name = name;
  impl->writable = access == ShmImage::Access::ReadWrite;
  const auto mode = impl->writable ? bip::read_write : bip::read_only;
  std::lock_guard lock(state_->mutex);
  try {
    // Opening the name proves it still exists; its inode and size say whether the cached
    // mapping is of this very object.
    bip::shared_memory_object shm(bip::open_only, name.c_str(), mode);
    struct stat st {};
    if (::fstat(shm.get_mapping_handle().handle, &st) != 0)
      throw ImageError("cannot inspect image block '" + name + "': " + std::strerror(errno));
    if (static_cast<uint64_t>(st.st_size) < sizeof(ShmImageHeader))
      throw ImageError("image block '" + name + "' is smaller than its header (" + std::to_string(st.st_size) + " bytes)");
    auto& entries = state_->entries;
    auto it = std::find_if(entries.begin(), entries.end(), [&](const State::Entry& e) { return e.name == name; });
    if (it != entries.end() && (it->dev != st.st_dev || it->ino != st.st_ino || it->size != uint64_t(st.st_size) ||
                                (impl->writable && !it->writable))) {
      entries.erase(it);
      it = entries.end();
    }
    if (it == entries.end()) {
      State::Entry entry;
      entry.name = name;
      entry.dev = st.st_dev;
      entry.ino = st.st_ino;
      entry.size = static_cast<uint64_t>(st.st_size);
      entry.writable = impl->writable;
      entry.region = std::make_shared<bip::mapped_region>(shm, mode, 0, 0, nullptr, MAP_POPULATE);
      entries.push_back(std::move(entry));
      it = entries.end() - 1;
    }
    it->last_use = ++state_->clock;
    impl->region = it->region;
    state_->evict_beyond_limits();
  } catch (const bip::interprocess_exception& e) {
    rethrow_open_error(e, name);
  }
  validate_mapped(*impl);
  ShmImage image(std::move(impl));
  check_matches(image, ref);
  return image;
}

const std::string& ShmImage::name() const { return impl_->name; }
const ImageDesc& ShmImage::desc() const { return impl_->desc; }
ImageRef ShmImage::ref() const { return ImageRef{impl_->name, impl_->desc}; }
uint8_t* ShmImage::data() {
  if (!impl_->writable) throw ImageError("image block '" + impl_->name + "' was opened read-only");
  return impl_->pixels;
}
const uint8_t* ShmImage::data() const { return impl_->pixels; }
uint64_t ShmImage::data_size() const { return impl_->desc.stride * impl_->desc.height; }
bool ShmImage::owns_name() const { return impl_->owner; }
ShmImage ShmImage::share(Access access) const {
  auto impl = std::make_unique<Impl>();
  impl->name = impl_->name;
  impl->desc = impl_->desc;
  impl->region = impl_->region;
  impl->pixels = impl_->pixels;
  impl->writable = access == Access::ReadWrite && impl_->writable;
  return ShmImage(std::move(impl));
}
void ShmImage::disown() {
  impl_->owner = false;
  impl_->pool.reset();
}
void ShmImage::remove() {
  remove_shm(impl_->name);
  impl_->owner = false;
  impl_->pool.reset();
}

struct ShmPool::State {
  std::mutex mutex;
  std::size_t max_blocks;
  uint64_t max_bytes;
  std::deque<std::unique_ptr<ShmImage::Impl>> idle;  // oldest first
};

ShmPool::ShmPool(std::size_t max_blocks, uint64_t max_bytes) : state_(std::make_unique<State>()) {
  state_->max_blocks = max_blocks;
  state_->max_bytes = max_bytes;
}

ShmPool::~ShmPool() {
  for (auto& block : state_->idle) remove_shm(block->name);
}

std::size_t ShmPool::idle_blocks() const {
  std::lock_guard lock(state_->mutex);
  return state_->idle.size();
}

std::unique_ptr<ShmImage::Impl> ShmPool::take(uint64_t bytes_needed) {
  std::lock_guard lock(state_->mutex);
  // The smallest idle block that fits without wasting more than half of itself.
  auto best = state_->idle.end();
  for (auto it = state_->idle.begin(); it != state_->idle.end(); ++it) {
    const uint64_t cap = (*it)->capacity();
    if (cap >= bytes_needed && cap <= 2 * bytes_needed + (1u << 20) && (best == state_->idle.end() || cap < (*best)->capacity()))
      best = it;
  }
  if (best == state_->idle.end()) return nullptr;
  auto block = std::move(*best);
  state_->idle.erase(best);
  return block;
}

void ShmPool::give_back(std::unique_ptr<ShmImage::Impl> block) {
  std::lock_guard lock(state_->mutex);
  state_->idle.push_back(std::move(block));
  uint64_t total = 0;
  for (auto& b : state_->idle) total += b->region->get_size();
  while (!state_->idle.empty() && (state_->idle.size() > state_->max_blocks || total > state_->max_bytes)) {
    total -= state_->idle.front()->region->get_size();
    remove_shm(state_->idle.front()->name);
    state_->idle.pop_front();
  }
}

void ShmImage::release(std::unique_ptr<Impl> impl) {
  if (!impl || !impl->owner) return;
  if (auto pool = impl->pool.lock()) {
    pool->give_back(std::move(impl));
    return;
  }
  remove_shm(impl->name);
}

}  // namespace kiln::ipc
