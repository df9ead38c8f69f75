// A STREAM-like read-bandwidth probe: the rate at which the given threads can
// sum a buffer much larger than the caches. Decode streams every weight once
// per token, so bytes per token / this rate bounds decode tokens/s.
#pragma once

#include <cstddef>

namespace hessgpt::infer {

// Bytes per second reading `bytes` (best of `reps` passes) with the current
// OpenMP thread count.
double measure_read_bandwidth(size_t bytes = size_t{1} << 30, int reps = 5);

}  // namespace hessgpt::infer
