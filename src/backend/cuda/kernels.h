// Host-side launchers of the CUDA kernels. Arithmetic is FP32 throughout;
// weights, gradients and AdamW state are F32, and activations are F32 or,
// where a launcher takes uint16_t, BF16 storage (backend.h; the bits of a
// __nv_bfloat16). Matrix-product operands are rounded to BF16 in
// matmul_lt.cpp and attention_mma.cu. Each launcher enqueues on `stream` and
// returns at once; shapes were checked by CudaBackend.
// The semantics are those of the CPU kernels (backend/cpu/kernels.h), which
// the CUDA tests compare against: parameter gradients +=, activation
// gradients = unless stated.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "backend/cuda/launch_config.h"

namespace hessgpt::cuda {

// ---- elementwise.cu ---------------------------------------------------------
void add_inplace(float* y, const float* x, int64_t n, cudaStream_t stream);
void scale_inplace(float* x, float s, int64_t n, cudaStream_t stream);
void fill(float* x, float value, int64_t n, cudaStream_t stream);
// *result = sum(x^2) in double; partials holds reduction_blocks(n) doubles.
void sum_squares(double* result, double* partials, const float* x, int64_t n,
                 cudaStream_t stream);
// Out, In: float or uint16_t (BF16), any combination. n values of out;
// joined_w > 0: gate and up (and dgate, dup) side by side in rows of
// 2 joined_w, up = gate + joined_w (Backend::swiglu_*_joined); 0: apart.
template <typename Out, typename In>
void swiglu_forward(Out* out, const In* gate, const In* up, int64_t n, int64_t joined_w,
                    cudaStream_t stream);
// Grad: float or uint16_t (BF16 dgate/dup); DOut uint16_t (BF16) only with
// BF16 gate/up.
template <typename Grad, typename In, typename DOut>
void swiglu_backward(Grad* dgate, Grad* dup, const DOut* dout, const In* gate, const In* up,
                     int64_t n, int64_t joined_w, cudaStream_t stream);
// dst[r, c] (leading dim dst_ld, dst_rows >= rows rows) = bf16(src[r, c])
// (leading dim src_ld), round to nearest even (a copy for a BF16 source);
// padding columns [cols, dst_ld) and padding rows [rows, dst_rows) are zero.
template <typename In>
void to_bf16(uint16_t* dst, int64_t dst_ld, int64_t dst_rows, const In* src, int64_t src_ld,
             int64_t rows, int64_t cols, cudaStream_t stream);
// dst[i] = float(src[i]), exact.
void widen_bf16(float* dst, const uint16_t* src, int64_t n, cudaStream_t stream);
// Columns [col0, col0 + cols) of dst [rows, width] = src [rows, cols], each
// value converted (Out, In: float or uint16_t BF16).
template <typename Out, typename In>
void copy_columns(Out* dst, const In* src, int64_t rows, int64_t width, int64_t col0,
                  int64_t cols, cudaStream_t stream);

// c[rows, cols] *= beta outside its top-left m x n block (0 when beta is 0);
// T: float or uint16_t (BF16).
template <typename T>
void scale_margins(T* c, int64_t rows, int64_t cols, int64_t m, int64_t n, float beta,
                   cudaStream_t stream);

// dst[r, c] = src[r, c] + beta dst[r, c] for r < rows, c < cols (leading dims
// dst_ld, src_ld); dst is not read when beta == 0.
void merge_columns(float* dst, int64_t dst_ld, const float* src, int64_t src_ld, int64_t rows,
                   int64_t cols, float beta, cudaStream_t stream);
// The same with src transposed: dst[r, c] = src[c, r] + beta dst[r, c].
void merge_transposed(float* dst, int64_t dst_ld, const float* src, int64_t src_ld, int64_t rows,
                      int64_t cols, float beta, cudaStream_t stream);

// ---- embedding.cu -----------------------------------------------------------
// out[n, c] = table[ids[n]]; an id outside [0, v) copies nothing and records
// the smallest such position in *bad (which the caller set to UINT32_MAX;
// null: ids the caller checked, nothing recorded).
void embedding_forward(float* out, const int32_t* ids, const float* table, int64_t n, int64_t c,
                       int64_t v, uint32_t* bad, cudaStream_t stream);
// dtable[id] += the sum of dout's rows at id's positions, in position order,
// for each id in ids[n]; an id outside [0, v) adds nothing and records the
// smallest such position in *bad (set to UINT32_MAX by the caller). scratch:
// embedding_backward_scratch(n, v) bytes of device memory.
size_t embedding_backward_scratch(int64_t n, int64_t v);
void embedding_backward(float* dtable, const int32_t* ids, int64_t n, int64_t v, const float* dout,
                        int64_t c, void* scratch, uint32_t* bad, cudaStream_t stream);

// ---- gemv.cu: c[m, n] = alpha a b^T + beta c for m <= kGemvMaxRows, row-major
// a [m, k] and c [m, n] F32, b [n, k] with row length ldb >= k, F32 or (b_bf16)
// BF16 storage (beta 0: c not read). bf16_operands: a and b rounded to BF16 as
// read (the BF16 products' rule), FP32 sums.
void gemv_rows(float* c, const float* a, const void* b, bool b_bf16, int64_t m, int64_t n,
               int64_t k, int64_t ldb, float alpha, float beta, bool bf16_operands,
               cudaStream_t stream);

// ---- gemv_prologue.cu: one row, c[n] = rmsnorm(x) b^T (beta 0) or c[n] =
// swiglu(gate, up) b^T + beta c, the operand built per block in shared memory
// (gemv_prologue_fits(k)); b as gemv_rows reads it.
void gemv_norm(float* c, const float* x, const float* norm_w, double eps, const void* b,
               bool b_bf16, int64_t n, int64_t k, int64_t ldb, bool bf16_operands,
               cudaStream_t stream);
void gemv_swiglu(float* c, const float* gate, const float* up, const void* b, bool b_bf16,
                 int64_t n, int64_t k, int64_t ldb, float beta, bool bf16_operands,
                 cudaStream_t stream);

// ---- rmsnorm.cu -------------------------------------------------------------
// RoPE fused into QK-Norm: the rows are those of a [B, T, heads, D] tensor, row r
// at position pos0 + (r / heads) % t, cos/sin [P, D/2] as rope() reads them.
// cos == nullptr: a plain RMSNorm.
// dx_heads > 0 (backward only): dx's rows hold dx_heads heads per token and
// row r's gradient goes to head dx_head0 + r % heads of its token.
struct RopeRows {
  const float* cos = nullptr;
  const float* sin = nullptr;
  int64_t t = 1, heads = 1, pos0 = 0;
  int64_t dx_heads = 0, dx_head0 = 0;
};
// Where row r's gradient starts in dx (in values).
HG_HD inline int64_t dx_row_offset(const RopeRows& rope, int64_t r, int64_t d) {
  if (rope.dx_heads == 0) return r * d;
  return ((r / rope.heads) * rope.dx_heads + rope.dx_head0 + r % rope.heads) * d;
}
// Out, X (x): float or uint16_t (BF16). With rope.cos the output is rotated
// (QK-Norm then RoPE in one pass).
template <typename Out, typename X>
void rmsnorm_forward(Out* out, float* rstd, const X* x, const float* w, int64_t rows,
                     int64_t d, double eps, cudaStream_t stream, const RopeRows& rope = {});
// dx (= or +=), dw +=; dw_partials holds rmsnorm_dw_partitions(rows) * d
// floats. DX, DO (dout), X (x): float or uint16_t (BF16). dx_copy (may be null):
// dx's final values rounded to BF16 as well. With rope.cos, dout is the
// gradient of the rotated output (it is rotated back on the way in; dout is
// not written).
template <typename DX, typename DO, typename X>
void rmsnorm_backward(DX* dx, uint16_t* dx_copy, float* dw, float* dw_partials, const DO* dout,
                      const X* x, const float* w, const float* rstd, int64_t rows, int64_t d,
                      bool accumulate_dx, cudaStream_t stream, const RopeRows& rope = {});

// ---- rope.cu: x[b, t, heads, d] in place; rows pos0 + t of cos/sin[P, d/2] --
void rope(float* x, const float* cos, const float* sin, int64_t b, int64_t t, int64_t heads,
          int64_t d, int64_t pos0, bool inverse, cudaStream_t stream);

// ---- attention.cu: causal GQA, flash-style (d <= kAttnMaxHeadDim) ----------
void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                       int64_t b, int64_t tq, int64_t tk, int64_t h, int64_t kv, int64_t d,
                       float scale, int64_t q_pos0, cudaStream_t stream);
