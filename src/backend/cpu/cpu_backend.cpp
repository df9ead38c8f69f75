// Checks shapes and dtypes at the interface, then dispatches to the float or
// double kernel.
#include "backend/cpu/cpu_backend.h"

#include <cblas.h>
#include <omp.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "backend/cpu/kernels.h"
#include "core/bf16.h"
#include "core/huge_page_allocator.h"

namespace hessgpt {
namespace {

void check_cpu(const Tensor& t, const char* what) {
  HG_CHECK(t.device == Device::CPU && t.data != nullptr, what, " is not a CPU tensor");
}

// All float tensors of one op share a dtype; dispatch on it.
template <typename Fn>
void dispatch_float(DType dtype, Fn&& fn) {
  if (dtype == DType::F32) {
    fn(float{});
  } else if (dtype == DType::F64) {
    fn(double{});
  } else {
    HG_FAIL("the CPU backend computes in F32 or F64, not ", dtype_name(dtype));
  }
}

void check_same(const Tensor& a, const Tensor& b, const char* what) {
  HG_CHECK(a.dtype == b.dtype, what, ": dtype mismatch ", dtype_name(a.dtype), " vs ",
           dtype_name(b.dtype));
  HG_CHECK(a.numel() == b.numel(), what, ": size mismatch ", a.shape_string(), " vs ",
           b.shape_string());
}

}  // namespace

CpuBackend::CpuBackend(int threads) { set_threads(threads); }
CpuBackend::~CpuBackend() = default;

bool CpuBackend::supports_matmul_precision(MatmulPrecision p) const {
  return p == MatmulPrecision::FP32 || cpu::Bf16Matmul::compiled();
}

// BF16 is a storage type here (backend.h): matmul operands and outputs, the
// outputs of RMSNorm, attention and SwiGLU, SwiGLU's inputs.
bool CpuBackend::supports(DType dtype) const {
  return dtype == DType::F32 || dtype == DType::F64 || dtype == DType::I32 ||
         dtype == DType::U16 || dtype == DType::BF16;
}

void CpuBackend::set_threads(int threads) {
  threads_ = threads > 0 ? threads : 1;
  omp_set_num_threads(threads_);
  openblas_set_num_threads(threads_);
}

size_t CpuBackend::free_memory_bytes() const {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  size_t kb = 0;
  while (in >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024;
  return 0;
}

void* CpuBackend::allocate(size_t bytes) {
  // 64-byte alignment for AVX-512 loads; round the size up as aligned_alloc
  // requires. Buffers of 2 MiB and more (weights, the activation arena) are
  // huge-page aligned and advised, before their first touch (see
  // core/huge_page_allocator.h).
  const size_t rounded = (bytes + 63) / 64 * 64;
  void* p = bytes >= kHugePageBytes ? huge_page_alloc(bytes)
                                    : std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
  if (!p) HG_FAIL("out of host memory allocating ", bytes, " bytes");
  return p;
}

void CpuBackend::release(void* ptr) { std::free(ptr); }

void CpuBackend::copy_from_host(const Tensor& dst, const void* src) {
  check_cpu(dst, "copy destination");
  std::memcpy(dst.data, src, dst.bytes());
}

void CpuBackend::copy_to_host(void* dst, const Tensor& src) {
  check_cpu(src, "copy source");
  std::memcpy(dst, src.data, src.bytes());
}

void CpuBackend::copy(const Tensor& dst, const Tensor& src) {
  check_same(dst, src, "copy");
  std::memcpy(dst.data, src.data, dst.bytes());
}

void CpuBackend::convert(const Tensor& dst, const Tensor& src) {
  check_cpu(dst, "convert destination");
  check_cpu(src, "convert source");
  HG_CHECK(dst.numel() == src.numel(), "convert: size mismatch ", dst.shape_string(), " vs ",
           src.shape_string());
  if (dst.dtype == src.dtype) {
    copy(dst, src);
  } else if (dst.dtype == DType::BF16 && src.dtype == DType::F32) {
    cpu::to_bf16(dst.as<uint16_t>(), src.as<float>(), src.numel());
  } else if (dst.dtype == DType::F32 && src.dtype == DType::BF16) {
    cpu::from_bf16(dst.as<float>(), src.as<uint16_t>(), src.numel());
  } else {
    HG_FAIL("convert: ", dtype_name(src.dtype), " to ", dtype_name(dst.dtype), " is not supported");
  }
}

void CpuBackend::copy_columns(const Tensor& dst, int64_t col0, const Tensor& src) {
  for (const Tensor* t : {&dst, &src}) check_cpu(*t, "copy_columns operand");
  check_copy_columns(dst, col0, src);
  const int64_t rows = dst.rows(), width = dst.cols(), cols = src.cols();
  const auto value = [&](int64_t i) {
    return src.dtype == DType::BF16 ? bf16_to_float(src.as<uint16_t>()[i]) : src.as<float>()[i];
  };
  const auto put = [&](int64_t i, float v) {
    if (dst.dtype == DType::BF16) dst.as<uint16_t>()[i] = float_to_bf16(v);
    else dst.as<float>()[i] = v;
  };
#pragma omp parallel for num_threads(threads_) schedule(static)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) put(r * width + col0 + c, value(r * cols + c));
}

void CpuBackend::fill(const Tensor& x, double value) {
  check_cpu(x, "fill");
  if (value == 0.0) {
    std::memset(x.data, 0, x.bytes());
    return;
  }
  dispatch_float(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    cpu::fill<T>(x.as<T>(), static_cast<T>(value), x.numel());
  });
}

Tensor CpuBackend::staged_f32(const Tensor& like) {
  staged_.resize(static_cast<size_t>(like.numel()));
  Tensor t = like;
  t.data = staged_.data();
  t.dtype = DType::F32;
  return t;
}

namespace {
void check_attention_operands(const Tensor& q, const Tensor& k, const Tensor& v) {
  HG_CHECK(k.dtype == q.dtype && v.dtype == q.dtype, "attention: q, k, v of different types (",
           dtype_name(q.dtype), ", ", dtype_name(k.dtype), ", ", dtype_name(v.dtype), ")");
}
}  // namespace

Tensor CpuBackend::attention_operand(std::vector<float>& buffer, const Tensor& x) {
  check_cpu(x, "attention operand");
  if (x.dtype == DType::BF16) return widened(buffer, x);
  if (x.dtype != DType::F32 || matmul_precision_ != MatmulPrecision::BF16) return x;
  const int64_t n = x.numel();
  buffer.resize(static_cast<size_t>(n));
  const float* src = x.as<float>();
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) buffer[static_cast<size_t>(i)] = bf16_to_float(float_to_bf16(src[i]));
  Tensor t = x;
  t.data = buffer.data();
  return t;
}

