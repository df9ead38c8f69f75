// Causal grouped-query attention, flash-style: scores are produced one tile
// (a block of queries x a block of keys) at a time with an online softmax, so
// memory stays linear in T. Backward recomputes probabilities from the cached
// log-sum-exp (FlashAttention-2): one pass over key blocks for dK/dV, one over
// query blocks for dQ, so no two threads ever write the same row.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backend/cpu/kernels.h"
#include "backend/cpu/parallel.h"
#include "backend/cpu/vec_math.h"

namespace hessgpt::cpu {
namespace {

constexpr int64_t kQueryBlock = 32;
constexpr int64_t kKeyBlock = 64;

template <typename T>
inline T dot(const T* a, const T* b, int64_t d) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t e = 0; e < d; ++e) s += a[e] * b[e];
  return s;
}

template <typename T>
inline void axpy(T* y, T alpha, const T* x, int64_t d) {
#pragma omp simd
  for (int64_t e = 0; e < d; ++e) y[e] += alpha * x[e];
}

// Row strides of the [B, T, heads, D] layouts.
struct Layout {
  int64_t tq, tk, h, kv, d;
  int64_t q_row(int64_t b, int64_t i, int64_t head) const { return ((b * tq + i) * h + head) * d; }
  int64_t k_row(int64_t b, int64_t j, int64_t g) const { return ((b * tk + j) * kv + g) * d; }
  int64_t lse_at(int64_t b, int64_t head, int64_t i) const { return (b * h + head) * tq + i; }
};

}  // namespace

template <typename T>
void attention_forward(T* out, T* lse, const T* q, const T* k, const T* v, int64_t b,
                       int64_t tq, int64_t tk, int64_t h, int64_t kv, int64_t d, double scale,
                       int64_t q_pos0) {
  const Layout lay{tq, tk, h, kv, d};
  const int64_t group = h / kv;
  const int64_t n_qblocks = (tq + kQueryBlock - 1) / kQueryBlock;
  const T sc = static_cast<T>(scale);
  parallel_for(b * h * n_qblocks, [&](int64_t task) {
    const int64_t qb = task % n_qblocks;
    const int64_t head = (task / n_qblocks) % h;
    const int64_t bi = task / (n_qblocks * h);
    const int64_t g = head / group;
    const int64_t i0 = qb * kQueryBlock, i1 = std::min(tq, i0 + kQueryBlock);
    const int64_t rows = i1 - i0;
    std::vector<T> acc(static_cast<size_t>(rows * d), T(0));
    std::vector<T> m(static_cast<size_t>(rows), -std::numeric_limits<T>::infinity());
    std::vector<T> l(static_cast<size_t>(rows), T(0));
    T s[kKeyBlock];
    const int64_t last_key = std::min(tk - 1, q_pos0 + i1 - 1);
    for (int64_t j0 = 0; j0 <= last_key; j0 += kKeyBlock) {
      const int64_t j1 = std::min(last_key + 1, j0 + kKeyBlock);
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t pos = q_pos0 + i0 + r;
        const int64_t jend = std::min(j1, pos + 1);
        if (jend <= j0) continue;
        const T* qi = q + lay.q_row(bi, i0 + r, head);
        T block_max = -std::numeric_limits<T>::infinity();
        for (int64_t j = j0; j < jend; ++j) {
          s[j - j0] = sc * dot(qi, k + lay.k_row(bi, j, g), d);
          block_max = std::max(block_max, s[j - j0]);
        }
        const T m_new = std::max(m[r], block_max);
        const T correction = std::exp(m[r] - m_new);
        T* acc_r = acc.data() + r * d;
        if (correction != T(1)) {
          l[r] *= correction;
          for (int64_t e = 0; e < d; ++e) acc_r[e] *= correction;
        }
        T block_sum = 0;
#pragma omp simd reduction(+ : block_sum)
        for (int64_t j = 0; j < jend - j0; ++j) {
          s[j] = vexp(s[j] - m_new);
          block_sum += s[j];
        }
        l[r] += block_sum;
        for (int64_t j = j0; j < jend; ++j) axpy(acc_r, s[j - j0], v + lay.k_row(bi, j, g), d);
        m[r] = m_new;
      }
    }
    for (int64_t r = 0; r < rows; ++r) {
      T* o = out + lay.q_row(bi, i0 + r, head);
      const T inv = T(1) / l[r];
      for (int64_t e = 0; e < d; ++e) o[e] = acc[r * d + e] * inv;
      lse[lay.lse_at(bi, head, i0 + r)] = m[r] + std::log(l[r]);
    }
  });
}

