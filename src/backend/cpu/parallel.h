// OpenMP helpers with static partitions: which thread computes which range
// depends only on the range and the thread count, so reductions combined in
// thread order are reproducible run to run. Bodies must not throw.
#pragma once

#include <omp.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace hessgpt::cpu {

// fn(i) for i in [0, n), statically partitioned.
template <typename Fn>
void parallel_for(int64_t n, Fn&& fn) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) fn(i);
}

// fn(begin, end, part) over contiguous parts, one per thread; returns the
// number of parts used (results indexed by part combine in a fixed order).
template <typename Fn>
int parallel_ranges(int64_t n, Fn&& fn) {
  int parts = 1;
#pragma omp parallel
  {
    const int nth = omp_get_num_threads();
    const int tid = omp_get_thread_num();
#pragma omp single
    parts = nth;
    const int64_t begin = n * tid / nth;
    const int64_t end = n * (tid + 1) / nth;
    fn(begin, end, tid);
  }
  return parts;
}

// Sum of chunk_sum(begin, end) over thread ranges, combined in thread order.
template <typename Fn>
double parallel_sum(int64_t n, Fn&& chunk_sum) {
  std::vector<double> partial(static_cast<size_t>(omp_get_max_threads()), 0.0);
  const int parts = parallel_ranges(n, [&](int64_t begin, int64_t end, int part) {
    partial[static_cast<size_t>(part)] = chunk_sum(begin, end);
  });
  double total = 0.0;
  for (int p = 0; p < parts; ++p) total += partial[static_cast<size_t>(p)];
  return total;
}

}  // namespace hessgpt::cpu
