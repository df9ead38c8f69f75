// Weight matrices for inference, stored the way decode reads them: FP32 (a
// view of the model's own weights), BF16, INT8 per output channel, or INT4
// per group along the input dimension. Decode multiplies them by one
// activation vector straight from this storage (quant_matvec.cpp); prefill
// dequantises tiles and uses the backend's matmul.
//
// Layouts (row-major, one row per output channel, rows independent):
//   F32  float[cols]
//   BF16 uint16[cols] (the top half of the float)
//   Q8   uint8[cols], scales[rows]: w = scale[r] * (u - 128), u - 128 in
//        [-127, 127]. In memory the integers are offset binary: vpdpbusd
//        multiplies unsigned by signed bytes, so biased weights go straight
//        in and the bias leaves as 128 * sum(x), once per input chunk shared
//        by all rows. Files keep plain int8 (file_bytes / from_parts convert).
//   Q4   uint8[padded/2], scales[rows, groups]: w = scale[r,g] * (nibble - 8),
//        nibble in [1, 15]; padded = groups * group_size (the last group is
//        padded with nibble 8 = 0.0, so any width works, e.g. FFN 3413).
//        Inside one group of G values byte j holds value j in its low nibble
//        and value j + G/2 in its high nibble, so one load yields two runs of
//        consecutive values without shuffles.
//
// Products: F32/BF16 widen the weights to float and FMA. INT8/INT4 on
// AVX512-VNNI quantise x to int8 per block (32 values; one group for INT4),
// multiply bytes with vpdpbusd and apply the weight x activation scales per
// block in float (like llama.cpp's Q8_0 activations); elsewhere they widen
// to float too. The activation rounding is bounded in quant_test.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/huge_page_allocator.h"

namespace hessgpt::infer {

enum class WeightFormat { F32, BF16, Q8, Q4 };

class QuantMatrix;

// One activation vector prepared for the matvec kernels of one format and
// width: on AVX512-VNNI the int8 blocks of x for INT8/INT4 weights, else x
// itself (and its group sums for INT4). Preparing once lets every matrix and
// thread that reads the same x share the work; the buffers are kept between
// calls, so a long-lived input allocates nothing per token. x must stay
// valid while products read the input.
class MatvecInput {
 public:
  // The input of matrices shaped like `w` (format, cols, group size).
  void prepare(const float* x, const QuantMatrix& w);
  bool matches(const QuantMatrix& w) const;

 private:
  friend class QuantMatrix;
  const float* x_ = nullptr;
  int64_t cols_ = 0, group_ = 0;
  int format_ = -1;
  std::vector<int8_t> q_, lo_, hi_;       // VNNI: int8 x (INT8), or the two nibble runs (INT4)
  std::vector<float> lane_scale_;         // VNNI: the x scale of each 4-byte dpbusd lane
  std::vector<float> offset_;             // VNNI INT4: 8 * scale * sum(q) per group
  std::vector<float> lane_offset_;        // VNNI INT4: offset_ shared out over each group's lanes
  std::vector<float> padded_, group_sum_; // portable INT4: x padded to whole groups, sums
};

// 32, 16, 8, 4 -> format; throws Error on anything else.
WeightFormat weight_format_from_bits(int bits);
int weight_format_bits(WeightFormat format);
const char* weight_format_name(WeightFormat format);

class QuantMatrix {
 public:
  QuantMatrix() = default;
  QuantMatrix(QuantMatrix&&) noexcept = default;
  QuantMatrix& operator=(QuantMatrix&&) noexcept = default;
  QuantMatrix(const QuantMatrix&) = delete;
  QuantMatrix& operator=(const QuantMatrix&) = delete;

  // A non-owning FP32 view; w must outlive the matrix.
  static QuantMatrix view_f32(const float* w, int64_t rows, int64_t cols);
  // Quantises w[rows, cols] (round to nearest, symmetric). group_size is used
  // by Q4 only (a multiple of 32).
  static QuantMatrix quantize(const float* w, int64_t rows, int64_t cols, WeightFormat format,
                              int64_t group_size = 32);
  // Adopts stored data in the file layout (Q8: int8); sizes are checked.
  static QuantMatrix from_parts(WeightFormat format, int64_t rows, int64_t cols,
                                int64_t group_size, std::vector<uint8_t> data,
                                std::vector<float> scales);

  WeightFormat format() const { return format_; }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  int64_t group_size() const { return group_; }       // Q4: values per scale
  int64_t groups() const { return group_ ? (cols_ + group_ - 1) / group_ : 0; }
  int64_t row_bytes() const { return row_bytes_; }    // stored bytes of one row
  const uint8_t* data() const { return storage_.empty() ? external_ : storage_.data(); }
  const std::vector<float>& scales() const { return scales_; }
  // The integers in the file layout from_parts takes (Q8: int8, not offset).
  std::vector<uint8_t> file_bytes() const;
  // Bytes one full pass over the matrix reads (data + scales): the decode cost.
  size_t stream_bytes() const;

  // out[(r1 - r0), cols] = rows r0..r1 as float.
  void dequantize_rows(int64_t r0, int64_t r1, float* out) const;
  // y[rows] = W x, x[cols]; rows split across the OpenMP threads.
  void matvec(const float* x, float* y) const;
  // y[r] for r in [r0, r1) on the calling thread only (callers inside a
  // parallel region split rows themselves). The input must match this
  // matrix's shape. Each row's value is the same whatever the range, so any
  // split of the rows gives bit-identical results.
  void matvec_rows(const MatvecInput& x, int64_t r0, int64_t r1, float* y) const;

 private:
  WeightFormat format_ = WeightFormat::F32;
  int64_t rows_ = 0, cols_ = 0, group_ = 0, row_bytes_ = 0;
  std::vector<uint8_t, HugePageAllocator<uint8_t>> storage_;  // streamed every token
  const uint8_t* external_ = nullptr;
  std::vector<float> scales_;
};

}  // namespace hessgpt::infer
