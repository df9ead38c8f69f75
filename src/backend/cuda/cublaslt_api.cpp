#include "backend/cuda/cublaslt_api.h"

#include <dlfcn.h>

#include <atomic>
#include <mutex>
#include <string>

#include "core/error.h"

namespace hessgpt::cuda {
namespace {

std::atomic<const CublasLtApi*> g_loaded{nullptr};

template <typename Fn>
void bind(void* lib, Fn& fn, const char* name) {
  fn = reinterpret_cast<Fn>(dlsym(lib, name));
  if (!fn) HG_FAIL("cuBLASLt: symbol ", name, " not found (", dlerror(), ")");
}

CublasLtApi load() {
  // The soname of the major version we compiled against, from the loader's
  // path first (LD_LIBRARY_PATH, ld.so.cache), then the toolkit's folder.
  const std::string soname = "libcublasLt.so." + std::to_string(CUBLAS_VER_MAJOR);
  void* lib = dlopen(soname.c_str(), RTLD_NOW | RTLD_LOCAL);
  std::string first_error = lib ? "" : dlerror();
#ifdef HESSGPT_CUDA_LIBRARY_DIR
  if (!lib) lib = dlopen((std::string(HESSGPT_CUDA_LIBRARY_DIR) + "/" + soname).c_str(),
                         RTLD_NOW | RTLD_LOCAL);
#endif
  if (!lib)
    HG_FAIL("cannot load ", soname, " (cuBLASLt, needed by the CUDA backend): ", first_error);
  CublasLtApi api{};
  bind(lib, api.create, "cublasLtCreate");
  bind(lib, api.destroy, "cublasLtDestroy");
  bind(lib, api.matmul_desc_create, "cublasLtMatmulDescCreate");
  bind(lib, api.matmul_desc_destroy, "cublasLtMatmulDescDestroy");
  bind(lib, api.matmul_desc_set_attribute, "cublasLtMatmulDescSetAttribute");
  bind(lib, api.matrix_layout_create, "cublasLtMatrixLayoutCreate");
  bind(lib, api.matrix_layout_destroy, "cublasLtMatrixLayoutDestroy");
  bind(lib, api.preference_create, "cublasLtMatmulPreferenceCreate");
  bind(lib, api.preference_destroy, "cublasLtMatmulPreferenceDestroy");
  bind(lib, api.preference_set_attribute, "cublasLtMatmulPreferenceSetAttribute");
  bind(lib, api.algo_get_heuristic, "cublasLtMatmulAlgoGetHeuristic");
  bind(lib, api.matmul, "cublasLtMatmul");
  bind(lib, api.status_name, "cublasLtGetStatusName");
  bind(lib, api.status_string, "cublasLtGetStatusString");
  return api;  // the library stays loaded for the life of the process
}

}  // namespace

const CublasLtApi& cublaslt() {
  static std::mutex mu;
  static CublasLtApi api{};
  std::lock_guard<std::mutex> lock(mu);
  if (!g_loaded.load()) {
    api = load();
    g_loaded.store(&api);
  }
  return api;
}

const CublasLtApi* cublaslt_if_loaded() { return g_loaded.load(); }

}  // namespace hessgpt::cuda
