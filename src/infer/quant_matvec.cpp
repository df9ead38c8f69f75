// y = W x for one activation vector, reading W in its stored format. Decode
// is bound by memory bandwidth, so each kernel streams a row once, widens it
// to float in registers (never to memory) and accumulates with FMA. AVX-512
// when the compiler targets it (-march=native), portable loops otherwise.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/bf16.h"
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

// Offset-binary bytes u = q + 128 to float q.
inline __m512 widen_q8(__m128i u) {
  return _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepu8_epi32(u), _mm512_set1_epi32(128)));
}

[[maybe_unused]] float dot_q8(const uint8_t* w, const float* x, int64_t n) {
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + i));
    a0 = _mm512_fmadd_ps(widen_q8(_mm256_castsi256_si128(q)), _mm512_loadu_ps(x + i), a0);
    a1 = _mm512_fmadd_ps(widen_q8(_mm256_extracti128_si256(q, 1)), _mm512_loadu_ps(x + i + 16), a1);
  }
  for (; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    a0 = _mm512_fmadd_ps(widen_q8(_mm_maskz_loadu_epi8(m, w + i)), _mm512_maskz_loadu_ps(m, x + i), a0);
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
  for (int64_t i = 0; i < n; ++i) s += bf16_to_float(w[i]) * x[i];
  return s;
}

[[maybe_unused]] float dot_q8(const uint8_t* w, const float* x, int64_t n) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += static_cast<float>(static_cast<int>(w[i]) - 128) * x[i];
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
// Integer kernels (AVX512-VNNI): x is quantised to int8 once per input, in
// blocks with one float scale each (32 values for INT8 weights, one weight
// group for INT4), and vpdpbusd multiplies 64 weight bytes by 64 activation
// bytes per instruction. That is a third of the float path's work per weight,
// which is what it takes to keep up with memory on two cores. The activation
// rounding (<= 0.5/127 of a block's largest value) is far below the weights'.
//
// The kernels take R rows per pass (R = 4 in the body, 1 for the rest): the
// activation chunk and its scales are loaded once for R rows, and R
// independent accumulator chains keep the FMA latency hidden. Each row's
// arithmetic is exactly the one-row sequence, so results do not depend on R
// or on how rows are split across threads.

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

// Rows are short (1-3 KB), so R interleaved row streams restart every few
// dozen lines, too often for the hardware prefetcher to keep up; asking for
// the same line of the next R-row block keeps enough misses in flight. A
// prefetch past the matrix is harmless.
inline void prefetch_ahead(const uint8_t* p, int64_t distance) {
  _mm_prefetch(reinterpret_cast<const char*>(p + distance), _MM_HINT_T0);
}

inline __mmask64 byte_mask(int64_t left) {
  return left >= 64 ? ~__mmask64{0} : ((__mmask64{1} << left) - 1);
}

template <int R>
void q8_vnni_rows(const uint8_t* w, int64_t stride, const float* scales, const int8_t* xq,
                  const float* lane_scale, int64_t cols, float* y) {
  __m512 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
  for (int64_t c = 0; c < cols; c += 64) {
    const __mmask64 m = byte_mask(cols - c);
    const __m512i xv = _mm512_loadu_si512(xq + c);
    const __m512 ls = _mm512_loadu_ps(lane_scale + c / 4);
    // sum (u - 128) x = sum u x - 128 sum x: every row starts from -128 sum x.
    // (Masked-off weight bytes load as 0, and x is 0 past cols.)
    const __m512i start = _mm512_sub_epi32(_mm512_setzero_si512(),
                                           _mm512_dpbusd_epi32(_mm512_setzero_si512(), bias, xv));
    for (int r = 0; r < R; ++r) {
      prefetch_ahead(w + r * stride + c, R * stride);
      const __m512i dot = _mm512_dpbusd_epi32(start, _mm512_maskz_loadu_epi8(m, w + r * stride + c), xv);
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), ls, acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) y[r] = scales[r] * _mm512_reduce_add_ps(acc[r]);
}

// Each byte's high nibble moved down: one GF(2) affine op (bit i of the
// result = bit i + 4 of the byte) where GFNI exists, else shift and mask.
inline __m512i high_nibbles(__m512i b, [[maybe_unused]] __m512i low) {
#ifdef __GFNI__
  return _mm512_gf2p8affine_epi64_epi8(b, _mm512_set1_epi64(0x1020408000000000LL), 0);
#else
  return _mm512_and_si512(_mm512_srli_epi16(b, 4), low);
#endif
}

