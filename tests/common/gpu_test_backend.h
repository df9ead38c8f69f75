// The backend the GPU tests compare against the CPU: CUDA when a device is
// present; with HESSGPT_CUDA_TESTS_ON_CPU=1 a second CPU backend stands in,
// which checks the tests themselves (API use, tolerances) on machines
// without a GPU. nullptr means the test should skip.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <memory>

#include "backend/backend.h"

namespace hessgpt::testing {

inline std::unique_ptr<Backend> gpu_test_backend() {
  if (std::getenv("HESSGPT_CUDA_TESTS_ON_CPU")) return make_backend("cpu", 2);
  const auto a = available_backends();
  if (std::find(a.begin(), a.end(), "cuda") == a.end()) return nullptr;
  return make_backend("cuda", 1);
}

}  // namespace hessgpt::testing
