#include "infer/membw.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

#include <omp.h>

#include "core/huge_page_allocator.h"

#if defined(__AVX512F__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12 and its own reduce intrinsic
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#endif

namespace hessgpt::infer {

double measure_read_bandwidth(size_t bytes, int reps) {
  const size_t n = bytes / sizeof(float);
  // Huge pages, as the decode weights have them (core/huge_page_allocator.h).
  std::vector<float, HugePageAllocator<float>> buf(n);
  // First touch from the threads that will read it (NUMA placement), non-zero
  // so the pages are really there.
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) buf[i] = static_cast<float>(i & 7);
  double best = 1e30;
  volatile float sink = 0.0f;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    float total = 0.0f;
    const size_t chunks = n / 64;
#pragma omp parallel reduction(+ : total)
    {
      const size_t nth = static_cast<size_t>(omp_get_num_threads());
      const size_t tid = static_cast<size_t>(omp_get_thread_num());
      const size_t c0 = chunks * tid / nth, c1 = chunks * (tid + 1) / nth;
#if defined(__AVX512F__)
      // Four independent accumulators, one reduction per thread: the loop is
      // loads and adds only, so memory is the limit, not the arithmetic.
      __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      for (size_t c = c0; c < c1; ++c) {
        const float* p = buf.data() + c * 64;
        a0 = _mm512_add_ps(a0, _mm512_loadu_ps(p));
        a1 = _mm512_add_ps(a1, _mm512_loadu_ps(p + 16));
        a2 = _mm512_add_ps(a2, _mm512_loadu_ps(p + 32));
        a3 = _mm512_add_ps(a3, _mm512_loadu_ps(p + 48));
      }
      total += _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
#else
      float s = 0.0f;
      for (size_t i = c0 * 64; i < c1 * 64; ++i) s += buf[i];
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
