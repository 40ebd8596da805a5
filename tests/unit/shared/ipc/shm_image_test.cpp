#include "ipc/shm_image.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <random>

#include <gtest/gtest.h>

#include "ipc/shm_sweep.h"

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>

using namespace kiln::ipc;

namespace {
bool exists(const std::string& name) {
  const int fd = ::shm_open(("/" + name).c_str(), O_RDONLY, 0);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

// Fills every byte of the pixel rows with a pattern that depends on the position.
void fill(ShmImage& image, uint32_t seed) {
  const auto& d = image.desc();
  for (uint32_t y = 0; y < d.height; ++y) {
    uint8_t* row = image.row(y);
    for (uint64_t x = 0; x < d.min_stride(); ++x) row[x] = static_cast<uint8_t>((x * 31 + y * 17 + seed) & 0xff);
  }
}

bool same_pixels(const ShmImage& a, const ShmImage& b) {
  if (a.desc().height != b.desc().height || a.desc().min_stride() != b.desc().min_stride()) return false;
  for (uint32_t y = 0; y < a.desc().height; ++y)
    if (std::memcmp(a.row(y), b.row(y), a.desc().min_stride()) != 0) return false;
  return true;
}

// Raw write access to a block's header, to forge lies.
ShmImageHeader* raw_header(const std::string& name, void** mapping, std::size_t* size) {
  const int fd = ::shm_open(("/" + name).c_str(), O_RDWR, 0);
  struct stat st{};
  ::fstat(fd, &st);
  *size = static_cast<std::size_t>(st.st_size);
  *mapping = ::mmap(nullptr, *size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  return static_cast<ShmImageHeader*>(*mapping);
}

ImageDesc desc(uint32_t w, uint32_t h, uint32_t c, PixelType t, uint64_t stride = 0) {
  ImageDesc d;
  d.width = w;
  d.height = h;
  d.channels = c;
  d.dtype = t;
  d.stride = stride;
  return d;
}
}  // namespace

struct RoundTripCase {
  uint32_t w, h, c;
  PixelType t;
  uint64_t extra_stride;
};

class ShmRoundTrip : public ::testing::TestWithParam<RoundTripCase> {};

TEST_P(ShmRoundTrip, PixelsAndHeaderSurviveOpen) {
  const RoundTripCase p = GetParam();
  ImageDesc d = desc(p.w, p.h, p.c, p.t);
  if (p.extra_stride) d.stride = d.min_stride() + p.extra_stride;
  ShmImage created = ShmImage::create(d);
  fill(created, p.w);
  const ShmImage opened = ShmImage::open(created.ref());
  EXPECT_EQ(opened.desc().width, p.w);
  EXPECT_EQ(opened.desc().height, p.h);
  EXPECT_EQ(opened.desc().channels, p.c);
  EXPECT_EQ(opened.desc().dtype, p.t);
  EXPECT_EQ(opened.desc().stride, created.desc().stride);
  EXPECT_TRUE(same_pixels(created, opened));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(opened.data()) % 64, 0u) << "pixels must be aligned for SIMD";
}

INSTANTIATE_TEST_SUITE_P(
    Sizes, ShmRoundTrip,
    ::testing::Values(RoundTripCase{1, 1, 4, PixelType::U8, 0}, RoundTripCase{1, 1, 1, PixelType::U8, 0},
                      RoundTripCase{333, 77, 3, PixelType::U8, 0}, RoundTripCase{333, 77, 3, PixelType::U8, 7},
                      RoundTripCase{1001, 3, 4, PixelType::U16, 0}, RoundTripCase{17, 19, 4, PixelType::F32, 12},
                      RoundTripCase{8192, 8192, 4, PixelType::U8, 0}));

TEST(ShmImage, NamesAreUnguessableAndOfThisUser) {
  const std::string a = new_shm_name(), b = new_shm_name();
  EXPECT_NE(a, b);
  EXPECT_TRUE(is_valid_shm_name(a));
  EXPECT_EQ(a.size(), std::string("kiln.").size() + std::to_string(::getuid()).size() + 1 +
                          std::to_string(::getpid()).size() + 1 + 32);
  EXPECT_FALSE(is_valid_shm_name("kiln.99999.1.0123456789abcdef0123456789abcdef"));  // another uid
  EXPECT_FALSE(is_valid_shm_name("../etc/passwd"));
  EXPECT_FALSE(is_valid_shm_name("/kiln." + std::to_string(::getuid()) + ".1.0123456789abcdef0123456789abcdef"));
  EXPECT_FALSE(is_valid_shm_name("kiln." + std::to_string(::getuid()) + ".1.0123456789ABCDEF0123456789abcdef"));
  EXPECT_FALSE(is_valid_shm_name(""));
}

TEST(ShmImage, OwnerRemovesTheNameOnDestruction) {
  std::string name;
  {
    ShmImage image = ShmImage::create(desc(8, 8, 4, PixelType::U8));
    name = image.name();
    EXPECT_TRUE(exists(name));
  }
  EXPECT_FALSE(exists(name));
}

TEST(ShmImage, MissingAndBadNamesAreClearErrors) {
  const std::string missing = new_shm_name();
  try {
    ShmImage::open(missing);
    FAIL();
  } catch (const ImageError& e) {
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ShmImage::open("../../etc/passwd"), ImageError);
  EXPECT_THROW(ShmImage::open("kiln.0.1.zz"), ImageError);
}

TEST(ShmImage, HeaderLiesAreDetected) {
  struct Lie {
    const char* what;
    std::function<void(ShmImageHeader&)> forge;
  };
  const std::vector<Lie> lies = {
      {"bad magic", [](ShmImageHeader& h) { h.magic[0] = 'X'; }},
      {"newer version", [](ShmImageHeader& h) { h.version = 9; }},
      {"taller than the block", [](ShmImageHeader& h) { h.height *= 2; h.data_size *= 2; }},
      {"data size disagrees", [](ShmImageHeader& h) { h.data_size += 1; }},
      {"stride below a row", [](ShmImageHeader& h) { h.stride = 3; }},
      {"5 channels", [](ShmImageHeader& h) { h.channels = 5; }},
      {"unknown dtype", [](ShmImageHeader& h) { h.dtype = 77; }},
      {"zero width", [](ShmImageHeader& h) { h.width = 0; }},
      {"huge width", [](ShmImageHeader& h) { h.width = 0x7fffffff; }},
  };
  for (const Lie& lie : lies) {
    ShmImage image = ShmImage::create(desc(16, 16, 4, PixelType::U8));
    void* mapping = nullptr;
    std::size_t size = 0;
    lie.forge(*raw_header(image.name(), &mapping, &size));
    ::munmap(mapping, size);
    EXPECT_THROW(ShmImage::open(image.name()), ImageError) << lie.what;
  }
}

TEST(ShmImage, BlockSmallerThanItsHeaderIsRefused) {
  const std::string name = new_shm_name();
  const int fd = ::shm_open(("/" + name).c_str(), O_CREAT | O_RDWR, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 10), 0);
  ::close(fd);
  EXPECT_THROW(ShmImage::open(name), ImageError);
  remove_shm(name);
}

