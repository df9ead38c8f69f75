// Chained launches (programmatic dependent launch, chained_launch.cuh) on the
// device: where they are on, a chained kernel starts while the kernel before
// it still runs, on a stream and in a replayed CUDA graph (decoding's recorded
// step); with HESSGPT_CUDA_PDL=0 it starts after. Skips without a CUDA device.
#include <gtest/gtest.h>

#include <cstdio>

#include "common/test_util.h"
#ifdef HESSGPT_HAVE_CUDA
#include "backend/cuda/chained_launch.h"
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
#endif

}  // namespace
}  // namespace hessgpt