Tensor CpuBackend::widened(std::vector<float>& buffer, const Tensor& bf16) {
  buffer.resize(static_cast<size_t>(bf16.numel()));
  cpu::from_bf16(buffer.data(), bf16.as<uint16_t>(), bf16.numel());
  Tensor t = bf16;
  t.data = buffer.data();
  t.dtype = DType::F32;
  return t;
}

void CpuBackend::matmul(const Tensor& c, const Tensor& a, bool trans_a, const Tensor& b,
                        bool trans_b, float alpha, float beta) {
  check_cpu(c, "matmul C");
  check_cpu(a, "matmul A");
  check_cpu(b, "matmul B");
  if (c.dtype == DType::BF16) {
    // The F32 product into scratch, then rounded (backend.h); BF16 operands
    // go in as they are (below).
    HG_CHECK(a.dtype != DType::F64 && b.dtype != DType::F64,
             "a BF16 matmul output needs F32 or BF16 operands");
    HG_CHECK(beta == 0.0f, "a BF16 matmul output cannot accumulate (beta must be 0)");
    const Tensor staged = staged_f32(c).view({c.rows(), c.cols()});
    matmul(staged, a, trans_a, b, trans_b, alpha, 0.0f);
    cpu::to_bf16(c.as<uint16_t>(), staged_.data(), c.numel());
    return;
  }
  // BF16 operands: BF16 products take their bits as they are (the rounding
  // is the identity); anything else reads them widened (exact) by F32 rules.
  const bool bf16_operand = a.dtype == DType::BF16 || b.dtype == DType::BF16;
  const bool bf16_run = c.dtype == DType::F32 && bf16_products(alpha, beta);
  if (bf16_operand && !bf16_run) {
    HG_CHECK(c.dtype != DType::F64, "BF16 matmul operands need an F32 or BF16 output");
    const Tensor a32 = a.dtype == DType::BF16 ? widened(wide_a_, a) : a;
    const Tensor b32 = b.dtype == DType::BF16 ? widened(wide_b_, b) : b;
    matmul(c, a32, trans_a, b32, trans_b, alpha, beta);
    return;
  }
  for (const Tensor* t : {&a, &b})
    HG_CHECK(t->dtype == c.dtype || (bf16_run && t->dtype == DType::BF16), "matmul dtype mismatch");
  const MatmulShape s = matmul_shape(c, a, trans_a, b, trans_b);
  const bool empty = s.m == 0 || s.n == 0 || s.k == 0;  // then c = beta c throughout
  dispatch_float(c.dtype, [&](auto tag) {
    using T = decltype(tag);
    // c beyond the product (padded widths, backend.h): beta * c.
    cpu::scale_margins<T>(c.as<T>(), s.rows, s.cols, empty ? 0 : s.m, empty ? 0 : s.n,
                          static_cast<T>(beta));
  });
  if (empty) return;
  if (bf16_run) {
    if (!bf16_) bf16_ = std::make_unique<cpu::Bf16Matmul>();
    bf16_->run(trans_a, trans_b, s.m, s.n, s.k, a.data, a.dtype == DType::BF16, a.cols(), b.data,
               b.dtype == DType::BF16, b.cols(), beta, c.as<float>(), c.cols());
    return;
  }
  dispatch_float(c.dtype, [&](auto tag) {
    using T = decltype(tag);
    cpu::gemm<T>(trans_a, trans_b, s.m, s.n, s.k, static_cast<T>(alpha), a.as<T>(), a.cols(),
                 b.as<T>(), b.cols(), static_cast<T>(beta), c.as<T>(), c.cols());
  });
}