// G in {32, 64, 128}: a 64-byte chunk starts on a group boundary, so lane l
// always belongs to group first + 4l / (G/2).
template <int R>
void q4_vnni_rows(const uint8_t* w, int64_t stride, const float* ws, int64_t groups, int64_t g,
                  const int8_t* xlo, const int8_t* xhi, const float* lane_scale,
                  const float* lane_offset, float* y) {
  const int64_t half = g / 2, bytes = groups * half, groups_per_chunk = 64 / half;
  alignas(64) int32_t idx_arr[16];
  for (int l = 0; l < 16; ++l) idx_arr[l] = static_cast<int32_t>(4 * l / half);
  const __m512i idx = _mm512_load_si512(idx_arr);
  const __m512i low = _mm512_set1_epi8(0x0f);
  const __m512i zero = _mm512_setzero_si512();
  __m512 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t c = 0, g0 = 0; c < bytes; c += 64, g0 += groups_per_chunk) {
    const __mmask64 m = byte_mask(bytes - c);
    const __m512i xl = _mm512_loadu_si512(xlo + c), xh = _mm512_loadu_si512(xhi + c);
    const __m512 ls = _mm512_loadu_ps(lane_scale + c / 4);
    // The nibbles carry +8: each lane takes its share of the group's
    // 8 * xs[g] * sum(xq in g), so that the row needs no second pass.
    const __m512 lo_off = _mm512_loadu_ps(lane_offset + c / 4);
    const int64_t gl = std::min<int64_t>(16, groups - g0);
    const __mmask16 gm = static_cast<__mmask16>((1u << gl) - 1u);
    for (int r = 0; r < R; ++r) {
      prefetch_ahead(w + r * stride + c, R * stride);
      const __m512i b = _mm512_maskz_loadu_epi8(m, w + r * stride + c);
      const __m512i lo = _mm512_and_si512(b, low);
      const __m512i hi = high_nibbles(b, low);
      __m512i dot = _mm512_dpbusd_epi32(zero, lo, xl);
      dot = _mm512_dpbusd_epi32(dot, hi, xh);
      const __m512 wsv = _mm512_permutexvar_ps(idx, _mm512_maskz_loadu_ps(gm, ws + r * groups + g0));
      acc[r] = _mm512_fmadd_ps(wsv, _mm512_fmsub_ps(_mm512_cvtepi32_ps(dot), ls, lo_off), acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) y[r] = _mm512_reduce_add_ps(acc[r]);
}
#endif
}  // namespace

void MatvecInput::prepare(const float* x, const QuantMatrix& w) {
  x_ = x;
  cols_ = w.cols();
  group_ = w.group_size();
  format_ = static_cast<int>(w.format());
  const int64_t cols = cols_;
  if (w.format() == WeightFormat::Q8) {
#ifdef HG_INFER_VNNI
    std::vector<float>& scales = offset_;  // scratch: per-block scales
    quantize_blocks(x, cols, 32, q_, scales);
    const int64_t lanes = (cols + 63) / 64 * 16;
    lane_scale_.assign(static_cast<size_t>(lanes), 0.0f);
    for (int64_t l = 0; l < lanes && l / 8 < static_cast<int64_t>(scales.size()); ++l)
      lane_scale_[static_cast<size_t>(l)] = scales[static_cast<size_t>(l / 8)];
#endif
    return;
  }
  if (w.format() != WeightFormat::Q4) return;
  const int64_t g = group_, groups = w.groups(), half = g / 2;
#ifdef HG_INFER_VNNI
  if (g == 32 || g == 64 || g == 128) {
    std::vector<float> scales;
    quantize_blocks(x, cols, g, q_, scales);
    const int64_t bytes = groups * half;
    lo_.assign(static_cast<size_t>(bytes + 64), 0);
    hi_.assign(static_cast<size_t>(bytes + 64), 0);
    offset_.assign(static_cast<size_t>(groups), 0.0f);
    for (int64_t gi = 0; gi < groups; ++gi) {
      int32_t sum = 0;
      for (int64_t j = 0; j < half; ++j) {
        const int8_t a = q_[static_cast<size_t>(gi * g + j)], b = q_[static_cast<size_t>(gi * g + half + j)];
        lo_[static_cast<size_t>(gi * half + j)] = a;
        hi_[static_cast<size_t>(gi * half + j)] = b;
        sum += a + b;
      }
      offset_[static_cast<size_t>(gi)] = 8.0f * scales[static_cast<size_t>(gi)] * static_cast<float>(sum);
    }
    const int64_t lanes = (bytes + 63) / 64 * 16;
    lane_scale_.assign(static_cast<size_t>(lanes), 0.0f);
    lane_offset_.assign(static_cast<size_t>(lanes), 0.0f);
    const float lanes_per_group = static_cast<float>(half / 4);
    for (int64_t l = 0; l < lanes && 4 * l / half < groups; ++l) {
      lane_scale_[static_cast<size_t>(l)] = scales[static_cast<size_t>(4 * l / half)];
      lane_offset_[static_cast<size_t>(l)] = offset_[static_cast<size_t>(4 * l / half)] / lanes_per_group;
    }
    return;
  }
#endif
  // x padded with zeros to whole groups, and its per-group sums.
  padded_.assign(static_cast<size_t>(groups * g), 0.0f);
  std::memcpy(padded_.data(), x, static_cast<size_t>(cols) * sizeof(float));
  group_sum_.assign(static_cast<size_t>(groups), 0.0f);
  for (int64_t gi = 0; gi < groups; ++gi)
    for (int64_t j = 0; j < g; ++j)
      group_sum_[static_cast<size_t>(gi)] += padded_[static_cast<size_t>(gi * g + j)];
}

