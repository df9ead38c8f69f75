#include <cblas.h>

#include "backend/cpu/kernels.h"

namespace hessgpt::cpu {

template <>
void gemm<float>(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                 const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                 int64_t ldc) {
  if (m == 0 || n == 0) return;
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, static_cast<blasint>(m),
              static_cast<blasint>(n), static_cast<blasint>(k), alpha, a,
              static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c,
              static_cast<blasint>(ldc));
}

template <>
void gemm<double>(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                  const double* a, int64_t lda, const double* b, int64_t ldb, double beta,
                  double* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, static_cast<blasint>(m),
              static_cast<blasint>(n), static_cast<blasint>(k), alpha, a,
              static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c,
              static_cast<blasint>(ldc));
}

template <typename T>
void scale_margins(T* c, int64_t rows, int64_t cols, int64_t m, int64_t n, T beta) {
  const auto scale = [beta](T* x, int64_t count) {
    for (int64_t i = 0; i < count; ++i) x[i] = beta == T(0) ? T(0) : beta * x[i];
  };
  if (n < cols)
    for (int64_t r = 0; r < m; ++r) scale(c + r * cols + n, cols - n);
  if (m < rows) scale(c + m * cols, (rows - m) * cols);
}
template void scale_margins<float>(float*, int64_t, int64_t, int64_t, int64_t, float);
template void scale_margins<double>(double*, int64_t, int64_t, int64_t, int64_t, double);

}  // namespace hessgpt::cpu