void CpuBackend::add_inplace(const Tensor& y, const Tensor& x) {
  check_same(y, x, "add_inplace");
  dispatch_float(y.dtype, [&](auto tag) {
    using T = decltype(tag);
    cpu::add_inplace<T>(y.as<T>(), x.as<T>(), y.numel());
  });
}

void CpuBackend::scale_inplace(const Tensor& x, double s) {
  dispatch_float(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    cpu::scale_inplace<T>(x.as<T>(), static_cast<T>(s), x.numel());
  });
}

double CpuBackend::sum_squares(const Tensor& x) {
  double result = 0.0;
  dispatch_float(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    result = cpu::sum_squares<T>(x.as<T>(), x.numel());
  });
  return result;
}

void CpuBackend::embedding_forward(const Tensor& out, const Tensor& ids, const Tensor& table) {
  HG_CHECK(ids.dtype == DType::I32, "embedding ids must be I32");
  HG_CHECK(out.rows() == ids.numel() && out.cols() == table.cols(), "embedding shapes");
  dispatch_float(out.dtype, [&](auto tag) {
    using T = decltype(tag);
    cpu::embedding_forward<T>(out.as<T>(), ids.as<int32_t>(), table.as<T>(), ids.numel(),
                              table.cols(), table.rows());
  });
}

void CpuBackend::embedding_backward(const Tensor& dtable, const Tensor& ids, const Tensor& dout) {
  HG_CHECK(ids.dtype == DType::I32, "embedding ids must be I32");
  HG_CHECK(dout.rows() == ids.numel() && dout.cols() == dtable.cols(), "embedding shapes");
  dispatch_float(dtable.dtype, [&](auto tag) {
    using T = decltype(tag);
    cpu::embedding_backward<T>(dtable.as<T>(), ids.as<int32_t>(), dout.as<T>(), ids.numel(),
                               dtable.cols(), dtable.rows());
  });
}

