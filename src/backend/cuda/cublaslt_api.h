// cuBLASLt, loaded on first use instead of linked. The library is over half a
// gigabyte and registers its kernels when it is loaded: linked, it cost every
// hessgpt process and every test ~0.1 s and ~200 MB resident at start-up,
// GPU or not. Only a CudaBackend loads it.
#pragma once

#include <cublasLt.h>

namespace hessgpt::cuda {

struct CublasLtApi {
  decltype(&cublasLtCreate) create;
  decltype(&cublasLtDestroy) destroy;
  decltype(&cublasLtMatmulDescCreate) matmul_desc_create;
  decltype(&cublasLtMatmulDescDestroy) matmul_desc_destroy;
  decltype(&cublasLtMatmulDescSetAttribute) matmul_desc_set_attribute;
  decltype(&cublasLtMatrixLayoutCreate) matrix_layout_create;
  decltype(&cublasLtMatrixLayoutDestroy) matrix_layout_destroy;
  decltype(&cublasLtMatmulPreferenceCreate) preference_create;
  decltype(&cublasLtMatmulPreferenceDestroy) preference_destroy;
  decltype(&cublasLtMatmulPreferenceSetAttribute) preference_set_attribute;
  decltype(&cublasLtMatmulAlgoGetHeuristic) algo_get_heuristic;
  decltype(&cublasLtMatmul) matmul;
  decltype(&cublasLtGetStatusName) status_name;
  decltype(&cublasLtGetStatusString) status_string;
};

// Loads the library once (thread-safe); throws Error naming the library and
// the loader's message when it cannot be found.
const CublasLtApi& cublaslt();
// The loaded API, or nullptr when it has not been loaded (error messages).
const CublasLtApi* cublaslt_if_loaded();

}  // namespace hessgpt::cuda
