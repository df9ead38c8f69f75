// Quantisation and dequantisation of inference weight matrices (layouts in
// quant_matrix.h). Symmetric round-to-nearest: no zero points, so a matrix
// is its integers and one float per row (Q8) or per group (Q4).
#include "infer/quant_matrix.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/bf16.h"
#include "core/error.h"

#if defined(__AVX512F__)
// GCC 12 flags the undefined lanes inside its own intrinsics; not our code.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#endif

namespace hessgpt::infer {

WeightFormat weight_format_from_bits(int bits) {
  switch (bits) {
    case 32: return WeightFormat::F32;
    case 16: return WeightFormat::BF16;
    case 8: return WeightFormat::Q8;
    case 4: return WeightFormat::Q4;
    default: HG_FAIL("unsupported weight bits ", bits, " (expected 32, 16, 8 or 4)");
  }
}

int weight_format_bits(WeightFormat format) {
  switch (format) {
    case WeightFormat::F32: return 32;
    case WeightFormat::BF16: return 16;
    case WeightFormat::Q8: return 8;
    case WeightFormat::Q4: return 4;
  }
  return 0;
}

const char* weight_format_name(WeightFormat format) {
  switch (format) {
    case WeightFormat::F32: return "f32";
    case WeightFormat::BF16: return "bf16";
    case WeightFormat::Q8: return "int8";
    case WeightFormat::Q4: return "int4";
  }
  return "?";
}

namespace {

int64_t row_bytes_for(WeightFormat format, int64_t cols, int64_t group) {
  switch (format) {
    case WeightFormat::F32: return cols * 4;
    case WeightFormat::BF16: return cols * 2;
    case WeightFormat::Q8: return cols;
    case WeightFormat::Q4: return (cols + group - 1) / group * group / 2;
  }
  return 0;
}

}  // namespace

QuantMatrix QuantMatrix::view_f32(const float* w, int64_t rows, int64_t cols) {
  QuantMatrix m;
  m.format_ = WeightFormat::F32;
  m.rows_ = rows;
  m.cols_ = cols;
  m.row_bytes_ = cols * 4;
  m.external_ = reinterpret_cast<const uint8_t*>(w);
  return m;
}

QuantMatrix QuantMatrix::quantize(const float* w, int64_t rows, int64_t cols,
                                  WeightFormat format, int64_t group_size) {
  HG_CHECK(rows > 0 && cols > 0, "quantize: empty matrix");
  QuantMatrix m;
  m.format_ = format;
  m.rows_ = rows;
  m.cols_ = cols;
  if (format == WeightFormat::Q4) {
    if (group_size <= 0 || group_size % 32 != 0)
      HG_FAIL("INT4 group size ", group_size, " must be a positive multiple of 32");
    m.group_ = group_size;
  }
  m.row_bytes_ = row_bytes_for(format, cols, m.group_);
  m.storage_.assign(static_cast<size_t>(rows * m.row_bytes_), 0);
  const int64_t groups = m.groups();
  if (format == WeightFormat::Q8) m.scales_.assign(static_cast<size_t>(rows), 0.0f);
  if (format == WeightFormat::Q4) m.scales_.assign(static_cast<size_t>(rows * groups), 0.0f);

#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = w + r * cols;
    uint8_t* dst = m.storage_.data() + r * m.row_bytes_;
    switch (format) {
      case WeightFormat::F32: std::memcpy(dst, src, static_cast<size_t>(cols) * 4); break;
      case WeightFormat::BF16:
        for (int64_t c = 0; c < cols; ++c) {
          const uint16_t h = float_to_bf16(src[c]);
          std::memcpy(dst + 2 * c, &h, 2);
        }
        break;
      case WeightFormat::Q8: {
        float amax = 0.0f;
        for (int64_t c = 0; c < cols; ++c) amax = std::max(amax, std::fabs(src[c]));
        const float scale = amax / 127.0f;
        const float inv = scale > 0.0f ? 1.0f / scale : 0.0f;
        m.scales_[static_cast<size_t>(r)] = scale;
        for (int64_t c = 0; c < cols; ++c) {
          const float q = std::clamp(std::nearbyint(src[c] * inv), -127.0f, 127.0f);
          dst[c] = static_cast<uint8_t>(static_cast<int>(q) + 128);
        }
        break;
      }
      case WeightFormat::Q4: {
        const int64_t g = m.group_, half = g / 2;
        for (int64_t gi = 0; gi < groups; ++gi) {
          const int64_t c0 = gi * g, c1 = std::min(cols, c0 + g);
          float amax = 0.0f;
          for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(src[c]));
          const float scale = amax / 7.0f;
          const float inv = scale > 0.0f ? 1.0f / scale : 0.0f;
          m.scales_[static_cast<size_t>(r * groups + gi)] = scale;
          uint8_t* block = dst + gi * half;
          for (int64_t j = 0; j < g; ++j) {
            const int64_t c = c0 + j;
            const int nib = c < c1 ? static_cast<int>(std::clamp(std::nearbyint(src[c] * inv), -7.0f, 7.0f)) + 8
                                   : 8;  // padding decodes to 0.0
            if (j < half)
              block[j] = static_cast<uint8_t>((block[j] & 0xf0) | nib);
            else
              block[j - half] = static_cast<uint8_t>((block[j - half] & 0x0f) | (nib << 4));
          }
        }
        break;
      }
    }
  }
  return m;
}

