// Matrix products through cuBLASLt for the row-major, transpose-flag requests
// of the Backend interface (the mapping is plan_row_major_gemm in
// launch_config.h). FP32 requests use CUBLAS_COMPUTE_32F (true FP32, no TF32);
// BF16 requests round both operands to BF16 copies (leading dimension padded
// to 16 bytes) and accumulate in FP32 into the FP32 output, the semantics of
// the CPU backend's BF16 products. An operand stored in BF16 whose layout
// already serves (16-byte rows and start, no padding due) is read in place. An odd K is padded with zeros to a multiple
// of 8 in those copies: on an H200 the FFN's down projection (K = 3413) went
// from 82 to 397 TFLOP/s. An odd N is padded the same way, the product staged
// in an aligned buffer and merged into C. HESSGPT_CUBLASLT_PAD=0 turns both
// off (for A/B timing). Descriptors and the heuristic's algorithm are cached per shape.
// HESSGPT_CUBLASLT_TUNE=1 (or verbose: a line per product on stderr) times up
// to 8 of the heuristic's candidates on the first call of each shape and keeps
// the fastest: faster where the first guess is poor, but the choice (and so
// the rounding) may differ from run to run, so it is off by default.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <map>
#include <memory>
#include <tuple>

#include "backend/cuda/device_scratch.h"

namespace hessgpt::cuda {

// One stored operand: row-major with row length ld and `rows` rows, F32 or
// (bf16) BF16 storage.
struct LtOperand {
  const void* data = nullptr;
  bool bf16 = false;
  int64_t ld = 0, rows = 0;
};

class LtMatmul {
 public:
  LtMatmul();
  ~LtMatmul();
  LtMatmul(const LtMatmul&) = delete;
  LtMatmul& operator=(const LtMatmul&) = delete;

  // Row-major C[m, n] = alpha op(A) op(B) + beta C; ldc is the row length of
  // c. k > 0, m > 0, n > 0. bf16_math: BF16 operands (copies where needed),
  // FP32 accumulation; otherwise FP32 (BF16 operands widened). With c_bf16 the
  // result goes there instead, rounded to BF16 ([m, n], row length ldc, beta
  // must be 0; c unused; its columns [n, ldc) are zeroed).
  // With c_in (F32, row length ldc, beta 1; not with c_bf16 nor where the
  // output is staged: will_stage), the product adds c_in instead of c: C != D.
  void run(bool bf16_math, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
           const LtOperand& a, const LtOperand& b, float alpha, float beta, float* c,
           int64_t ldc, cudaStream_t stream, uint16_t* c_bf16 = nullptr,
           const float* c_in = nullptr);
  // Whether run() computes an F32 output of width n through a staging buffer.
  bool will_stage(bool bf16_math, int64_t n) const;
  // Whether run() computes C[m, n] as its transpose (F32 output, BF16 products,
  // m not a multiple of 8, n one, K at least 8 max(m, n): model1's gate/up weight
  // gradients [3413, 1280] over K = 32768). On an H200 cuBLASLt's best kernel
  // for that orientation took 0.67 ms, against 0.37 ms for [1280, 3416] (the down
  // projection's, the same sizes transposed). HESSGPT_CUBLASLT_TRANSPOSE=0
  // turns it off (read at every call, for A/B timings and tests).
  bool runs_transposed(bool bf16_math, int64_t m, int64_t n, int64_t k) const;

 private:
  struct Plan;
  // bf16 operands, BF16 output, trans_a, trans_b, m, n, k, lda, ldb, ldc,
  // pointer alignments (a, b, c).
  using Key = std::tuple<bool, bool, bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t,
                         int64_t, int, int, int>;
  Plan& plan(const Key& key);
  // Times the plan's candidates on these operands (into a scratch output) and
  // keeps the fastest; once per plan, under HESSGPT_CUBLASLT_TUNE.
  void tune(Plan& p, const void* first, const void* second, size_t out_bytes,
            cudaStream_t stream);
  // The operand as the product reads it: itself when its layout serves, else
  // a copy into scratch `slot` (BF16 with rows x ld, zero padded; or widened).
  const void* prepare(int slot, const LtOperand& x, bool bf16_math, int64_t rows, int64_t ld,
                      cudaStream_t stream);

  struct Handle;
  std::unique_ptr<Handle> handle_;
  std::map<Key, std::unique_ptr<Plan>> plans_;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  bool pad_ = true;
  bool tune_ = false, tune_verbose_ = false;
  // Copies of A and B, the staged output, the transposed product.
  DeviceScratch scratch_[4];
};

}  // namespace hessgpt::cuda
