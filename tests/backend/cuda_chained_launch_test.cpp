// Chained launches (programmatic dependent launch, chained_launch.cuh) on the
// device: where they are on, a chained kernel starts while the kernel before
// it still runs, on a stream and in a replayed CUDA graph (decoding's recorded
// step); with HESSGPT_CUDA_PDL=0 it starts after. And an sm_90 device runs
// the sm_90 code those launches (and the one-pass cross-entropy) need. Skips
// without a CUDA device.
#include <gtest/gtest.h>

#include <cstdio>
#include <vector>

#include "common/test_util.h"
#ifdef HESSGPT_HAVE_CUDA
#include "backend/cuda/chained_launch.h"
#include "backend/cuda/cross_entropy_choice.h"
#include "backend/cuda/cuda_backend.h"
#endif

namespace hessgpt {
namespace {

#ifdef HESSGPT_HAVE_CUDA
TEST(CudaLaunchConfig, ChainedLaunchesOverlapWhereOn) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  constexpr double kSpinUs = 50.0;
  for (const bool in_graph : {false, true}) {
    const char* where = in_graph ? "in a CUDA graph" : "on a stream";
    const double chained = cuda::chained_launch_overlap_us(in_graph, kSpinUs);
    const double plain = [&] {
      const testing::ScopedEnv off("HESSGPT_CUDA_PDL", "0");
      return cuda::chained_launch_overlap_us(in_graph, kSpinUs);
    }();
    std::printf("chained launches %s (%s, code of compute_%d): the second kernel started %.1f us "
                "before the first ended; plain launches: %.1f us\n",
                where, cuda::chained_launches_on() ? "on" : "off", cuda::loaded_code_ptx_version(),
                chained, plain);
    EXPECT_LE(plain, 0.0) << where << ": a plain launch started before the kernel before it ended";
    if (cuda::chained_launches_on()) {
      EXPECT_GT(chained, kSpinUs / 2)
          << where << ": the chained kernel waited for the first to end";
    }
  }
}

// The build makes sm_90 code (CMAKE_CUDA_ARCHITECTURES "90-real;80-virtual"):
// an sm_90 device must run it, not the portable PTX, or chained launches and
// the one-pass cross-entropy are silently off (the seventh GPU session saw
// decoding at the same rate with chained launches and without). Off sm_9x
// (which the build has no code of its own for) it only reports.
TEST(CudaLaunchConfig, HopperRunsItsOwnCode) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const int device = cuda::device_compute_capability(), code = cuda::loaded_code_ptx_version();
  const testing::ScopedEnv default_kernel("HESSGPT_CE_KERNEL", "");
  std::printf("device sm_%d runs code of compute_%d: chained launches %s, cross-entropy over "
              "32008 values by the %s kernel\n",
              device, code, cuda::chained_launches_on() ? "on" : "off",
              cuda::cross_entropy_kernel_for(32008));
  EXPECT_STREQ(cuda::cross_entropy_kernel_for(8 * 4096 + 1), "split") << "9 segments a row";
  const std::vector<GpuInfo> gpus = available_gpus();  // what `info --backends` lists
  ASSERT_FALSE(gpus.empty());
  EXPECT_EQ(gpus[0].compute_capability, device);
  EXPECT_EQ(gpus[0].code_architecture, code);
  if (device < 90 || device >= 100) return;
  EXPECT_GE(code, 90) << "an sm_" << device << " device runs the portable PTX";
  EXPECT_STREQ(cuda::cross_entropy_kernel_for(32008), "cluster");
  const testing::ScopedEnv pdl_default("HESSGPT_CUDA_PDL", "");
  EXPECT_TRUE(cuda::chained_launches_on());
}
#endif

}  // namespace
}  // namespace hessgpt
