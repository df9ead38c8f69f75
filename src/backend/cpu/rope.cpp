// Rotary position embedding, rotate-half pairing (dimension i with i + D/2),
// as in HF Llama/Qwen3. With YaRN the tables carry the attention factor m, so
// the rotation is scaled by m and its backward is the plain transpose.
#include "backend/cpu/kernels.h"
#include "backend/cpu/parallel.h"

namespace hessgpt::cpu {

template <typename T>
void rope(T* x, const T* cos, const T* sin, int64_t b, int64_t t, int64_t heads, int64_t d,
          int64_t pos0, bool inverse) {
  const int64_t half = d / 2;
  const T sign = inverse ? T(-1) : T(1);
  parallel_for(b * t, [&](int64_t bt) {
    const int64_t pos = pos0 + bt % t;
    const T* c = cos + pos * half;
    const T* s = sin + pos * half;
    for (int64_t h = 0; h < heads; ++h) {
      T* v = x + (bt * heads + h) * d;
#pragma omp simd
      for (int64_t i = 0; i < half; ++i) {
        const T x1 = v[i];
        const T x2 = v[i + half];
        // forward: [c -s; s c];  inverse (transpose): [c s; -s c]
        v[i] = x1 * c[i] - sign * x2 * s[i];
        v[i + half] = x2 * c[i] + sign * x1 * s[i];
      }
    }
  });
}

template void rope<float>(float*, const float*, const float*, int64_t, int64_t, int64_t, int64_t, int64_t, bool);
template void rope<double>(double*, const double*, const double*, int64_t, int64_t, int64_t, int64_t, int64_t, bool);

}  // namespace hessgpt::cpu