void CpuBackend::rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& x,
                                 const Tensor& w, double eps) {
  check_cpu(out, "rmsnorm out");
  if (out.dtype == DType::BF16 && x.dtype == DType::F32) {
    HG_CHECK(out.numel() == x.numel(), "rmsnorm: size mismatch ", out.shape_string(), " vs ",
             x.shape_string());
    rmsnorm_forward(staged_f32(out), rstd, x, w, eps);
    cpu::to_bf16(out.as<uint16_t>(), staged_.data(), out.numel());
    return;
  }
  check_same(out, x, "rmsnorm");
  HG_CHECK(w.numel() == x.cols() && rstd.numel() == x.rows(), "rmsnorm shapes");
  dispatch_float(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    cpu::rmsnorm_forward<T>(out.as<T>(), rstd.as<T>(), x.as<T>(), w.as<T>(), x.rows(), x.cols(),
                            eps);
  });
}

void CpuBackend::rmsnorm_backward(const Tensor& dx, const Tensor& dw, const Tensor& dout,
                                  const Tensor& x, const Tensor& w, const Tensor& rstd,
                                  bool accumulate_dx) {
  check_cpu(dx, "rmsnorm dx");
  if (dx.dtype == DType::BF16 && x.dtype == DType::F32) {
    HG_CHECK(!accumulate_dx, "rmsnorm_backward cannot accumulate into a BF16 dx");
    HG_CHECK(dx.numel() == x.numel(), "rmsnorm_backward: size mismatch");
    rmsnorm_backward(staged_f32(dx), dw, dout, x, w, rstd, false);
    cpu::to_bf16(dx.as<uint16_t>(), staged_.data(), dx.numel());
    return;
  }
  if (dout.dtype == DType::BF16 && x.dtype == DType::F32) {
    check_cpu(dout, "rmsnorm dout");
    HG_CHECK(dout.numel() == x.numel(), "rmsnorm_backward: size mismatch");
    rmsnorm_backward(dx, dw, widened(wide_a_, dout), x, w, rstd, accumulate_dx);
    return;
  }
  check_same(dx, x, "rmsnorm_backward");
  check_same(dout, x, "rmsnorm_backward");
  HG_CHECK(w.numel() == x.cols() && dw.numel() == w.numel() && rstd.numel() == x.rows(),
           "rmsnorm_backward shapes");
  dispatch_float(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    cpu::rmsnorm_backward<T>(dx.as<T>(), dw.as<T>(), dout.as<T>(), x.as<T>(), w.as<T>(),
                             rstd.as<T>(), x.rows(), x.cols(), accumulate_dx);
  });
}

namespace {
void rope_dispatch(const Tensor& x, const Tensor& cos, const Tensor& sin, int64_t pos0,
                   bool inverse) {
  HG_CHECK(x.ndim == 4, "rope expects [B, T, heads, D], got ", x.shape_string());
  const int64_t d = x.dim(3);
  HG_CHECK(cos.cols() == d / 2 && sin.cols() == d / 2, "rope table width");
  HG_CHECK(pos0 + x.dim(1) <= cos.rows(), "rope: position ", pos0 + x.dim(1) - 1,
           " beyond the table (", cos.rows(), " positions)");
  dispatch_float(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    cpu::rope<T>(x.as<T>(), cos.as<T>(), sin.as<T>(), x.dim(0), x.dim(1), x.dim(2), d, pos0,
                 inverse);
  });
}
}  // namespace

void CpuBackend::rope_forward(const Tensor& x, const Tensor& cos, const Tensor& sin,
                              int64_t pos0) {
  rope_dispatch(x, cos, sin, pos0, false);
}

void CpuBackend::rope_backward(const Tensor& dx, const Tensor& cos, const Tensor& sin,
                               int64_t pos0) {
  rope_dispatch(dx, cos, sin, pos0, true);
}

