#include "infer/membw.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

#if defined(__AVX512F__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12 and its own reduce intrinsic
#include <immintrin.h>
#endif

namespace hessgpt::infer {

double measure_read_bandwidth(size_t bytes, int reps) {
  const size_t n = bytes / sizeof(float);
  std::vector<float> buf(n);
  // First touch from the threads that will read it (NUMA placement), non-zero
  // so the pages are really there.
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) buf[i] = static_cast<float>(i & 7);
  double best = 1e30;
  volatile float sink = 0.0f;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    float total = 0.0f;
#pragma omp parallel for schedule(static) reduction(+ : total)
    for (size_t b = 0; b < n / 64; ++b) {
      const float* p = buf.data() + b * 64;
#if defined(__AVX512F__)
      // Four independent 64-byte loads per iteration, like the matvec kernels.
      __m512 a = _mm512_add_ps(_mm512_add_ps(_mm512_loadu_ps(p), _mm512_loadu_ps(p + 16)),
                               _mm512_add_ps(_mm512_loadu_ps(p + 32), _mm512_loadu_ps(p + 48)));
      total += _mm512_reduce_add_ps(a);
#else
      float s = 0.0f;
      for (int i = 0; i < 64; ++i) s += p[i];
      total += s;
#endif
    }
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    sink = sink + total;
    best = std::min(best, dt);
  }
  return static_cast<double>(n / 64 * 64 * sizeof(float)) / best;
}

}  // namespace hessgpt::infer
