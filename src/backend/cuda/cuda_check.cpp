#include "backend/cuda/cuda_check.h"

#include "backend/cuda/cublaslt_api.h"

namespace hessgpt::cuda {

void throw_cuda_error(const char* call, cudaError_t err, const char* file, int line) {
  throw_error_at(file, line,
                 str_cat("CUDA call failed: ", call, ": ", cudaGetErrorName(err), " (",
                         cudaGetErrorString(err), ")"));
}

void throw_cublas_error(const char* call, cublasStatus_t status, const char* file, int line) {
  const CublasLtApi* lt = cublaslt_if_loaded();
  if (!lt)
    throw_error_at(file, line, str_cat("cuBLASLt call failed: ", call, ": status ",
                                       static_cast<int>(status)));
  throw_error_at(file, line,
                 str_cat("cuBLASLt call failed: ", call, ": ", lt->status_name(status), " (",
                         lt->status_string(status), ")"));
}

}  // namespace hessgpt::cuda
