#include "backend/cuda/cudnn_api.h"

#include <dlfcn.h>

#include <mutex>

namespace hessgpt::cuda {
namespace {

template <typename Fn>
bool bind(void* lib, Fn& fn, const char* name, std::string& why) {
  fn = reinterpret_cast<Fn>(dlsym(lib, name));
  if (!fn) why = std::string("symbol ") + name + " not found";
  return fn != nullptr;
}

// The soname of the major version we compiled against: libcudnn.so.N (the
// dispatching library) from the loader's path, then the toolkit's folder.
void* open_library(std::string& why) {
  const std::string soname = "libcudnn.so." + std::to_string(CUDNN_MAJOR);
  void* lib = dlopen(soname.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib) return lib;
  why = dlerror();
#ifdef HESSGPT_CUDA_LIBRARY_DIR
  lib = dlopen((std::string(HESSGPT_CUDA_LIBRARY_DIR) + "/" + soname).c_str(),
               RTLD_NOW | RTLD_LOCAL);
#endif
  return lib;
}

struct Loaded {
  CudnnApi api{};
  bool ok = false;
  std::string why;
};

Loaded load() {
  Loaded l;
  void* lib = open_library(l.why);
  if (!lib) {
    l.why = "cannot load libcudnn.so." + std::to_string(CUDNN_MAJOR) + ": " + l.why;
    return l;
  }
  CudnnApi& a = l.api;
  l.ok = bind(lib, a.get_version, "cudnnGetVersion", l.why) &&
         bind(lib, a.error_string, "cudnnGetErrorString", l.why) &&
         bind(lib, a.last_error_string, "cudnnGetLastErrorString", l.why) &&
         bind(lib, a.create, "cudnnCreate", l.why) &&
         bind(lib, a.destroy, "cudnnDestroy", l.why) &&
         bind(lib, a.set_stream, "cudnnSetStream", l.why) &&
         bind(lib, a.create_descriptor, "cudnnBackendCreateDescriptor", l.why) &&
         bind(lib, a.destroy_descriptor, "cudnnBackendDestroyDescriptor", l.why) &&
         bind(lib, a.finalize, "cudnnBackendFinalize", l.why) &&
         bind(lib, a.set_attribute, "cudnnBackendSetAttribute", l.why) &&
         bind(lib, a.get_attribute, "cudnnBackendGetAttribute", l.why) &&
         bind(lib, a.execute, "cudnnBackendExecute", l.why);
  // A library of another major version has other enum values: refuse it.
  if (l.ok && a.get_version() / 10000 != CUDNN_MAJOR) {
    l.ok = false;
    l.why = "libcudnn reports version " + std::to_string(a.get_version()) + ", built for " +
            std::to_string(CUDNN_MAJOR) + ".x";
  }
  return l;  // the library stays loaded for the life of the process
}

}  // namespace

const CudnnApi* cudnn(std::string* why) {
  static std::once_flag once;
  static Loaded loaded;
  std::call_once(once, [] { loaded = load(); });
  if (!loaded.ok && why) *why = loaded.why;
  return loaded.ok ? &loaded.api : nullptr;
}

}  // namespace hessgpt::cuda