QuantMatrix QuantMatrix::from_parts(WeightFormat format, int64_t rows, int64_t cols,
                                    int64_t group_size, std::vector<uint8_t> data,
                                    std::vector<float> scales) {
  QuantMatrix m;
  m.format_ = format;
  m.rows_ = rows;
  m.cols_ = cols;
  m.group_ = format == WeightFormat::Q4 ? group_size : 0;
  if (format == WeightFormat::Q4 && (group_size <= 0 || group_size % 32 != 0))
    HG_FAIL("INT4 group size ", group_size, " must be a positive multiple of 32");
  m.row_bytes_ = row_bytes_for(format, cols, m.group_);
  if (data.size() != static_cast<size_t>(rows * m.row_bytes_))
    HG_FAIL("quantised matrix [", rows, ", ", cols, "] ", weight_format_name(format), ": expected ",
            rows * m.row_bytes_, " data bytes, got ", data.size());
  const size_t want_scales = format == WeightFormat::Q8   ? static_cast<size_t>(rows)
                             : format == WeightFormat::Q4 ? static_cast<size_t>(rows * m.groups())
                                                          : 0;
  if (scales.size() != want_scales)
    HG_FAIL("quantised matrix [", rows, ", ", cols, "] ", weight_format_name(format), ": expected ",
            want_scales, " scales, got ", scales.size());
  m.storage_.assign(data.begin(), data.end());
  m.scales_ = std::move(scales);
  if (format == WeightFormat::Q8)
    for (uint8_t& b : m.storage_) b ^= 0x80;  // int8 -> offset binary
  return m;
}

std::vector<uint8_t> QuantMatrix::file_bytes() const {
  std::vector<uint8_t> bytes(data(), data() + rows_ * row_bytes_);
  if (format_ == WeightFormat::Q8)
    for (uint8_t& b : bytes) b ^= 0x80;  // offset binary -> int8
  return bytes;
}

size_t QuantMatrix::stream_bytes() const {
  return static_cast<size_t>(rows_ * row_bytes_) + scales_.size() * sizeof(float);
}

void QuantMatrix::dequantize_rows(int64_t r0, int64_t r1, float* out) const {
  HG_CHECK(0 <= r0 && r0 <= r1 && r1 <= rows_, "dequantize_rows: bad range");
  const int64_t groups = this->groups();
#pragma omp parallel for schedule(static) if ((r1 - r0) * cols_ > 65536)
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* src = data() + r * row_bytes_;
    float* dst = out + (r - r0) * cols_;
    switch (format_) {
      case WeightFormat::F32: std::memcpy(dst, src, static_cast<size_t>(cols_) * 4); break;
      case WeightFormat::BF16:
        for (int64_t c = 0; c < cols_; ++c) {
          uint16_t h;
          std::memcpy(&h, src + 2 * c, 2);
          dst[c] = bf16_to_float(h);
        }
        break;
      case WeightFormat::Q8: {
        const float s = scales_[static_cast<size_t>(r)];
        for (int64_t c = 0; c < cols_; ++c) dst[c] = s * static_cast<float>(static_cast<int>(src[c]) - 128);
        break;
      }
      case WeightFormat::Q4: {
        const int64_t g = group_, half = g / 2;
        for (int64_t gi = 0; gi < groups; ++gi) {
          const float s = scales_[static_cast<size_t>(r * groups + gi)];
          const uint8_t* b = src + gi * half;
          const int64_t c0 = gi * g;
          if (c0 + g <= cols_) {
            float* lo = dst + c0;
            float* hi = dst + c0 + half;
#if defined(__AVX512F__)
            // Widen 16 bytes to 2 x 16 floats per step (the compiler does not).
            const __m512 sv = _mm512_set1_ps(s), eight = _mm512_set1_ps(8.0f);
            const __m128i mask = _mm_set1_epi8(0x0f);
            for (int64_t j = 0; j < half; j += 16) {
              const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + j));
              const __m512 l = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(bytes, mask)));
              const __m512 h = _mm512_cvtepi32_ps(
                  _mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(bytes, 4), mask)));
              _mm512_storeu_ps(lo + j, _mm512_mul_ps(sv, _mm512_sub_ps(l, eight)));
              _mm512_storeu_ps(hi + j, _mm512_mul_ps(sv, _mm512_sub_ps(h, eight)));
            }
#else
            for (int64_t j = 0; j < half; ++j) {
              lo[j] = s * static_cast<float>((b[j] & 0x0f) - 8);
              hi[j] = s * static_cast<float>((b[j] >> 4) - 8);
            }
#endif
          } else {  // the padded last group
            for (int64_t c = c0; c < cols_; ++c) {
              const int64_t j = c - c0;
              const int nib = j < half ? (b[j] & 0x0f) : (b[j - half] >> 4);
              dst[c] = s * static_cast<float>(nib - 8);
            }
          }
        }
        break;
      }
    }
  }
}

}  // namespace hessgpt::infer
