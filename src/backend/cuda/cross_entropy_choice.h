// Which cross-entropy kernel the CUDA backend runs, as host code sees it: a
// plain C++ header (no CUDA types), for the tests and the diagnostics.
#pragma once

#include <cstdint>

namespace hessgpt::cuda {

// The kernel that takes rows of v values on this device now: "cluster"
// (one pass), "split" (two), "rows" or "warp" (HESSGPT_CE_KERNEL; the
// cluster kernel where the loaded code is sm_90's, a row is at most
// kCrossEntropyMaxCluster segments and the GPU has not refused the shape).
const char* cross_entropy_kernel_for(int64_t v);

}  // namespace hessgpt::cuda