void CpuBackend::attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q,
                                   const Tensor& k, const Tensor& v, double scale,
                                   int64_t q_pos0) {
  HG_CHECK(q.ndim == 4 && k.ndim == 4 && v.ndim == 4, "attention expects [B, T, heads, D]");
  const int64_t b = q.dim(0), tq = q.dim(1), h = q.dim(2), d = q.dim(3);
  const int64_t tk = k.dim(1), kv = k.dim(2);
  HG_CHECK(k.dim(0) == b && k.dim(3) == d && h % kv == 0, "attention shapes");
  HG_CHECK(q_pos0 + tq <= tk, "attention: queries reach past the keys");
  check_attention_operands(q, k, v);
  check_cpu(out, "attention out");
  if (out.dtype == DType::BF16 && q.dtype != DType::F64) {
    HG_CHECK(out.numel() == q.numel(), "attention out: size mismatch");
    attention_forward(staged_f32(out), lse, q, k, v, scale, q_pos0);
    cpu::to_bf16(out.as<uint16_t>(), staged_.data(), out.numel());
    return;
  }
  const Tensor qs = attention_operand(attn_q_, q), ks = attention_operand(attn_k_, k),
               vs = attention_operand(attn_v_, v);
  check_same(out, qs, "attention out");
  check_same(vs, ks, "attention v");
  HG_CHECK(lse.numel() == b * h * tq, "attention lse shape");
  dispatch_float(qs.dtype, [&](auto tag) {
    using T = decltype(tag);
    cpu::attention_forward<T>(out.as<T>(), lse.as<T>(), qs.as<T>(), ks.as<T>(), vs.as<T>(), b,
                              tq, tk, h, kv, d, scale, q_pos0);
  });
}

void CpuBackend::attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv,
                                    const Tensor& dout, const Tensor& q, const Tensor& k,
                                    const Tensor& v, const Tensor& out, const Tensor& lse,
                                    double scale) {
  const int64_t b = q.dim(0), t = q.dim(1), h = q.dim(2), d = q.dim(3), kv = k.dim(2);
  HG_CHECK(k.dim(1) == t, "attention backward needs Tq == Tk");
  check_attention_operands(q, k, v);
  check_cpu(out, "attention out");
  HG_CHECK(dq.dtype == dout.dtype && dk.dtype == dout.dtype && dv.dtype == dout.dtype,
           "attention_backward: dout, dq, dk, dv must be of one type");
  if (dout.dtype == DType::BF16) {
    // Gradients in BF16 storage: computed in F32 from dout widened, each
    // rounded once at the end.
    const int64_t nq = dq.numel(), nk = dk.numel();
    HG_CHECK(dout.numel() == nq && dv.numel() == nk, "attention backward: gradient sizes");
    attn_grads_.resize(static_cast<size_t>(2 * nq + 2 * nk));
    float* g = attn_grads_.data();
    const auto f32_at = [](Tensor like, float* at) {
      like.data = at;
      like.dtype = DType::F32;
      return like;
    };
    const Tensor dout32 = f32_at(dout, g), dq32 = f32_at(dq, g + nq), dk32 = f32_at(dk, g + 2 * nq),
                 dv32 = f32_at(dv, g + 2 * nq + nk);
    cpu::from_bf16(g, dout.as<uint16_t>(), nq);
    attention_backward(dq32, dk32, dv32, dout32, q, k, v, out, lse, scale);
    for (const auto& [to, from] :
         {std::pair{&dq, &dq32}, std::pair{&dk, &dk32}, std::pair{&dv, &dv32}})
      cpu::to_bf16(to->as<uint16_t>(), from->as<float>(), to->numel());
    return;
  }
  if (out.dtype == DType::BF16 && q.dtype != DType::F64) {
    HG_CHECK(out.numel() == q.numel(), "attention out: size mismatch");
    attention_backward(dq, dk, dv, dout, q, k, v, widened(wide_a_, out), lse, scale);
    return;
  }
  const Tensor qs = attention_operand(attn_q_, q), ks = attention_operand(attn_k_, k),
               vs = attention_operand(attn_v_, v);
  check_same(out, qs, "attention out");
  check_same(dq, qs, "attention dq");
  check_same(dk, ks, "attention dk");
  check_same(dv, vs, "attention dv");
  dispatch_float(qs.dtype, [&](auto tag) {
    using T = decltype(tag);
    cpu::attention_backward<T>(dq.as<T>(), dk.as<T>(), dv.as<T>(), dout.as<T>(), qs.as<T>(),
                               ks.as<T>(), vs.as<T>(), out.as<T>(), lse.as<T>(), b, t, h, kv, d,
                               scale);
  });
}