TEST(ShmImage, ReferenceThatDisagreesWithTheHeaderIsRefused) {
  ShmImage image = ShmImage::create(desc(10, 10, 4, PixelType::U8));
  ImageRef ref = image.ref();
  ref.desc.width = 20;
  try {
    ShmImage::open(ref);
    FAIL();
  } catch (const ImageError& e) {
    EXPECT_NE(std::string(e.what()).find("10x10"), std::string::npos) << e.what();
  }
}

TEST(ShmImage, InvalidDescriptionsAreRefusedAtCreation) {
  EXPECT_THROW(ShmImage::create(desc(0, 5, 4, PixelType::U8)), ImageError);
  EXPECT_THROW(ShmImage::create(desc(5, 5, 2, PixelType::U8)), ImageError);
  EXPECT_THROW(ShmImage::create(desc(40000, 5, 4, PixelType::U8)), ImageError);
  EXPECT_THROW(ShmImage::create(desc(5, 5, 4, PixelType::U8, 3)), ImageError);  // stride below a row
  EXPECT_THROW(ShmImage::create(desc(32768, 32768, 4, PixelType::F32)), ImageError);  // 16 GiB
}

TEST(ShmImage, ReadOnlyOpenRefusesWrites) {
  ShmImage image = ShmImage::create(desc(4, 4, 4, PixelType::U8));
  ShmImage ro = ShmImage::open(image.name());
  EXPECT_THROW(ro.data(), ImageError);
  ShmImage rw = ShmImage::open(image.name(), ShmImage::Access::ReadWrite);
  rw.data()[0] = 99;
  EXPECT_EQ(image.data()[0], 99);
}

TEST(ShmPool, ReusesFinishedBlocksAndRewritesTheHeader) {
  auto pool = std::make_shared<ShmPool>();
  std::string first;
  {
    ShmImage a = ShmImage::create(desc(64, 64, 4, PixelType::U8), pool);
    first = a.name();
  }
  EXPECT_TRUE(exists(first)) << "a pooled block is kept for reuse";
  EXPECT_EQ(pool->idle_blocks(), 1u);
  {
    ShmImage b = ShmImage::create(desc(60, 64, 4, PixelType::U8), pool);
    EXPECT_EQ(b.name(), first) << "a block that fits is reused";
    const ShmImage seen = ShmImage::open(b.name());
    EXPECT_EQ(seen.desc().width, 60u) << "the header describes the new image";
    ShmImage c = ShmImage::create(desc(8, 8, 4, PixelType::U8), pool);  // far smaller: a new block
    EXPECT_NE(c.name(), first);
  }
  EXPECT_EQ(pool->idle_blocks(), 2u);
  pool.reset();
  EXPECT_FALSE(exists(first)) << "destroying the pool removes idle blocks";
}

