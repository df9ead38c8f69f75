// Chained launches (programmatic dependent launch, sm_90 and later) for
// decoding's kernels. A token is ~160 small kernels (model1); each ran in a few
// microseconds and then the GPU sat through the next one's launch and ramp-up,
// together more time than the weights took to stream. A kernel launched with
// launch_chained may be placed on the GPU while the kernel before it on the
// stream still runs, and may read what no kernel on the stream writes (its
// weights: into L2) while it waits.
//
// The contract, in every kernel that launch_chained starts:
//   1. allow_next_grid() first: the next chained kernel may be placed once all
//      of this grid's blocks have started (they wait at step 3 of theirs);
//   2. optionally read memory nothing on the stream writes (weights; e.g.
//      prefetch_to_l2 in device_util.cuh);
//   3. wait_for_previous_grid() before touching anything else: it returns once
//      the kernels before it have finished and their writes are visible, so
//      ordering and results are those of plain launches.
// Without the switch (HESSGPT_CUDA_PDL=0) or on devices whose code lacks the
// instructions, launches are plain and both calls do nothing.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "backend/cuda/chained_launch.h"
#include "backend/cuda/cuda_check.h"

namespace hessgpt::cuda {

__device__ __forceinline__ void allow_next_grid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

__device__ __forceinline__ void wait_for_previous_grid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

template <typename... Params, typename... Args>
void launch_chained(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem,
                    cudaStream_t stream, Args... args) {
  cudaLaunchAttribute chained{};
  chained.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  chained.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  config.attrs = &chained;
  config.numAttrs = chained_launches_on() ? 1 : 0;
  HG_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, static_cast<Params>(args)...));
}

}  // namespace hessgpt::cuda
