// Checked CUDA and cuBLASLt calls: a failure throws hessgpt::Error naming the
// call, the library's error string and file:line. Kernel launches are checked
// with HG_CUDA_CHECK_LAUNCH() right after the <<<...>>> (launch errors only;
// faults inside a kernel surface at the next checked synchronising call).
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include "core/error.h"

namespace hessgpt::cuda {

[[noreturn]] void throw_cuda_error(const char* call, cudaError_t err, const char* file, int line);
[[noreturn]] void throw_cublas_error(const char* call, cublasStatus_t status, const char* file,
                                     int line);

}  // namespace hessgpt::cuda

#define HG_CUDA_CHECK(call)                                                  \
  do {                                                                       \
    const cudaError_t hg_err_ = (call);                                      \
    if (hg_err_ != cudaSuccess)                                              \
      ::hessgpt::cuda::throw_cuda_error(#call, hg_err_, __FILE__, __LINE__); \
  } while (0)

#define HG_CUBLAS_CHECK(call)                                                   \
  do {                                                                          \
    const cublasStatus_t hg_status_ = (call);                                   \
    if (hg_status_ != CUBLAS_STATUS_SUCCESS)                                    \
      ::hessgpt::cuda::throw_cublas_error(#call, hg_status_, __FILE__, __LINE__); \
  } while (0)

#define HG_CUDA_CHECK_LAUNCH() HG_CUDA_CHECK(cudaGetLastError())
