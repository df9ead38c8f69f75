// Rotary position embedding in place, rotate-half pairs (i, i + d/2); the
// inverse (backward) applies the transpose. One thread per pair.
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"

namespace hessgpt::cuda {
namespace {

__global__ void rope_kernel(float* x, const float* cos, const float* sin, int64_t t,
                            int64_t heads, int64_t half, int64_t pos0, float sign, int64_t pairs) {
  for (int64_t p = global_thread(); p < pairs; p += grid_stride()) {
    const int64_t i = p % half;
    const int64_t row = p / half;          // (b * t + tt) * heads + head
    const int64_t pos = pos0 + (row / heads) % t;
    const float c = cos[pos * half + i], s = sin[pos * half + i];
    float* v = x + row * 2 * half;
    const float x1 = v[i], x2 = v[i + half];
    // forward: [c -s; s c];  inverse (transpose): [c s; -s c]
    v[i] = x1 * c - sign * x2 * s;
    v[i + half] = x2 * c + sign * x1 * s;
  }
}

}  // namespace

void rope(float* x, const float* cos, const float* sin, int64_t b, int64_t t, int64_t heads,
          int64_t d, int64_t pos0, bool inverse, cudaStream_t stream) {
  const int64_t half = d / 2;
  const int64_t pairs = b * t * heads * half;
  launch_elementwise(pairs, stream, rope_kernel, x, cos, sin, t, heads, half, pos0,
                     inverse ? -1.0f : 1.0f, pairs);
}

}  // namespace hessgpt::cuda
