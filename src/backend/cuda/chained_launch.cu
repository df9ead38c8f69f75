#include "backend/cuda/chained_launch.cuh"

#include "core/env_switch.h"

namespace hessgpt::cuda {
namespace {

// Built as every kernel here is (CMAKE_CUDA_ARCHITECTURES): the version of
// the code the device loads for it is the version the chained kernels run.
__global__ void probe_kernel() {}

bool device_code_chains() {
  static const bool chains = [] {
    cudaFuncAttributes attributes{};
    if (cudaFuncGetAttributes(&attributes, probe_kernel) != cudaSuccess) {
      (void)cudaGetLastError();  // no device: launches stay plain
      return false;
    }
    return attributes.binaryVersion >= 90;
  }();
  return chains;
}

}  // namespace

bool chained_launches_on() { return env_switch_on("HESSGPT_CUDA_PDL") && device_code_chains(); }

}  // namespace hessgpt::cuda
