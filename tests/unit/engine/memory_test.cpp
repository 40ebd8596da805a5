#include "engine/memory.h"

#include <unistd.h>

#include <cstring>
#include <memory>

#include <gtest/gtest.h>

namespace kiln::engine {
namespace {

TEST(Memory, CpuFreeAndTotalComeFromTheKernel) {
  const auto memory = device_memory(DeviceChoice{});
  ASSERT_TRUE(memory.has_value());
  const int64_t physical = int64_t(sysconf(_SC_PHYS_PAGES)) * int64_t(sysconf(_SC_PAGE_SIZE));
  EXPECT_EQ(memory->total_bytes, physical) << "MemTotal and sysconf disagree";
  EXPECT_GT(memory->free_bytes, 0);
  EXPECT_LE(memory->free_bytes, memory->total_bytes);
}

TEST(Memory, PeakRssSeesAnAllocationThatIsGoneAgain) {
  constexpr size_t kBytes = size_t{96} << 20;
  reset_peak_rss();
  const int64_t before = current_rss_bytes();
  ASSERT_GT(before, 0);
  {
    std::unique_ptr<char[]> block(new char[kBytes]);
    std::memset(block.get(), 1, kBytes);  // touched, so it is resident
    EXPECT_GE(current_rss_bytes(), before + int64_t(kBytes) * 9 / 10);
  }
  EXPECT_GE(peak_rss_bytes(), before + int64_t(kBytes) * 9 / 10);
}

TEST(Memory, NoDevicePeakOnTheCpu) {
  EXPECT_FALSE(peak_device_bytes(DeviceChoice{}).has_value());
  reset_peak_device_bytes(DeviceChoice{});  // a no-op there, not an error
}

}  // namespace
}  // namespace kiln::engine