TEST(ShmPool, IsBoundedOldestFirst) {
  auto pool = std::make_shared<ShmPool>(2, 1ull << 30);
  std::vector<std::string> names;
  {
    std::vector<ShmImage> images;
    for (uint32_t side : {16u, 32u, 64u}) images.push_back(ShmImage::create(desc(side, side, 4, PixelType::U8), pool));
    for (auto& i : images) names.push_back(i.name());
  }
  EXPECT_EQ(pool->idle_blocks(), 2u);
  EXPECT_FALSE(exists(names[0]));
  EXPECT_TRUE(exists(names[2]));
}

TEST(ShmSweep, RemovesBlocksOfDeadCreatorsOnly) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // A client that dies without cleaning up: the block stays behind.
    ShmImage image = ShmImage::create(desc(32, 32, 4, PixelType::U8));
    const std::string name = image.name();
    image.disown();
    [[maybe_unused]] ssize_t n = ::write(pipe_fds[1], name.data(), name.size());
    ::_exit(0);
  }
  char buf[128] = {0};
  const ssize_t n = ::read(pipe_fds[0], buf, sizeof buf - 1);
  ::waitpid(child, nullptr, 0);
  ASSERT_GT(n, 0);
  const std::string orphan(buf, static_cast<std::size_t>(n));
  ShmImage mine = ShmImage::create(desc(8, 8, 4, PixelType::U8));
  ASSERT_TRUE(exists(orphan));
  const auto removed = sweep_orphan_shm_blocks();
  EXPECT_NE(std::find(removed.begin(), removed.end(), orphan), removed.end());
  EXPECT_FALSE(exists(orphan));
  EXPECT_TRUE(exists(mine.name())) << "blocks of live processes are never swept";
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
}

TEST(ShmMappings, AReusedBlockIsMappedOnceAndItsNewHeaderRead) {
  auto pool = std::make_shared<ShmPool>();
  ShmMappings mappings;
  std::string name;
  const uint8_t* first_view = nullptr;
  {
    ShmImage a = ShmImage::create(desc(64, 64, 4, PixelType::U8), pool);
    name = a.name();
    a.data()[0] = 7;
    const ShmImage seen = mappings.open(a.ref());
    EXPECT_EQ(seen.data()[0], 7);
    first_view = seen.data();
  }
  // The pool gives the same block back for a smaller image: the cached mapping serves it, with
  // the description the new header gives.
  ShmImage b = ShmImage::create(desc(60, 64, 4, PixelType::U8), pool);
  ASSERT_EQ(b.name(), name);
  b.data()[0] = 9;
  const ShmImage again = mappings.open(b.ref(), ShmImage::Access::ReadWrite);
  EXPECT_EQ(again.data(), first_view) << "no fresh mapping";
  EXPECT_EQ(again.desc().width, 60u);
  EXPECT_EQ(again.data()[0], 9);
  EXPECT_EQ(mappings.size(), 1u);
  ImageRef gone;
  {
    ShmImage c = ShmImage::create(desc(8, 8, 4, PixelType::U8));
    gone = c.ref();
    mappings.open(gone);
  }
  EXPECT_THROW(mappings.open(gone), ImageError) << "a removed block is not served from the cache";
}

TEST(ShmMappings, ANameThatNowNamesAnotherBlockIsMappedAgain) {
  namespace bip = boost::interprocess;
  ShmMappings mappings;
  ShmImage a = ShmImage::create(desc(16, 16, 4, PixelType::U8));
  a.data()[0] = 1;
  const std::string name = a.name();
  EXPECT_EQ(static_cast<const ShmImage&>(mappings.open(a.ref())).data()[0], 1);
  a.remove();
  // Another object under the same name (only a client doing odd things could): a copy of the
  // old block with other pixels. The cached mapping of the old object must not answer for it.
  const uint64_t size = sizeof(ShmImageHeader) + a.data_size();
  {
    bip::shared_memory_object shm(bip::create_only, name.c_str(), bip::read_write, bip::permissions(0600));
    shm.truncate(static_cast<bip::offset_t>(size));
    bip::mapped_region region(shm, bip::read_write);
    std::memcpy(region.get_address(), a.data() - sizeof(ShmImageHeader), size);
    static_cast<uint8_t*>(region.get_address())[sizeof(ShmImageHeader)] = 2;
  }
  EXPECT_EQ(static_cast<const ShmImage&>(mappings.open(a.ref())).data()[0], 2);
  remove_shm(name);
}
