// BF16 matrix products through oneDNN (AMX or AVX512-BF16 where the CPU has
// them): FP32 operands are rounded to BF16, products accumulate in FP32 and
// land in an FP32 output. Master weights and every other op stay FP32.
#pragma once

#include <cstdint>
#include <memory>

namespace hessgpt::cpu {

class Bf16Matmul {
 public:
  Bf16Matmul();
  ~Bf16Matmul();
  Bf16Matmul(const Bf16Matmul&) = delete;
  Bf16Matmul& operator=(const Bf16Matmul&) = delete;

  // True when this build has oneDNN.
  static bool compiled();
  // The kernel oneDNN picked for the last new shape (e.g. "brg:avx512_core_amx_bf16").
  const char* last_impl() const;

  // Row-major C[M,N] = op(A) op(B) + beta C, beta 0 or 1 (alpha is 1). An
  // operand is F32 (rounded into a copy) or, with its *_bf16 flag, BF16 bits
  // read as they are.
  void run(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const void* a,
           bool a_bf16, int64_t lda, const void* b, bool b_bf16, int64_t ldb, float beta,
           float* c, int64_t ldc);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Round-to-nearest-even FP32 -> BF16 (NaN stays NaN).
void to_bf16(uint16_t* dst, const float* src, int64_t n);
// BF16 -> FP32, exact.
void from_bf16(float* dst, const uint16_t* src, int64_t n);

}  // namespace hessgpt::cpu
