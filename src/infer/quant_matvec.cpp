// y = W x for one activation vector, reading W in its stored format. Decode
// is bound by memory bandwidth, so each kernel streams a row once, widens it
// to float in registers (never to memory) and accumulates with FMA. AVX-512
// when the compiler targets it (-march=native), portable loops otherwise.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "infer/quant_matrix.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
// GCC 12 flags the deliberately undefined lanes inside its own reduce/cast
// intrinsics as maybe-uninitialized; the warning is about the header, not us.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
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


#if defined(HG_INFER_AVX512) && defined(__AVX512VNNI__)
#define HG_INFER_VNNI 1
// Integer kernels (AVX512-VNNI): x is quantised to int8 once per product, in
// blocks with one float scale each (32 values for INT8 weights, one weight
// group for INT4), and vpdpbusd multiplies 64 weight bytes by 64 activation
// bytes per instruction. That is a third of the float path's work per weight,
// which is what it takes to keep up with memory on two cores. The activation
// rounding (<= 0.5/127 of a block's largest value) is far below the weights'.
struct QuantizedX {
  std::vector<int8_t> lo, hi;   // Q4: values j and j + G/2 of each group, in the weight byte order
  std::vector<int8_t> q;        // Q8: x as int8
  std::vector<float> lane_scale;  // the x scale of each 4-byte dpbusd lane
  std::vector<float> offset;    // Q4: 8 * scale * sum(q) per group (the nibble bias)
};

// Quantises x[n] in blocks of `block` values: q = round(x / s), s = max|x| / 127.
void quantize_blocks(const float* x, int64_t n, int64_t block, std::vector<int8_t>& q,
                     std::vector<float>& scales) {
  const int64_t blocks = (n + block - 1) / block;
  q.assign(static_cast<size_t>(blocks * block + 64), 0);
  scales.assign(static_cast<size_t>(blocks), 0.0f);
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t c0 = b * block, c1 = std::min(n, c0 + block);
    float amax = 0.0f;
    for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(x[c]));
    const float s = amax / 127.0f, inv = s > 0.0f ? 1.0f / s : 0.0f;
    scales[static_cast<size_t>(b)] = s;
    for (int64_t c = c0; c < c1; ++c)
      q[static_cast<size_t>(c)] = static_cast<int8_t>(std::nearbyint(x[c] * inv));
  }
}

void prepare_x_q8(const float* x, int64_t cols, QuantizedX& qx) {
  std::vector<float> scales;
  quantize_blocks(x, cols, 32, qx.q, scales);
  const int64_t lanes = (cols + 63) / 64 * 16;
  qx.lane_scale.assign(static_cast<size_t>(lanes), 0.0f);
  for (int64_t l = 0; l < lanes && l / 8 < static_cast<int64_t>(scales.size()); ++l)
    qx.lane_scale[static_cast<size_t>(l)] = scales[static_cast<size_t>(l / 8)];
}

float dot_q8_vnni(const int8_t* w, const QuantizedX& qx, int64_t cols) {
  __m512 acc = _mm512_setzero_ps();
  const __m512i zero = _mm512_setzero_si512();
  for (int64_t c = 0; c < cols; c += 64) {
    const int64_t left = cols - c;
    const __mmask64 m = left >= 64 ? ~__mmask64{0} : ((__mmask64{1} << left) - 1);
    const __m512i wv = _mm512_maskz_loadu_epi8(m, w + c);
    const __m512i xv = _mm512_loadu_si512(qx.q.data() + c);
    // u8 x s8 only: multiply |w| by x carrying w's sign.
    const __m512i sx = _mm512_mask_sub_epi8(xv, _mm512_movepi8_mask(wv), zero, xv);
    const __m512i dot = _mm512_dpbusd_epi32(zero, _mm512_abs_epi8(wv), sx);
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_loadu_ps(qx.lane_scale.data() + c / 4), acc);
  }
  return _mm512_reduce_add_ps(acc);
}

