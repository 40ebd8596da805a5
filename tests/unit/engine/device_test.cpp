#include "engine/device.h"

#include <gtest/gtest.h>

#include "engine/error.h"

using namespace kiln::engine;

TEST(Device, CpuIsFloat32AndUsesAllCores) {
  DeviceChoice c = choose_device("cpu");
  EXPECT_TRUE(c.device.is_cpu());
  EXPECT_EQ(c.dtype, torch::kFloat32);
  EXPECT_EQ(at::get_num_threads(), static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  EXPECT_NE(describe_device(c).find("cpu"), std::string::npos);
}

TEST(Device, UnknownNamesAndPrecisionsAreClearErrors) {
  try {
    choose_device("gpu7");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find("gpu7"), std::string::npos);
  }
  EXPECT_THROW(choose_device("cpu", "fp8"), Error);
  EXPECT_THROW(choose_device("cpu", "fp16"), Error);  // half on CPU is refused, not silently slow
}

TEST(Device, AutoPicksCpuWithoutGpu) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "a CUDA device is present";
  EXPECT_TRUE(choose_device("auto").device.is_cpu());
}