template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                        const T* out, const T* lse, int64_t b, int64_t t, int64_t h, int64_t kv,
                        int64_t d, double scale) {
  const Layout lay{t, t, h, kv, d};
  const int64_t group = h / kv;
  const T sc = static_cast<T>(scale);

  // delta_i = dO_i . O_i, the softmax-backward row term.
  std::vector<T> delta(static_cast<size_t>(b * h * t));
  parallel_for(b * t, [&](int64_t bt) {
    const int64_t bi = bt / t, i = bt % t;
    for (int64_t head = 0; head < h; ++head) {
      const int64_t row = lay.q_row(bi, i, head);
      delta[lay.lse_at(bi, head, i)] = dot(dout + row, out + row, d);
    }
  });

  // dK, dV: each task owns one key block of one KV head.
  const int64_t n_kblocks = (t + kKeyBlock - 1) / kKeyBlock;
  parallel_for(b * kv * n_kblocks, [&](int64_t task) {
    const int64_t kb = task % n_kblocks;
    const int64_t g = (task / n_kblocks) % kv;
    const int64_t bi = task / (n_kblocks * kv);
    const int64_t j0 = kb * kKeyBlock, j1 = std::min(t, j0 + kKeyBlock);
    for (int64_t j = j0; j < j1; ++j) {
      std::fill_n(dk + lay.k_row(bi, j, g), d, T(0));
      std::fill_n(dv + lay.k_row(bi, j, g), d, T(0));
    }
    for (int64_t head = g * group; head < (g + 1) * group; ++head) {
      for (int64_t i = j0; i < t; ++i) {
        const int64_t qrow = lay.q_row(bi, i, head);
        const T* qi = q + qrow;
        const T* doi = dout + qrow;
        const T lse_i = lse[lay.lse_at(bi, head, i)];
        const T delta_i = delta[lay.lse_at(bi, head, i)];
        const int64_t jend = std::min(j1, i + 1);
        T p[kKeyBlock];
        for (int64_t j = j0; j < jend; ++j) p[j - j0] = sc * dot(qi, k + lay.k_row(bi, j, g), d) - lse_i;
#pragma omp simd
        for (int64_t j = 0; j < jend - j0; ++j) p[j] = vexp(p[j]);
        for (int64_t j = j0; j < jend; ++j) {
          const int64_t krow = lay.k_row(bi, j, g);
          axpy(dv + krow, p[j - j0], doi, d);
          const T ds = p[j - j0] * (dot(doi, v + krow, d) - delta_i);
          axpy(dk + krow, sc * ds, qi, d);
        }
      }
    }
  });

  // dQ: each task owns one query row block of one head.
  const int64_t n_qblocks = (t + kQueryBlock - 1) / kQueryBlock;
  parallel_for(b * h * n_qblocks, [&](int64_t task) {
    const int64_t qb = task % n_qblocks;
    const int64_t head = (task / n_qblocks) % h;
    const int64_t bi = task / (n_qblocks * h);
    const int64_t g = head / group;
    const int64_t i0 = qb * kQueryBlock, i1 = std::min(t, i0 + kQueryBlock);
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t qrow = lay.q_row(bi, i, head);
      const T* qi = q + qrow;
      const T* doi = dout + qrow;
      T* dqi = dq + qrow;
      std::fill_n(dqi, d, T(0));
      const T lse_i = lse[lay.lse_at(bi, head, i)];
      const T delta_i = delta[lay.lse_at(bi, head, i)];
      T p[kKeyBlock];
      for (int64_t j0 = 0; j0 <= i; j0 += kKeyBlock) {
        const int64_t jend = std::min(i + 1, j0 + kKeyBlock);
        for (int64_t j = j0; j < jend; ++j) p[j - j0] = sc * dot(qi, k + lay.k_row(bi, j, g), d) - lse_i;
#pragma omp simd
        for (int64_t j = 0; j < jend - j0; ++j) p[j] = vexp(p[j]);
        for (int64_t j = j0; j < jend; ++j) {
          const int64_t krow = lay.k_row(bi, j, g);
          const T ds = p[j - j0] * (dot(doi, v + krow, d) - delta_i);
          axpy(dqi, sc * ds, k + krow, d);
        }
      }
    }
  });
}

#define HG_INSTANTIATE(T)                                                                      \
  template void attention_forward<T>(T*, T*, const T*, const T*, const T*, int64_t, int64_t,  \
                                     int64_t, int64_t, int64_t, int64_t, double, int64_t);    \
  template void attention_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*,     \
                                      const T*, const T*, int64_t, int64_t, int64_t, int64_t, \
                                      int64_t, double);
HG_INSTANTIATE(float)
HG_INSTANTIATE(double)
#undef HG_INSTANTIATE

}  // namespace hessgpt::cpu
