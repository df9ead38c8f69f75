// CPU kernels, templated on the scalar type: float for real work, double so
// that the finite-difference tests can check every backward tightly.
// Forward and backward of an op sit side by side in one file each.
// Threading: OpenMP with static partitions and fixed-order reductions, so a
// result depends only on the inputs and the thread count (bit-exact resume).
#pragma once

#include <cstdint>

namespace hessgpt::cpu {

// ---- matmul.cpp: C[M,N] = alpha op(A) op(B) + beta C, row-major, via BLAS.
template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
          int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc);

// c[rows, cols] *= beta outside its top-left m x n block (= 0 when beta is 0).
template <typename T>
void scale_margins(T* c, int64_t rows, int64_t cols, int64_t m, int64_t n, T beta);

// ---- elementwise.cpp ------------------------------------------------------
template <typename T> void add_inplace(T* y, const T* x, int64_t n);
template <typename T> void scale_inplace(T* x, T s, int64_t n);
template <typename T> double sum_squares(const T* x, int64_t n);
template <typename T> void fill(T* x, T value, int64_t n);
// out = silu(gate) * up; gate/up are T, or (In = uint16_t, T = float) BF16 storage.
// Over rows of w: out's (and dout's) element (r, j) at r w + j, gate's, up's,
// dgate's and dup's at r ld + j (ld = w for tensors of their own, 2 w for
// gate and up side by side, up then starting w after gate).
template <typename T, typename In = T>
void swiglu_forward(T* out, const In* gate, const In* up, int64_t rows, int64_t w, int64_t ld);
// dout too may be BF16 storage (DOut = uint16_t) when gate/up are.
template <typename T, typename In = T, typename DOut = T>
void swiglu_backward(T* dgate, T* dup, const DOut* dout, const In* gate, const In* up,
                     int64_t rows, int64_t w, int64_t ld);

// ---- embedding.cpp: out[N,C] = table[ids]; dtable[V,C] += scatter(dout) ---
// Ids are checked against V; an out-of-range id throws Error.
template <typename T>
void embedding_forward(T* out, const int32_t* ids, const T* table, int64_t n, int64_t c,
                       int64_t v);
template <typename T>
void embedding_backward(T* dtable, const int32_t* ids, const T* dout, int64_t n, int64_t c,
                        int64_t v);

// ---- rmsnorm.cpp: per row of D: out = x * rstd * w, rstd = 1/sqrt(mean(x^2)+eps)
template <typename T>
void rmsnorm_forward(T* out, T* rstd, const T* x, const T* w, int64_t rows, int64_t d,
                     double eps);
// dx (= or +=), dw +=. With xhat = x*rstd, g = dout*w:
//   dx = rstd * (g - xhat * mean(g * xhat)),  dw += sum_rows(dout * xhat)
template <typename T>
void rmsnorm_backward(T* dx, T* dw, const T* dout, const T* x, const T* w, const T* rstd,
                      int64_t rows, int64_t d, bool accumulate_dx);

// ---- rope.cpp: x[B,T,heads,D] in place, rotate-half pairs (i, i+D/2);
// cos/sin rows indexed by pos0 + t. inverse applies the transpose (backward).
template <typename T>
void rope(T* x, const T* cos, const T* sin, int64_t b, int64_t t, int64_t heads, int64_t d,
          int64_t pos0, bool inverse);

// ---- attention.cpp: causal GQA, tiled with an online softmax (never T x T).
// q[B,Tq,H,D], k/v[B,Tk,KV,D], out[B,Tq,H,D], lse[B,H,Tq].
template <typename T>
void attention_forward(T* out, T* lse, const T* q, const T* k, const T* v, int64_t b,
                       int64_t tq, int64_t tk, int64_t h, int64_t kv, int64_t d, double scale,
                       int64_t q_pos0);
// Recomputes probabilities tile by tile from lse; dq, dk, dv overwritten.
template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                        const T* out, const T* lse, int64_t b, int64_t t, int64_t h, int64_t kv,
                        int64_t d, double scale);

// ---- cross_entropy.cpp ----------------------------------------------------
template <typename T> void softcap(T* logits, int64_t rows, int64_t v, double cap);
// losses[r] = logsumexp(s) - s[target], s = softcap(z); 0 for target -100.
// When dscale != 0, logits become dscale * dloss/dz (softmax - onehot) * (1 - tanh^2).
template <typename T>
void softcap_cross_entropy(T* logits, T* losses, const int32_t* targets, int64_t rows, int64_t v,
                           double cap, double dscale);
// The same over BF16 logits (storage: widened, each row scored in float), the
// gradient (dscale != 0) rounded into grad, which may alias logits.
void softcap_cross_entropy_bf16(const uint16_t* logits, uint16_t* grad, float* losses,
                                const int32_t* targets, int64_t rows, int64_t v, double cap,
                                double dscale);

// ---- adamw.cpp: decoupled weight decay, bias-corrected moments ------------
template <typename T>
void adamw(T* param, const T* grad, T* m, T* v, int64_t n, double lr, double beta1, double beta2,
           double eps, double weight_decay, int64_t step, double grad_scale);

}  // namespace hessgpt::cpu
