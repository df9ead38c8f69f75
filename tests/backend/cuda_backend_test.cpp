// What the backend registry says about CUDA, checked on every machine: the
// build lists it when compiled in, and a machine without a GPU (or without a
// driver) gets a clear error instead of a crash.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "backend/backend.h"
#include "common/test_util.h"
#ifdef HESSGPT_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace hessgpt {
namespace {

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

TEST(CudaBackendRegistry, CompiledBackendsFollowTheBuild) {
  const auto compiled = compiled_backends();
  EXPECT_TRUE(contains(compiled, "cpu"));
#ifdef HESSGPT_HAVE_CUDA
  EXPECT_TRUE(contains(compiled, "cuda"));
#else
  EXPECT_FALSE(contains(compiled, "cuda"));
#endif
  const auto available = available_backends();
  EXPECT_TRUE(contains(available, "cpu"));
  for (const auto& name : available) EXPECT_TRUE(contains(compiled, name)) << name;
}

TEST(CudaBackendRegistry, MakeBackendWithoutADeviceSaysSo) {
  if (contains(available_backends(), "cuda")) GTEST_SKIP() << "a CUDA device is present";
  try {
    make_backend("cuda", 1);
    FAIL() << "make_backend(\"cuda\") succeeded without a device";
  } catch (const Error& e) {
    const std::string msg = e.what();
#ifdef HESSGPT_HAVE_CUDA
    EXPECT_NE(msg.find("no CUDA device available"), std::string::npos) << msg;
#else
    EXPECT_NE(msg.find("not compiled"), std::string::npos) << msg;
#endif
  }
  // The default device falls back to the CPU.
  EXPECT_EQ(make_backend("", 1)->name(), "cpu");
}

// A command asked for --device cuda on a machine without one fails cleanly.
TEST(CudaBackendRegistry, CommandOnCudaWithoutADeviceIsAClearError) {
  if (contains(available_backends(), "cuda")) GTEST_SKIP() << "a CUDA device is present";
  const auto r = testing::run_command(testing::hessgpt_binary() +
                                      " bench train --device cuda --model tiny --steps 1 --json");
  EXPECT_NE(r.exit_code, 0) << r.out;
#ifdef HESSGPT_HAVE_CUDA
  EXPECT_NE(r.out.find("no CUDA device available"), std::string::npos) << r.out;
#else
  EXPECT_NE(r.out.find("not compiled"), std::string::npos) << r.out;
#endif
}

#ifdef HESSGPT_HAVE_CUDA
TEST(CudaBackendRegistry, DeviceCountNeverThrows) {
  int n = -1;
  EXPECT_NO_THROW(n = cuda_device_count());
  EXPECT_GE(n, 0);
  EXPECT_EQ(n > 0, contains(available_backends(), "cuda"));
}
#endif

TEST(CudaBackendRegistry, InfoBackendsJson) {
  const auto r = testing::run_command(testing::hessgpt_binary() + " info --backends --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("\"compiled\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"available\""), std::string::npos) << r.out;
#ifdef HESSGPT_HAVE_CUDA
  EXPECT_NE(r.out.find("\"cuda\""), std::string::npos) << r.out;
#endif
}

}  // namespace
}  // namespace hessgpt
