// y = W x for one activation vector, reading W in its stored format. Decode
// is bound by memory bandwidth, so each kernel streams a row once, widens it
// to float in registers (never to memory) and accumulates with FMA. AVX-512
// when the compiler targets it (-march=native), portable loops otherwise.
#include <omp.h>

#include <cstring>
#include <vector>

#include "core/error.h"
#include "infer/quant_matrix.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
// GCC 12 flags the deliberately undefined lanes inside its own reduce/cast
// intrinsics as maybe-uninitialized; the warning is about the header, not us.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#define HG_INFER_AVX512 1
#endif

namespace hessgpt::infer {
namespace {

#ifdef HG_INFER_AVX512
inline __mmask16 tail_mask(int64_t left) {
  return left >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << left) - 1u);
}

float dot_f32(const float* w, const float* x, int64_t n) {
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(x + i), a0);
    a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 16), _mm512_loadu_ps(x + i + 16), a1);
  }
  for (; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w + i), _mm512_maskz_loadu_ps(m, x + i), a0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

inline __m512 widen_bf16(__m256i h) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

float dot_bf16(const uint16_t* w, const float* x, int64_t n) {
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm512_fmadd_ps(widen_bf16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + i))),
                         _mm512_loadu_ps(x + i), a0);
    a1 = _mm512_fmadd_ps(
        widen_bf16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + i + 16))),
        _mm512_loadu_ps(x + i + 16), a1);
  }
  for (; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    a0 = _mm512_fmadd_ps(widen_bf16(_mm256_maskz_loadu_epi16(m, w + i)),
                         _mm512_maskz_loadu_ps(m, x + i), a0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

inline __m512 widen_i8(__m128i q) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)); }

float dot_q8(const int8_t* w, const float* x, int64_t n) {
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + i));
    a0 = _mm512_fmadd_ps(widen_i8(_mm256_castsi256_si128(q)), _mm512_loadu_ps(x + i), a0);
    a1 = _mm512_fmadd_ps(widen_i8(_mm256_extracti128_si256(q, 1)), _mm512_loadu_ps(x + i + 16), a1);
  }
  for (; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    a0 = _mm512_fmadd_ps(widen_i8(_mm_maskz_loadu_epi8(m, w + i)), _mm512_maskz_loadu_ps(m, x + i),
                         a0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

// sum_g scale_g * sum_j (nib_j - 8) x_j  =  sum_g scale_g * (sum_j nib_j x_j - 8 xsum_g):
// the -8 offset moves out of the inner loop into the precomputed group sums.
float dot_q4(const uint8_t* w, const float* scales, const float* x, const float* xsum,
             int64_t groups, int64_t g) {
  const int64_t half = g / 2;
  const __m128i low = _mm_set1_epi8(0x0f);
  __m512 acc = _mm512_setzero_ps();
  float offset = 0.0f;
  for (int64_t gi = 0; gi < groups; ++gi) {
    const uint8_t* b = w + gi * half;
    const float* xg = x + gi * g;
    __m512 d0 = _mm512_setzero_ps(), d1 = _mm512_setzero_ps();
    for (int64_t k = 0; k < half; k += 16) {
      const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + k));
      const __m128i lo = _mm_and_si128(bytes, low);
      const __m128i hi = _mm_and_si128(_mm_srli_epi16(bytes, 4), low);
      d0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(lo)), _mm512_loadu_ps(xg + k), d0);
      d1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(hi)),
                           _mm512_loadu_ps(xg + half + k), d1);
    }
    acc = _mm512_fmadd_ps(_mm512_set1_ps(scales[gi]), _mm512_add_ps(d0, d1), acc);
    offset += scales[gi] * xsum[gi];
  }
  return _mm512_reduce_add_ps(acc) - 8.0f * offset;
}
#else
float dot_f32(const float* w, const float* x, int64_t n) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += w[i] * x[i];
  return s;
}

float dot_bf16(const uint16_t* w, const float* x, int64_t n) {
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t u = static_cast<uint32_t>(w[i]) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    s += f * x[i];
  }
  return s;
}

float dot_q8(const int8_t* w, const float* x, int64_t n) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += static_cast<float>(w[i]) * x[i];
  return s;
}

float dot_q4(const uint8_t* w, const float* scales, const float* x, const float* xsum,
             int64_t groups, int64_t g) {
  const int64_t half = g / 2;
  float total = 0.0f;
  for (int64_t gi = 0; gi < groups; ++gi) {
    const uint8_t* b = w + gi * half;
    const float* xg = x + gi * g;
    float d = 0.0f;
    for (int64_t k = 0; k < half; ++k)
      d += static_cast<float>(b[k] & 0x0f) * xg[k] + static_cast<float>(b[k] >> 4) * xg[half + k];
    total += scales[gi] * (d - 8.0f * xsum[gi]);
  }
  return total;
}
#endif

}  // namespace

void QuantMatrix::matvec(const float* x, float* y) const {
  const int64_t rows = rows_, cols = cols_;
  const uint8_t* base = data();
  // Small products are not worth waking the thread team.
  const bool parallel = rows * cols >= 32768;
  switch (format_) {
    case WeightFormat::F32:
#pragma omp parallel for schedule(static) if (parallel)
      for (int64_t r = 0; r < rows; ++r)
        y[r] = dot_f32(reinterpret_cast<const float*>(base + r * row_bytes_), x, cols);
      break;
    case WeightFormat::BF16:
#pragma omp parallel for schedule(static) if (parallel)
      for (int64_t r = 0; r < rows; ++r)
        y[r] = dot_bf16(reinterpret_cast<const uint16_t*>(base + r * row_bytes_), x, cols);
      break;
    case WeightFormat::Q8: {
      const float* s = scales_.data();
#pragma omp parallel for schedule(static) if (parallel)
      for (int64_t r = 0; r < rows; ++r)
        y[r] = s[r] * dot_q8(reinterpret_cast<const int8_t*>(base + r * row_bytes_), x, cols);
      break;
    }
    case WeightFormat::Q4: {
      // x padded with zeros to whole groups, and its per-group sums.
      const int64_t groups = this->groups(), g = group_;
      std::vector<float> xp(static_cast<size_t>(groups * g), 0.0f);
      std::memcpy(xp.data(), x, static_cast<size_t>(cols) * sizeof(float));
      std::vector<float> xsum(static_cast<size_t>(groups), 0.0f);
      for (int64_t gi = 0; gi < groups; ++gi)
        for (int64_t j = 0; j < g; ++j) xsum[static_cast<size_t>(gi)] += xp[static_cast<size_t>(gi * g + j)];
      const float* s = scales_.data();
#pragma omp parallel for schedule(static) if (parallel)
      for (int64_t r = 0; r < rows; ++r)
        y[r] = dot_q4(base + r * row_bytes_, s + r * groups, xp.data(), xsum.data(), groups, g);
      break;
    }
  }
}

}  // namespace hessgpt::infer