void CpuBackend::qk_norm_rope_backward(const Tensor& dx, const Tensor& dw, const Tensor& dout,
                                       const Tensor& x, const Tensor& w, const Tensor& rstd,
                                       const Tensor& cos, const Tensor& sin, int64_t pos0,
                                       int64_t dx_head0) {
  check_cpu(dout, "qk-norm + rope dout");
  check_cpu(dx, "qk-norm + rope dx");
  check_head_range(dx, dout, dx_head0);
  const Tensor g = dout.dtype == DType::BF16 ? widened(wide_b_, dout) : dout;
  if (x.dtype == DType::BF16) {
    check_cpu(x, "qk-norm + rope x");
    qk_norm_rope_backward(dx, dw, g, widened(wide_a_, x), w, rstd, cos, sin, pos0, dx_head0);
    return;
  }
  if (dx.dim(2) == dout.dim(2)) {
    Backend::qk_norm_rope_backward(dx, dw, g, x, w, rstd, cos, sin, pos0, 0);
    return;
  }
  // Heads of a wider row: the gradient in F32 first, then into its columns
  // (rounded there once where dx is BF16, as the contiguous path rounds it).
  head_rows_.resize(static_cast<size_t>(dout.numel()));
  const Tensor grad(head_rows_.data(), DType::F32, Device::CPU,
                    {dout.dim(0), dout.dim(1), dout.dim(2), dout.dim(3)});
  Backend::qk_norm_rope_backward(grad, dw, g, x, w, rstd, cos, sin, pos0, 0);
  const int64_t tokens = dx.dim(0) * dx.dim(1), d = dx.dim(3);
  copy_columns(dx.view({tokens, dx.dim(2) * d}), dx_head0 * d,
               grad.view({tokens, dout.dim(2) * d}));
}

void CpuBackend::qk_norm_rope_forward(const Tensor& out, const Tensor& rstd, const Tensor& x,
                                      const Tensor& w, double eps, const Tensor& cos,
                                      const Tensor& sin, int64_t pos0) {
  check_cpu(out, "qk-norm + rope out");
  if (x.dtype == DType::BF16) {
    check_cpu(x, "qk-norm + rope x");
    qk_norm_rope_forward(out, rstd, widened(wide_a_, x), w, eps, cos, sin, pos0);
    return;
  }
  if (out.dtype != DType::BF16) {
    Backend::qk_norm_rope_forward(out, rstd, x, w, eps, cos, sin, pos0);
    return;
  }
  // Rounded once, after the rotation (as the CUDA kernel stores it).
  HG_CHECK(x.dtype == DType::F32 && out.numel() == x.numel(),
           "qk-norm + rope: a BF16 output needs an F32 input of its size");
  const Tensor staged = staged_f32(out);
  Backend::qk_norm_rope_forward(staged, rstd, x, w, eps, cos, sin, pos0);
  cpu::to_bf16(out.as<uint16_t>(), staged_.data(), out.numel());
}

void CpuBackend::swiglu_forward(const Tensor& out, const Tensor& gate, const Tensor& up) {
  check_same(up, gate, "swiglu");
  check_cpu(out, "swiglu out");
  if (out.dtype == DType::BF16) {
    HG_CHECK(gate.dtype != DType::F64 && out.numel() == gate.numel(),
             "swiglu: a BF16 output needs F32 or BF16 gate/up of its size");
    swiglu_forward(staged_f32(out), gate, up);
    cpu::to_bf16(out.as<uint16_t>(), staged_.data(), out.numel());
    return;
  }
  if (gate.dtype == DType::BF16) {
    HG_CHECK(out.dtype == DType::F32 && out.numel() == gate.numel(), "swiglu: BF16 gate/up need an F32 output of their size");
    cpu::swiglu_forward<float>(out.as<float>(), gate.as<uint16_t>(), up.as<uint16_t>(), 1,
                               out.numel(), out.numel());
    return;
  }
  check_same(out, gate, "swiglu");
  dispatch_float(out.dtype, [&](auto tag) {
    using T = decltype(tag);
    cpu::swiglu_forward<T>(out.as<T>(), gate.as<T>(), up.as<T>(), 1, out.numel(), out.numel());
  });
}

