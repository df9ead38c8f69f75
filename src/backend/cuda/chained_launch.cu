#include "backend/cuda/chained_launch.cuh"

#include "core/env_switch.h"

namespace hessgpt::cuda {
namespace {

// Built as every kernel here is (CMAKE_CUDA_ARCHITECTURES): the virtual
// architecture of the code the device loads for it is that of the chained
// kernels. ptxVersion, not binaryVersion: a newer GPU compiles the sm_80 PTX
// for itself (binaryVersion its own), and that PTX has no griddepcontrol.
__global__ void probe_kernel() {}

int code_ptx_version() {
  cudaFuncAttributes attributes{};
  if (cudaFuncGetAttributes(&attributes, probe_kernel) != cudaSuccess) {
    (void)cudaGetLastError();  // no device: launches stay plain
    return 0;
  }
  return attributes.ptxVersion;
}

}  // namespace

int loaded_code_ptx_version() {
  static const int version = code_ptx_version();
  return version;
}

int loaded_code_ptx_version_on(int device) {
  int current = 0;
  if (cudaGetDevice(&current) != cudaSuccess || cudaSetDevice(device) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  const int version = code_ptx_version();
  (void)cudaSetDevice(current);
  return version;
}

int device_compute_capability(int device) {
  int major = 0, minor = 0;
  if (device < 0 && cudaGetDevice(&device) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return 10 * major + minor;
}

bool chained_launches_on() {
  return env_switch_on("HESSGPT_CUDA_PDL") && loaded_code_ptx_version() >= 90;
}

}  // namespace hessgpt::cuda
