// Token embedding lookup and its scatter-add backward.
#include <cstring>

#include "backend/cpu/kernels.h"
#include "backend/cpu/parallel.h"
#include "core/error.h"

namespace hessgpt::cpu {
namespace {
void check_ids(const int32_t* ids, int64_t n, int64_t v) {
  for (int64_t i = 0; i < n; ++i)
    if (ids[i] < 0 || ids[i] >= v)
      HG_FAIL("token id ", ids[i], " at position ", i, " is outside the vocabulary [0, ", v, ")");
}
}  // namespace

template <typename T>
void embedding_forward(T* out, const int32_t* ids, const T* table, int64_t n, int64_t c,
                       int64_t v) {
  check_ids(ids, n, v);
  parallel_for(n, [&](int64_t i) {
    std::memcpy(out + i * c, table + static_cast<int64_t>(ids[i]) * c, sizeof(T) * c);
  });
}

// Threads own disjoint column ranges, so rows with the same id never race and
// every element sums its rows in order.
template <typename T>
void embedding_backward(T* dtable, const int32_t* ids, const T* dout, int64_t n, int64_t c,
                        int64_t v) {
  check_ids(ids, n, v);
  parallel_ranges(c, [&](int64_t c0, int64_t c1, int) {
    for (int64_t i = 0; i < n; ++i) {
      T* dst = dtable + static_cast<int64_t>(ids[i]) * c;
      const T* src = dout + i * c;
#pragma omp simd
      for (int64_t j = c0; j < c1; ++j) dst[j] += src[j];
    }
  });
}

template void embedding_forward<float>(float*, const int32_t*, const float*, int64_t, int64_t, int64_t);
template void embedding_forward<double>(double*, const int32_t*, const double*, int64_t, int64_t, int64_t);
template void embedding_backward<float>(float*, const int32_t*, const float*, int64_t, int64_t, int64_t);
template void embedding_backward<double>(double*, const int32_t*, const double*, int64_t, int64_t, int64_t);

}  // namespace hessgpt::cpu
