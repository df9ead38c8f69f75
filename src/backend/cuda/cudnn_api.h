// cuDNN's graph API, loaded on first use instead of linked, like cuBLASLt
// (cublaslt_api.h): only the fused attention uses it, and only where the
// library is installed. The headers come from the toolkit (or CUDNN_ROOT);
// the library is found at run time, so a build runs on a machine without it.
#pragma once

#include <cudnn_graph.h>

#include <string>

namespace hessgpt::cuda {

struct CudnnApi {
  decltype(&cudnnGetVersion) get_version;
  decltype(&cudnnGetErrorString) error_string;
  decltype(&cudnnGetLastErrorString) last_error_string;
  decltype(&cudnnCreate) create;
  decltype(&cudnnDestroy) destroy;
  decltype(&cudnnSetStream) set_stream;
  decltype(&cudnnBackendCreateDescriptor) create_descriptor;
  decltype(&cudnnBackendDestroyDescriptor) destroy_descriptor;
  decltype(&cudnnBackendFinalize) finalize;
  decltype(&cudnnBackendSetAttribute) set_attribute;
  decltype(&cudnnBackendGetAttribute) get_attribute;
  decltype(&cudnnBackendExecute) execute;
};

// The loaded API, or nullptr when the library cannot be loaded (then `why`,
// if given, says why). Loads once, thread-safe; never throws.
const CudnnApi* cudnn(std::string* why = nullptr);

}  // namespace hessgpt::cuda