// delta holds b * h * t floats of scratch; dq, dk, dv are overwritten. out
// (the forward's output) is float or uint16_t (BF16 storage).
template <typename Out>
void attention_backward(float* dq, float* dk, float* dv, float* delta, const float* dout,
                        const float* q, const float* k, const float* v, const Out* out,
                        const float* lse, int64_t b, int64_t t, int64_t h, int64_t kv, int64_t d,
                        float scale, cudaStream_t stream);

// ---- decode.cu: one decoding step at the position *pos (read on the device;
// Backend::decode_attention); head_dim <= kAttnMaxHeadDim ---------------------
struct DecodeStep {
  float* out = nullptr;                      // [H, D]: the attention's output
  float* q_out = nullptr;                    // [H, D]: q normed and rotated
  float* k_cache = nullptr;                  // [P, KV, D]: row *pos written
  float* v_cache = nullptr;                  // [P, KV, D]: row *pos written
  const float* q_raw = nullptr;              // [H, D]
  const float* k_raw = nullptr;              // [KV, D]
  const float* v_raw = nullptr;              // [KV, D]
  const float* q_norm = nullptr;             // [D], or null (RoPE alone)
  const float* k_norm = nullptr;             // [D], or null (RoPE alone)
  const float* cos = nullptr;                // [P, D/2]
  const float* sin = nullptr;                // [P, D/2]
  const int32_t* pos = nullptr;              // [1]
  int64_t positions = 0, heads = 0, kv_heads = 0, head_dim = 0;
  double eps = 0.0;
  float scale = 0.0f;
};
// q and k normed (QK-Norm where the weights are given) and rotated at *pos, k
// and v into cache row *pos, then out = attention of q over rows 0 .. *pos, in
// one kernel. scratch holds decode_scratch_bytes(heads, head_dim, positions),
// its first kDecodeCounterBytes zero (as each call leaves them: zero them
// once, when the scratch is new).
void decode_step(const DecodeStep& step, void* scratch, cudaStream_t stream);