bool MatvecInput::matches(const QuantMatrix& w) const {
  return x_ != nullptr && format_ == static_cast<int>(w.format()) && cols_ == w.cols() &&
         group_ == w.group_size();
}

void QuantMatrix::matvec_rows(const MatvecInput& in, int64_t r0, int64_t r1, float* y) const {
  const int64_t cols = cols_, stride = row_bytes_;
  const uint8_t* base = data();
  const float* x = in.x_;
  switch (format_) {
    case WeightFormat::F32:
      for (int64_t r = r0; r < r1; ++r)
        y[r] = dot_f32(reinterpret_cast<const float*>(base + r * stride), x, cols);
      return;
    case WeightFormat::BF16:
      for (int64_t r = r0; r < r1; ++r)
        y[r] = dot_bf16(reinterpret_cast<const uint16_t*>(base + r * stride), x, cols);
      return;
    case WeightFormat::Q8: {
      const float* s = scales_.data();
#ifdef HG_INFER_VNNI
      const int8_t* xq = in.q_.data();
      const float* ls = in.lane_scale_.data();
      int64_t r = r0;
      for (; r + 4 <= r1; r += 4) q8_vnni_rows<4>(base + r * stride, stride, s + r, xq, ls, cols, y + r);
      for (; r < r1; ++r) q8_vnni_rows<1>(base + r * stride, stride, s + r, xq, ls, cols, y + r);
#else
      for (int64_t r = r0; r < r1; ++r)
        y[r] = s[r] * dot_q8(base + r * stride, x, cols);
#endif
      return;
    }
    case WeightFormat::Q4: {
      const int64_t groups = this->groups(), g = group_;
      const float* s = scales_.data();
#ifdef HG_INFER_VNNI
      if (g == 32 || g == 64 || g == 128) {
        const int8_t *lo = in.lo_.data(), *hi = in.hi_.data();
        const float *ls = in.lane_scale_.data(), *off = in.lane_offset_.data();
        int64_t r = r0;
        for (; r + 4 <= r1; r += 4)
          q4_vnni_rows<4>(base + r * stride, stride, s + r * groups, groups, g, lo, hi, ls, off, y + r);
        for (; r < r1; ++r)
          q4_vnni_rows<1>(base + r * stride, stride, s + r * groups, groups, g, lo, hi, ls, off, y + r);
        return;
      }
#endif
      for (int64_t r = r0; r < r1; ++r)
        y[r] = dot_q4(base + r * stride, s + r * groups, in.padded_.data(), in.group_sum_.data(), groups, g);
      return;
    }
  }
}

void QuantMatrix::matvec(const float* x, float* y) const {
  MatvecInput in;
  in.prepare(x, *this);
  // Small products are not worth waking the thread team. Blocks of 16 rows
  // keep the 4-row kernels whole and the split static (deterministic anyway:
  // rows do not depend on the split).
  const int64_t blocks = (rows_ + 15) / 16;
  const bool parallel = rows_ * cols_ >= 32768;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t b = 0; b < blocks; ++b) matvec_rows(in, b * 16, std::min(rows_, b * 16 + 16), y);
}

}  // namespace hessgpt::infer
