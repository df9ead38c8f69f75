#include "backend/cuda/chained_launch.cuh"

#include "core/env_switch.h"

namespace hessgpt::cuda {
namespace {

// Built as every kernel here is (CMAKE_CUDA_ARCHITECTURES): the virtual
// architecture of the code the device loads for it is that of the chained
// kernels. ptxVersion, not binaryVersion: a newer GPU compiles the sm_80 PTX
// for itself (binaryVersion its own), and that PTX has no griddepcontrol.
__global__ void probe_kernel() {}

bool device_code_chains() {
  static const bool chains = [] {
    cudaFuncAttributes attributes{};
    if (cudaFuncGetAttributes(&attributes, probe_kernel) != cudaSuccess) {
      (void)cudaGetLastError();  // no device: launches stay plain
      return false;
    }
    return attributes.ptxVersion >= 90;
  }();
  return chains;
}

}  // namespace

bool chained_launches_on() { return env_switch_on("HESSGPT_CUDA_PDL") && device_code_chains(); }

}  // namespace hessgpt::cuda