// ---- attention_mma.cu: the same two, on the tensor cores (BF16 operands, FP32
// accumulation and softmax), for BF16 precision. scratch holds
// attention_mma_scratch_bytes() for the BF16 copies the kernels read. out is
// float or uint16_t (BF16 storage), in the forward as in the backward; so
// are q, k, v (In: the kernels read BF16 copies of them either way).
size_t attention_mma_scratch_bytes(int64_t b, int64_t tq, int64_t tk, int64_t h, int64_t kv,
                                   int64_t d, bool backward);
template <typename Out, typename In>
void attention_mma_forward(Out* out, float* lse, const In* q, const In* k, const In* v,
                           int64_t b, int64_t tq, int64_t tk, int64_t h, int64_t kv, int64_t d,
                           float scale, int64_t q_pos0, void* scratch, cudaStream_t stream);
template <typename Out, typename In>
void attention_mma_backward(float* dq, float* dk, float* dv, float* delta, const float* dout,
                            const In* q, const In* k, const In* v, const Out* out,
                            const float* lse, int64_t b, int64_t t, int64_t h, int64_t kv,
                            int64_t d, float scale, void* scratch, cudaStream_t stream);

// ---- cross_entropy.cu -------------------------------------------------------
void softcap(float* logits, int64_t rows, int64_t v, float cap, cudaStream_t stream);
// As cpu::softcap_cross_entropy; a target outside [0, v) other than -100
// records the smallest such row in *bad (set to UINT32_MAX by the caller).
// The logits are float, or uint16_t: BF16 storage, read widened. The gradient
// goes to grad ([rows, v], float or BF16; it may be the logits themselves).
// scratch: softcap_cross_entropy_scratch(rows, v) floats of device memory
// (null where that is 0).
template <typename Logit, typename Grad>
void softcap_cross_entropy(const Logit* logits, float* losses, const int32_t* targets,
                           int64_t rows, int64_t v, float cap, float dscale, uint32_t* bad,
                           cudaStream_t stream, Grad* grad, float* scratch);
// The floats of scratch the kernel chosen for rows x v needs (HESSGPT_CE_KERNEL).
int64_t softcap_cross_entropy_scratch(int64_t rows, int64_t v);

// ---- adamw.cu: constants precomputed on the host as the CPU kernel does -----
struct AdamWConstants {
  float step_size, inv_sqrt_bc2, decay, beta1, beta2, grad_scale, eps;
};
void adamw(float* param, const float* grad, float* m, float* v, int64_t n,
           const AdamWConstants& c, cudaStream_t stream);
// The same over `count` chunks (launch_config.h; a device array), one block
// each: c.decay where a chunk decays, none where not. vec: the four buffers
// are 16-byte aligned (then 16-byte accesses inside each chunk).
void adamw_chunked(float* param, const float* grad, float* m, float* v, const AdamWChunk* chunks,
                   int64_t count, const AdamWConstants& c, bool vec, cudaStream_t stream);

}  // namespace hessgpt::cuda