void CpuBackend::swiglu_backward(const Tensor& dgate, const Tensor& dup, const Tensor& dout,
                                 const Tensor& gate, const Tensor& up) {
  check_cpu(dgate, "swiglu_backward dgate");
  check_cpu(dup, "swiglu_backward dup");
  if (dgate.dtype == DType::BF16) {
    // Both gradients into F32 scratch (one block, two halves), then rounded.
    check_same(dup, dgate, "swiglu_backward");
    HG_CHECK(dgate.numel() == gate.numel() && gate.dtype != DType::F64,
             "swiglu_backward: BF16 gradients need F32 or BF16 gate/up of their size");
    const int64_t n = dgate.numel();
    staged_.resize(static_cast<size_t>(2 * n));
    const Tensor dg(staged_.data(), DType::F32, Device::CPU, {n});
    const Tensor du(staged_.data() + n, DType::F32, Device::CPU, {n});
    swiglu_backward(dg, du, dout, gate, up);
    cpu::to_bf16(dgate.as<uint16_t>(), staged_.data(), n);
    cpu::to_bf16(dup.as<uint16_t>(), staged_.data() + n, n);
    return;
  }
  if (gate.dtype == DType::BF16) {
    check_same(up, gate, "swiglu_backward");
    for (const Tensor* t : {&dgate, &dup})
      HG_CHECK(t->dtype == DType::F32 && t->numel() == gate.numel(),
               "swiglu_backward: BF16 gate/up need F32 or BF16 gradients of their size");
    HG_CHECK((dout.dtype == DType::F32 || dout.dtype == DType::BF16) &&
                 dout.numel() == gate.numel(),
             "swiglu_backward: BF16 gate/up need an F32 or BF16 dout of their size");
    if (dout.dtype == DType::BF16)
      cpu::swiglu_backward<float>(dgate.as<float>(), dup.as<float>(), dout.as<uint16_t>(),
                                  gate.as<uint16_t>(), up.as<uint16_t>(), 1, gate.numel(),
                                  gate.numel());
    else
      cpu::swiglu_backward<float>(dgate.as<float>(), dup.as<float>(), dout.as<float>(),
                                  gate.as<uint16_t>(), up.as<uint16_t>(), 1, gate.numel(),
                                  gate.numel());
    return;
  }
  HG_CHECK(dout.dtype != DType::BF16, "swiglu_backward: a BF16 dout needs BF16 gate/up");
  check_same(dgate, gate, "swiglu_backward");
  check_same(dup, up, "swiglu_backward");
  dispatch_float(gate.dtype, [&](auto tag) {
    using T = decltype(tag);
    cpu::swiglu_backward<T>(dgate.as<T>(), dup.as<T>(), dout.as<T>(), gate.as<T>(), up.as<T>(),
                            1, gate.numel(), gate.numel());
  });
}

// Gate and up side by side (backend.h): the kernels above over rows whose
// gate and up lie 2W apart, in F32 (staged where an output is BF16).
void CpuBackend::swiglu_forward_joined(const Tensor& out, const Tensor& gate_up) {
  check_cpu(out, "swiglu_forward_joined out");
  check_cpu(gate_up, "swiglu_forward_joined gate_up");
  check_swiglu_joined(out, gate_up, "swiglu_forward_joined");
  const int64_t rows = out.rows(), w = out.cols();
  float* o = (out.dtype == DType::BF16 ? staged_f32(out) : out).as<float>();
  if (gate_up.dtype == DType::BF16) {
    const uint16_t* g = gate_up.as<uint16_t>();
    cpu::swiglu_forward<float>(o, g, g + w, rows, w, 2 * w);
  } else {
    const float* g = gate_up.as<float>();
    cpu::swiglu_forward<float>(o, g, g + w, rows, w, 2 * w);
  }
  if (out.dtype == DType::BF16) cpu::to_bf16(out.as<uint16_t>(), o, out.numel());
}