void prepare_x_q4(const float* x, int64_t cols, int64_t g, QuantizedX& qx) {
  std::vector<int8_t> q;
  std::vector<float> scales;
  quantize_blocks(x, cols, g, q, scales);
  const int64_t groups = static_cast<int64_t>(scales.size()), half = g / 2;
  const int64_t bytes = groups * half;
  qx.lo.assign(static_cast<size_t>(bytes + 64), 0);
  qx.hi.assign(static_cast<size_t>(bytes + 64), 0);
  qx.offset.assign(static_cast<size_t>(groups), 0.0f);
  for (int64_t gi = 0; gi < groups; ++gi) {
    int32_t sum = 0;
    for (int64_t j = 0; j < half; ++j) {
      const int8_t a = q[static_cast<size_t>(gi * g + j)], b = q[static_cast<size_t>(gi * g + half + j)];
      qx.lo[static_cast<size_t>(gi * half + j)] = a;
      qx.hi[static_cast<size_t>(gi * half + j)] = b;
      sum += a + b;
    }
    qx.offset[static_cast<size_t>(gi)] = 8.0f * scales[static_cast<size_t>(gi)] * static_cast<float>(sum);
  }
  const int64_t lanes = (bytes + 63) / 64 * 16;
  qx.lane_scale.assign(static_cast<size_t>(lanes), 0.0f);
  for (int64_t l = 0; l < lanes && 4 * l / half < groups; ++l)
    qx.lane_scale[static_cast<size_t>(l)] = scales[static_cast<size_t>(4 * l / half)];
}

// G in {32, 64, 128}: a 64-byte chunk starts on a group boundary, so lane l
// always belongs to group first + 4l / (G/2).
float dot_q4_vnni(const uint8_t* w, const float* ws, const QuantizedX& qx, int64_t groups, int64_t g) {
  const int64_t half = g / 2, bytes = groups * half, groups_per_chunk = 64 / half;
  alignas(64) int32_t idx_arr[16];
  for (int l = 0; l < 16; ++l) idx_arr[l] = static_cast<int32_t>(4 * l / half);
  const __m512i idx = _mm512_load_si512(idx_arr);
  const __m512i low = _mm512_set1_epi8(0x0f);
  const __m512i zero = _mm512_setzero_si512();
  __m512 acc = _mm512_setzero_ps();
  for (int64_t c = 0, g0 = 0; c < bytes; c += 64, g0 += groups_per_chunk) {
    const int64_t left = bytes - c;
    const __mmask64 m = left >= 64 ? ~__mmask64{0} : ((__mmask64{1} << left) - 1);
    const __m512i b = _mm512_maskz_loadu_epi8(m, w + c);
    const __m512i lo = _mm512_and_si512(b, low);
    const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(b, 4), low);
    __m512i dot = _mm512_dpbusd_epi32(zero, lo, _mm512_loadu_si512(qx.lo.data() + c));
    dot = _mm512_dpbusd_epi32(dot, hi, _mm512_loadu_si512(qx.hi.data() + c));
    const int64_t gl = std::min<int64_t>(16, groups - g0);
    const __m512 wsv = _mm512_permutexvar_ps(idx, _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << gl) - 1u), ws + g0));
    const __m512 sc = _mm512_mul_ps(wsv, _mm512_loadu_ps(qx.lane_scale.data() + c / 4));
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), sc, acc);
  }
  // The nibbles carry +8: subtract sum_g ws[g] * 8 * xs[g] * sum(xq in g).
  return _mm512_reduce_add_ps(acc) - dot_f32(ws, qx.offset.data(), groups);
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
#ifdef HG_INFER_VNNI
      QuantizedX qx;
      prepare_x_q8(x, cols, qx);
#pragma omp parallel for schedule(static) if (parallel)
      for (int64_t r = 0; r < rows; ++r)
        y[r] = s[r] * dot_q8_vnni(reinterpret_cast<const int8_t*>(base + r * row_bytes_), qx, cols);
      break;
#endif
#pragma omp parallel for schedule(static) if (parallel)
      for (int64_t r = 0; r < rows; ++r)
        y[r] = s[r] * dot_q8(reinterpret_cast<const int8_t*>(base + r * row_bytes_), x, cols);
      break;
    }
    case WeightFormat::Q4: {
#ifdef HG_INFER_VNNI
      if (group_ == 32 || group_ == 64 || group_ == 128) {
        QuantizedX qx;
        prepare_x_q4(x, cols, group_, qx);
        const int64_t groups = this->groups();
        const float* s = scales_.data();
#pragma omp parallel for schedule(static) if (parallel)
        for (int64_t r = 0; r < rows; ++r)
          y[r] = dot_q4_vnni(base + r * row_bytes_, s + r * groups, qx, groups, group_);
        break;
      }
#endif
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