void CpuBackend::swiglu_backward_joined(const Tensor& dgate_up, const Tensor& dout,
                                        const Tensor& gate_up) {
  for (const Tensor* t : {&dgate_up, &dout, &gate_up})
    check_cpu(*t, "swiglu_backward_joined operand");
  check_swiglu_joined(dout, gate_up, "swiglu_backward_joined");
  check_swiglu_joined(dout, dgate_up, "swiglu_backward_joined");
  HG_CHECK(dout.dtype == DType::F32 || gate_up.dtype == DType::BF16,
           "swiglu_backward_joined: a BF16 dout needs a BF16 gate|up");
  const int64_t rows = dout.rows(), w = dout.cols();
  float* dg = (dgate_up.dtype == DType::BF16 ? staged_f32(dgate_up) : dgate_up).as<float>();
  const auto run = [&](const auto* d, const auto* g) {
    cpu::swiglu_backward<float>(dg, dg + w, d, g, g + w, rows, w, 2 * w);
  };
  if (gate_up.dtype == DType::F32) run(dout.as<float>(), gate_up.as<float>());
  else if (dout.dtype == DType::BF16) run(dout.as<uint16_t>(), gate_up.as<uint16_t>());
  else run(dout.as<float>(), gate_up.as<uint16_t>());
  if (dgate_up.dtype == DType::BF16) cpu::to_bf16(dgate_up.as<uint16_t>(), dg, dgate_up.numel());
}

void CpuBackend::softcap_forward(const Tensor& logits, double cap) {
  dispatch_float(logits.dtype, [&](auto tag) {
    using T = decltype(tag);
    cpu::softcap<T>(logits.as<T>(), logits.rows(), logits.cols(), cap);
  });
}

namespace {
// The targets of a cross-entropy over logits [R, V]: I32, one per row, each
// -100 (ignored) or in [0, V).
const int32_t* checked_targets(const Tensor& targets, const Tensor& logits, const Tensor& losses) {
  HG_CHECK(targets.dtype == DType::I32, "targets must be I32");
  HG_CHECK(targets.numel() == logits.rows() && losses.numel() == logits.rows(),
           "cross-entropy shapes");
  const int32_t* t = targets.as<int32_t>();
  for (int64_t r = 0; r < targets.numel(); ++r)
    if (t[r] != -100 && (t[r] < 0 || t[r] >= logits.cols()))
      HG_FAIL("target id ", t[r], " at position ", r, " is outside the vocabulary [0, ",
              logits.cols(), ")");
  return t;
}
}  // namespace

void CpuBackend::softcap_cross_entropy(const Tensor& logits, const Tensor& losses,
                                       const Tensor& targets, double cap, double dlogits_scale) {
  const int32_t* t = checked_targets(targets, logits, losses);
  dispatch_float(logits.dtype, [&](auto tag) {
    using T = decltype(tag);
    cpu::softcap_cross_entropy<T>(logits.as<T>(), losses.as<T>(), t, logits.rows(),
                                  logits.cols(), cap, dlogits_scale);
  });
}

void CpuBackend::softcap_cross_entropy_into(const Tensor& dlogits, const Tensor& logits,
                                            const Tensor& losses, const Tensor& targets,
                                            double cap, double dlogits_scale) {
  if (logits.dtype != DType::BF16) {
    Backend::softcap_cross_entropy_into(dlogits, logits, losses, targets, cap, dlogits_scale);
    return;
  }
  check_cross_entropy_into(dlogits, logits);
  HG_CHECK(losses.dtype == DType::F32, "cross-entropy over BF16 logits needs F32 losses, got ",
           dtype_name(losses.dtype));
  const int32_t* t = checked_targets(targets, logits, losses);
  cpu::softcap_cross_entropy_bf16(logits.as<uint16_t>(), dlogits.as<uint16_t>(),
                                  losses.as<float>(), t, logits.rows(), logits.cols(), cap,
                                  dlogits_scale);
}

void CpuBackend::adamw_step(const Tensor& param, const Tensor& grad, const Tensor& m,
                            const Tensor& v, const AdamWParams& hp) {
  check_same(param, grad, "adamw grad");
  check_same(param, m, "adamw m");
  check_same(param, v, "adamw v");
  dispatch_float(param.dtype, [&](auto tag) {
    using T = decltype(tag);
    cpu::adamw<T>(param.as<T>(), grad.as<T>(), m.as<T>(), v.as<T>(), param.numel(), hp.lr,
                  hp.beta1, hp.beta2, hp.eps, hp.weight_decay, hp.step, hp.grad_scale);
  });
}

}  // namespace hessgpt
