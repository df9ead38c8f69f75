// Checks shapes, dtypes and devices at the interface (the same conditions as
// the CPU backend), then enqueues the kernel on the backend's stream.
#include "backend/cuda/cuda_backend.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "backend/cuda/chained_launch.h"
#include "backend/cuda/cuda_backend_state.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch_config.h"
#include "backend/cuda/matmul_lt.h"
#include "core/env_switch.h"
#include "core/log.h"

namespace hessgpt {
using namespace cuda_backend_detail;

int cuda_device_count() {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    cudaGetLastError();  // no driver or no device: not an error for the caller
    return 0;
  }
  return n;
}

std::vector<GpuInfo> cuda_gpus() {
  std::vector<GpuInfo> gpus;
  for (int d = 0; d < cuda_device_count(); ++d) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, d) != cudaSuccess) {
      (void)cudaGetLastError();
      continue;
    }
    gpus.push_back({prop.name, 10 * prop.major + prop.minor, cuda::loaded_code_ptx_version_on(d),
                    static_cast<int64_t>(prop.totalGlobalMem)});
  }
  return gpus;
}


CudaBackend::CudaBackend() : s_(std::make_unique<State>()) {
  if (cuda_device_count() == 0)
    HG_FAIL("no CUDA device available (cudaGetDeviceCount found none: no GPU or no driver)");
  HG_CUDA_CHECK(cudaSetDevice(s_->device));
  HG_CUDA_CHECK(cudaStreamCreateWithFlags(&s_->stream, cudaStreamNonBlocking));
  HG_CUDA_CHECK(cudaMallocHost(&s_->pinned, 64));
  s_->lt = std::make_unique<cuda::LtMatmul>();
}

CudaBackend::~CudaBackend() {
  // Errors are ignored: a destructor must not throw.
  if (s_->stream) cudaStreamSynchronize(s_->stream);
  s_->lt.reset();
  s_->cudnn_attention.reset();
  if (s_->pinned) cudaFreeHost(s_->pinned);
  for (cudaEvent_t e : s_->marks) cudaEventDestroy(e);
  if (s_->stream) cudaStreamDestroy(s_->stream);
}

bool CudaBackend::supports(DType dtype) const {
  return dtype == DType::F32 || dtype == DType::I32 || dtype == DType::U16 ||
         dtype == DType::BF16;
}

bool CudaBackend::supports_matmul_precision(MatmulPrecision) const { return true; }


// ---- memory -------------------------------------------------------------------

size_t CudaBackend::free_memory_bytes() const {
  size_t free = 0, total = 0;
  return cudaMemGetInfo(&free, &total) == cudaSuccess ? free : 0;
}

void* CudaBackend::allocate(size_t bytes) {
  void* p = nullptr;
  // A zero-byte request still gets a distinct, valid pointer.
  const cudaError_t err = cudaMalloc(&p, bytes == 0 ? 256 : bytes);
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    size_t free_bytes = 0, total_bytes = 0;
    cudaMemGetInfo(&free_bytes, &total_bytes);
    HG_FAIL("out of GPU memory allocating ", bytes, " bytes (", free_bytes, " of ", total_bytes,
            " bytes free)");
  }
  HG_CUDA_CHECK(err);
  return p;
}

void CudaBackend::release(void* ptr) {
  // Called from destructors (Buffer): report, never throw.
  const cudaError_t err = cudaFree(ptr);
  if (err != cudaSuccess) log_warn("cudaFree failed: ", cudaGetErrorString(err));
}

void CudaBackend::copy_from_host(const Tensor& dst, const void* src) {
  HG_CHECK(dst.device == Device::CUDA, "copy destination is not a CUDA tensor");
  HG_CUDA_CHECK(cudaMemcpyAsync(dst.data, src, dst.bytes(), cudaMemcpyHostToDevice, s_->stream));
  HG_CUDA_CHECK(cudaStreamSynchronize(s_->stream));
}

void CudaBackend::copy_to_host(void* dst, const Tensor& src) {
  HG_CHECK(src.device == Device::CUDA, "copy source is not a CUDA tensor");
  HG_CUDA_CHECK(cudaMemcpyAsync(dst, src.data, src.bytes(), cudaMemcpyDeviceToHost, s_->stream));
  HG_CUDA_CHECK(cudaStreamSynchronize(s_->stream));
}

void CudaBackend::copy(const Tensor& dst, const Tensor& src) {
  check_same(dst, src, "copy");
  if (dst.device == Device::CUDA && src.device == Device::CUDA) {
    HG_CUDA_CHECK(cudaMemcpyAsync(dst.data, src.data, dst.bytes(), cudaMemcpyDeviceToDevice,
                                  s_->stream));
    return;
  }
  HG_CUDA_CHECK(cudaMemcpyAsync(dst.data, src.data, dst.bytes(), cudaMemcpyDefault, s_->stream));
  HG_CUDA_CHECK(cudaStreamSynchronize(s_->stream));
}

void CudaBackend::fill(const Tensor& x, double value) {
  HG_CHECK(x.device == Device::CUDA && x.data != nullptr, "fill: not a CUDA tensor");
  if (value == 0.0) {
    HG_CUDA_CHECK(cudaMemsetAsync(x.data, 0, x.bytes(), s_->stream));
    return;
  }
  check_f32(x, "fill");
  cuda::fill(f32(x), static_cast<float>(value), x.numel(), s_->stream);
}

void CudaBackend::synchronize() { HG_CUDA_CHECK(cudaStreamSynchronize(s_->stream)); }

// Events are kept for reuse: a profiled step records thousands.
int64_t CudaBackend::timing_mark() {
  if (s_->marks_used == s_->marks.size()) {
    cudaEvent_t e = nullptr;
    HG_CUDA_CHECK(cudaEventCreate(&e));
    s_->marks.push_back(e);
  }
  HG_CUDA_CHECK(cudaEventRecord(s_->marks[s_->marks_used], s_->stream));
  return static_cast<int64_t>(s_->marks_used++);
}

double CudaBackend::ms_between(int64_t from, int64_t to) {
  const auto used = static_cast<int64_t>(s_->marks_used);
  HG_CHECK(from >= 0 && to >= from && to < used, "ms_between: marks ", from, " and ", to,
           " out of the ", used, " recorded");
  HG_CUDA_CHECK(cudaEventSynchronize(s_->marks[static_cast<size_t>(to)]));
  float ms = 0.0f;
  HG_CUDA_CHECK(cudaEventElapsedTime(&ms, s_->marks[static_cast<size_t>(from)],
                                     s_->marks[static_cast<size_t>(to)]));
  return ms;
}

void CudaBackend::clear_timing_marks() { s_->marks_used = 0; }

// ---- dense algebra --------------------------------------------------------------

namespace {
// Products of a few rows (decoding's one token) go to the GEMV kernel
// (gemv.cu): F32 a and c, F32 or BF16 (storage) b, a [m, k] times b [n, k]
// transposed, b's rows possibly padded, no other padded widths.
// HESSGPT_GEMV=0 sends them to cuBLASLt too (A/B timings); read at every call.
bool runs_as_gemv(const Tensor& c, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b,
                  const MatmulShape& s) {
  if (trans_a || !trans_b || s.m > cuda::kGemvMaxRows) return false;
  // b's rows may be padded (a BF16 session's down projection: 3413 -> 3416).
  if (s.m != s.rows || s.n != s.cols || a.cols() != s.k || b.rows() != s.n ||
      (b.cols() != s.k && b.cols() != padded_width(s.k)))
    return false;
  if (c.dtype != DType::F32 || a.dtype != DType::F32) return false;
  if (b.dtype != DType::F32 && b.dtype != DType::BF16) return false;
  return env_switch_on("HESSGPT_GEMV");
}
}  // namespace

void CudaBackend::matmul(const Tensor& c, const Tensor& a, bool trans_a, const Tensor& b,
                         bool trans_b, float alpha, float beta) {
  // A BF16 c is storage (backend.h): the F32 product, rounded once.
  const bool out_bf16 = c.dtype == DType::BF16;
  if (out_bf16) {
    HG_CHECK(c.device == Device::CUDA && c.data, "matmul C is not a CUDA tensor");
    HG_CHECK(beta == 0.0f, "a BF16 matmul output cannot accumulate (beta must be 0)");
  } else {
    check_f32(c, "matmul C");
  }
  check_f32_or_bf16(a, "matmul A");
  check_f32_or_bf16(b, "matmul B");
  const MatmulShape s = matmul_shape(c, a, trans_a, b, trans_b);
  if (s.rows == 0 || s.cols == 0) return;
  if (s.m == 0 || s.n == 0 || s.k == 0) {  // an empty sum: C = beta C
    if (out_bf16) HG_CUDA_CHECK(cudaMemsetAsync(c.data, 0, c.bytes(), s_->stream));
    else if (beta == 0.0f) fill(c, 0.0);
    else if (beta != 1.0f) scale_inplace(c, beta);
    return;
  }
  // The CPU backend's rule: BF16 operands for plain products and accumulations.
  const bool bf16 = matmul_precision_ == MatmulPrecision::BF16 && alpha == 1.0f &&
                    (beta == 0.0f || beta == 1.0f);
  if (runs_as_gemv(c, a, trans_a, b, trans_b, s)) {
    cuda::gemv_rows(f32(c), f32(a), b.data, b.dtype == DType::BF16, s.m, s.n, s.k, b.cols(),
                    alpha, beta, bf16, s_->stream);
    return;
  }
  // Padded widths (backend.h): under BF16 products B's copy is padded with
  // zeros to c's width anyway, so the product itself gives c's extra columns
  // their beta * c; the rest of c beyond the product is scaled here.
  const int64_t n = bf16 ? s.cols : s.n;
  if (s.m < s.rows || n < s.cols) {
    if (out_bf16) cuda::scale_margins(bits(c), s.rows, s.cols, s.m, n, 0.0f, s_->stream);
    else cuda::scale_margins(f32(c), s.rows, s.cols, s.m, n, beta, s_->stream);
  }
  s_->lt->run(bf16, trans_a, trans_b, s.m, n, s.k, lt_operand(a), lt_operand(b), alpha, beta,
              out_bf16 ? nullptr : f32(c), c.cols(), s_->stream, out_bf16 ? bits(c) : nullptr);
}

// Decoding's one row through the GEMV with the op before it as its prologue
// (gemv_prologue.cu), where gemv_rows would take the product (runs_as_gemv)
// and the operand fits shared memory; else the two ops (and with
// HESSGPT_GEMV_PROLOGUE=0, for A/B timings).
bool CudaBackend::prologue_gemv_fits(const Tensor& c, const Tensor& x, const Tensor& w) const {
  if (x.rows() != 1 || x.dtype != DType::F32 || !cuda::gemv_prologue_fits(x.cols())) return false;
  if (!env_switch_on("HESSGPT_GEMV_PROLOGUE")) return false;
  const MatmulShape s = matmul_shape(c, x, false, w, true);
  return runs_as_gemv(c, x, false, w, true, s);
}

void CudaBackend::rmsnorm_matmul(const Tensor& c, const Tensor& x, const Tensor& norm_w,
                                 double eps, const Tensor& w, const Tensor& ln,
                                 const Tensor& rstd) {
  if (!prologue_gemv_fits(c, x, w) || norm_w.dtype != DType::F32 ||
      norm_w.numel() != x.cols()) {
    Backend::rmsnorm_matmul(c, x, norm_w, eps, w, ln, rstd);
    return;
  }
  cuda::gemv_norm(f32(c), f32(x), f32(norm_w), eps, w.data, w.dtype == DType::BF16, w.rows(),
                  x.cols(), w.cols(), matmul_precision_ == MatmulPrecision::BF16, s_->stream);
}

void CudaBackend::swiglu_matmul_add(const Tensor& c, const Tensor& gate, const Tensor& up,
                                    const Tensor& w, const Tensor& act) {
  if (!prologue_gemv_fits(c, gate, w) || up.dtype != DType::F32 || up.numel() != gate.numel()) {
    Backend::swiglu_matmul_add(c, gate, up, w, act);
    return;
  }
  cuda::gemv_swiglu(f32(c), f32(gate), f32(up), w.data, w.dtype == DType::BF16, w.rows(),
                    gate.cols(), w.cols(), 1.0f, matmul_precision_ == MatmulPrecision::BF16,
                    s_->stream);
}

// The residual read by cuBLASLt as C while D is c (C != D): no copy of d into c.
// Shapes that need margins or a staged output take the default.
void CudaBackend::matmul_add(const Tensor& c, const Tensor& a, bool trans_a, const Tensor& b,
                             bool trans_b, const Tensor& d) {
  check_f32(c, "matmul_add C");
  check_f32(d, "matmul_add addend");
  check_f32_or_bf16(a, "matmul A");
  check_f32_or_bf16(b, "matmul B");
  const MatmulShape s = matmul_shape(c, a, trans_a, b, trans_b);
  HG_CHECK(d.numel() == c.numel(), "matmul_add: addend ", d.shape_string(), " for an output ",
           c.shape_string());
  const bool bf16 = matmul_precision_ == MatmulPrecision::BF16;
  if (d.data == c.data || s.m != s.rows || s.n != s.cols || s.k == 0 ||
      s_->lt->will_stage(bf16, s.n)) {
    Backend::matmul_add(c, a, trans_a, b, trans_b, d);
    return;
  }
  s_->lt->run(bf16, trans_a, trans_b, s.m, s.n, s.k, lt_operand(a), lt_operand(b), 1.0f, 1.0f,
              f32(c),
              c.cols(), s_->stream, nullptr, f32(d));
}

void CudaBackend::convert(const Tensor& dst, const Tensor& src) {
  HG_CHECK(dst.device == Device::CUDA && src.device == Device::CUDA, "convert: not CUDA tensors");
  check_size(dst, src, "convert");
  if (dst.dtype == src.dtype) {
    copy(dst, src);
  } else if (dst.dtype == DType::BF16 && src.dtype == DType::F32) {
    cuda::to_bf16(bits(dst), src.numel(), 1, static_cast<const float*>(f32(src)), src.numel(), 1,
                  src.numel(), s_->stream);
  } else if (dst.dtype == DType::F32 && src.dtype == DType::BF16) {
    cuda::widen_bf16(f32(dst), bits(src), src.numel(), s_->stream);
  } else {
    HG_FAIL("convert: ", dtype_name(src.dtype), " to ", dtype_name(dst.dtype), " is not supported");
  }
}

void CudaBackend::copy_columns(const Tensor& dst, int64_t col0, const Tensor& src) {
  for (const Tensor* t : {&dst, &src})
    HG_CHECK(t->device == Device::CUDA, "copy_columns: not CUDA tensors");
  check_copy_columns(dst, col0, src);
  const auto run = [&](auto* out) {
    if (src.dtype == DType::BF16)
      cuda::copy_columns(out, static_cast<const uint16_t*>(bits(src)), dst.rows(), dst.cols(),
                         col0, src.cols(), s_->stream);
    else
      cuda::copy_columns(out, static_cast<const float*>(f32(src)), dst.rows(), dst.cols(), col0,
                         src.cols(), s_->stream);
  };
  if (dst.dtype == DType::BF16) run(bits(dst));
  else run(f32(dst));
}

void CudaBackend::add_inplace(const Tensor& y, const Tensor& x) {
  check_f32(y, "add_inplace y");
  check_f32(x, "add_inplace x");
  check_same(y, x, "add_inplace");
  cuda::add_inplace(f32(y), f32(x), y.numel(), s_->stream);
}

void CudaBackend::scale_inplace(const Tensor& x, double s) {
  check_f32(x, "scale_inplace");
  cuda::scale_inplace(f32(x), static_cast<float>(s), x.numel(), s_->stream);
}

double CudaBackend::sum_squares(const Tensor& x) {
  check_f32(x, "sum_squares");
  const int64_t parts = cuda::reduction_blocks(x.numel());
  auto* buf = static_cast<double*>(
      s_->get(kReducePartials, sizeof(double) * static_cast<size_t>(parts + 1)));
  cuda::sum_squares(buf + parts, buf, f32(x), x.numel(), s_->stream);
  auto* host = static_cast<double*>(s_->pinned);
  HG_CUDA_CHECK(
      cudaMemcpyAsync(host, buf + parts, sizeof(double), cudaMemcpyDeviceToHost, s_->stream));
  HG_CUDA_CHECK(cudaStreamSynchronize(s_->stream));
  return *host;
}

// ---- embedding ------------------------------------------------------------------

namespace {
void check_embedding_forward(const Tensor& out, const Tensor& ids, const Tensor& table) {
  check_i32(ids, "embedding ids");
  check_f32(out, "embedding out");
  check_f32(table, "embedding table");
  HG_CHECK(out.rows() == ids.numel() && out.cols() == table.cols(), "embedding shapes");
}
}  // namespace

void CudaBackend::embedding_forward(const Tensor& out, const Tensor& ids, const Tensor& table) {
  check_embedding_forward(out, ids, table);
  uint32_t* flag = s_->reset_flag();
  cuda::embedding_forward(f32(out), ids.as<int32_t>(), f32(table), ids.numel(), table.cols(),
                          table.rows(), flag, s_->stream);
  s_->check_ids_flag(ids, "token", table.rows());
}

void CudaBackend::embedding_forward_prechecked(const Tensor& out, const Tensor& ids,
                                               const Tensor& table) {
  check_embedding_forward(out, ids, table);
  cuda::embedding_forward(f32(out), ids.as<int32_t>(), f32(table), ids.numel(), table.cols(),
                          table.rows(), nullptr, s_->stream);
}

void CudaBackend::embedding_backward(const Tensor& dtable, const Tensor& ids, const Tensor& dout) {
  check_i32(ids, "embedding ids");
  check_f32(dtable, "embedding dtable");
  check_f32(dout, "embedding dout");
  HG_CHECK(dout.rows() == ids.numel() && dout.cols() == dtable.cols(), "embedding shapes");
  const int64_t n = ids.numel(), v = dtable.rows();
  if (n == 0) return;
  HG_CHECK(n < std::numeric_limits<int32_t>::max() && v < std::numeric_limits<int32_t>::max(),
           "embedding backward: ", n, " positions over ", v,
           " ids is past the sort's 32-bit counts");
  uint32_t* flag = s_->reset_flag();
  void* scratch = s_->get(kEmbeddingRuns, cuda::embedding_backward_scratch(n, v));
  cuda::embedding_backward(f32(dtable), ids.as<int32_t>(), n, v, f32(dout), dtable.cols(), scratch,
                           flag, s_->stream);
  s_->check_ids_flag(ids, "token", v);
}

// ---- RMSNorm (QK-Norm + RoPE below: the same kernels with the rotation fused in) ---

void CudaBackend::norm_forward(const Tensor& out, const Tensor& rstd, const Tensor& x,
                               const Tensor& w, double eps, const cuda::RopeRows& rope) {
  check_f32_or_bf16(out, "rmsnorm out");
  check_f32(rstd, "rmsnorm rstd");
  check_f32_or_bf16(x, "rmsnorm x");
  check_f32(w, "rmsnorm w");
  check_size(out, x, "rmsnorm");
  HG_CHECK(w.numel() == x.cols() && rstd.numel() == x.rows(), "rmsnorm shapes");
  const auto run = [&](auto* o, const auto* xs) {
    cuda::rmsnorm_forward(o, f32(rstd), xs, f32(w), x.rows(), x.cols(), eps, s_->stream, rope);
  };
  const auto with_x = [&](auto* o) {
    if (x.dtype == DType::BF16) run(o, static_cast<const uint16_t*>(bits(x)));
    else run(o, static_cast<const float*>(f32(x)));
  };
  if (out.dtype == DType::BF16) with_x(bits(out));
  else with_x(f32(out));
}

void CudaBackend::norm_backward(const Tensor& dx, const Tensor* dx16, const Tensor& dw,
                                const Tensor& dout, const Tensor& x, const Tensor& w,
                                const Tensor& rstd, bool accumulate_dx,
                                const cuda::RopeRows& rope) {
  check_f32_or_bf16(dx, "rmsnorm dx");
  HG_CHECK(dx.dtype == DType::F32 || !accumulate_dx,
           "rmsnorm_backward cannot accumulate into a BF16 dx");
  check_f32(dw, "rmsnorm dw");
  check_f32_or_bf16(dout, "rmsnorm dout");
  check_f32_or_bf16(x, "rmsnorm x");
  check_f32(w, "rmsnorm w");
  check_f32(rstd, "rmsnorm rstd");
  if (rope.dx_heads == 0) check_size(dx, x, "rmsnorm_backward");  // else check_head_range
  check_size(dout, x, "rmsnorm_backward dout");
  HG_CHECK(w.numel() == x.cols() && dw.numel() == w.numel() && rstd.numel() == x.rows(),
           "rmsnorm_backward shapes");
  const int64_t parts = cuda::rmsnorm_dw_partitions(x.rows());
  auto* partials = static_cast<float*>(
      s_->get(kDwPartials, sizeof(float) * static_cast<size_t>(parts * x.cols())));
  if (dx16) {
    HG_CHECK(dx16->dtype == DType::BF16 && dx.dtype == DType::F32, "rmsnorm_backward_copy: dx16 ",
             dtype_name(dx16->dtype), " for dx ", dtype_name(dx.dtype), " (BF16 of an F32 dx)");
    check_size(*dx16, x, "rmsnorm_backward_copy dx16");
  }
  uint16_t* copy = dx16 ? bits(*dx16) : nullptr;
  const auto run = [&](auto* out, const auto* g, const auto* xs) {
    cuda::rmsnorm_backward(out, copy, f32(dw), partials, g, xs, f32(w), f32(rstd), x.rows(),
                           x.cols(), accumulate_dx, s_->stream, rope);
  };
  const auto with_x = [&](auto* out, const auto* g) {
    if (x.dtype == DType::BF16) run(out, g, static_cast<const uint16_t*>(bits(x)));
    else run(out, g, static_cast<const float*>(f32(x)));
  };
  const auto with_dout = [&](auto* out) {
    if (dout.dtype == DType::BF16) with_x(out, static_cast<const uint16_t*>(bits(dout)));
    else with_x(out, static_cast<const float*>(f32(dout)));
  };
  if (dx.dtype == DType::BF16) with_dout(bits(dx));
  else with_dout(f32(dx));
}

void CudaBackend::rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& x,
                                  const Tensor& w, double eps) {
  norm_forward(out, rstd, x, w, eps, {});
}

void CudaBackend::rmsnorm_backward(const Tensor& dx, const Tensor& dw, const Tensor& dout,
                                   const Tensor& x, const Tensor& w, const Tensor& rstd,
                                   bool accumulate_dx) {
  norm_backward(dx, nullptr, dw, dout, x, w, rstd, accumulate_dx, {});
}

void CudaBackend::rmsnorm_backward_copy(const Tensor& dx, const Tensor& dx16, const Tensor& dw,
                                        const Tensor& dout, const Tensor& x, const Tensor& w,
                                        const Tensor& rstd, bool accumulate_dx) {
  norm_backward(dx, &dx16, dw, dout, x, w, rstd, accumulate_dx, {});
}

// ---- RoPE -----------------------------------------------------------------------

namespace {
// x F32 (RoPE in place), or F32 or BF16 (QK-Norm + RoPE's input: x_bf16).
void check_rope(const Tensor& x, const Tensor& cos, const Tensor& sin, int64_t pos0,
                bool x_bf16 = false) {
  if (x_bf16) check_f32_or_bf16(x, "qk-norm x");
  else check_f32(x, "rope x");
  check_f32(cos, "rope cos");
  check_f32(sin, "rope sin");
  HG_CHECK(x.ndim == 4, "rope expects [B, T, heads, D], got ", x.shape_string());
  const int64_t d = x.dim(3);
  HG_CHECK(d % 2 == 0, "rope: odd head dim ", d);
  HG_CHECK(cos.cols() == d / 2 && sin.cols() == d / 2, "rope table width");
  HG_CHECK(pos0 >= 0, "rope: negative start position ", pos0);
  HG_CHECK(pos0 + x.dim(1) <= cos.rows(), "rope: position ", pos0 + x.dim(1) - 1,
           " beyond the table (", cos.rows(), " positions)");
}
}  // namespace

void CudaBackend::rope_forward(const Tensor& x, const Tensor& cos, const Tensor& sin,
                               int64_t pos0) {
  check_rope(x, cos, sin, pos0);
  cuda::rope(f32(x), f32(cos), f32(sin), x.dim(0), x.dim(1), x.dim(2), x.dim(3), pos0, false,
             s_->stream);
}

void CudaBackend::rope_backward(const Tensor& dx, const Tensor& cos, const Tensor& sin,
                                int64_t pos0) {
  check_rope(dx, cos, sin, pos0);
  cuda::rope(f32(dx), f32(cos), f32(sin), dx.dim(0), dx.dim(1), dx.dim(2), dx.dim(3), pos0, true,
             s_->stream);
}

// ---- QK-Norm + RoPE ---------------------------------------------------------------

namespace {
cuda::RopeRows rope_rows(const Tensor& x, const Tensor& cos, const Tensor& sin, int64_t pos0) {
  check_rope(x, cos, sin, pos0, true);
  cuda::RopeRows r;
  r.cos = f32(cos);
  r.sin = f32(sin);
  r.t = x.dim(1);
  r.heads = x.dim(2);
  r.pos0 = pos0;
  return r;
}
}  // namespace

void CudaBackend::qk_norm_rope_forward(const Tensor& out, const Tensor& rstd, const Tensor& x,
                                       const Tensor& w, double eps, const Tensor& cos,
                                       const Tensor& sin, int64_t pos0) {
  check_size(out, x, "qk-norm + rope");  // out F32, or BF16 (rounded after the rotation)
  norm_forward(out, rstd, x, w, eps, rope_rows(x, cos, sin, pos0));
}

void CudaBackend::qk_norm_rope_backward(const Tensor& dx, const Tensor& dw, const Tensor& dout,
                                        const Tensor& x, const Tensor& w, const Tensor& rstd,
                                        const Tensor& cos, const Tensor& sin, int64_t pos0,
                                        int64_t dx_head0) {
  check_head_range(dx, dout, dx_head0);
  cuda::RopeRows rope = rope_rows(x, cos, sin, pos0);
  if (dx.dim(2) != dout.dim(2)) {
    rope.dx_heads = dx.dim(2);
    rope.dx_head0 = dx_head0;
  }
  norm_backward(dx, nullptr, dw, dout, x, w, rstd, false, rope);
}

// ---- SwiGLU ---------------------------------------------------------------------

namespace {
// up as a tensor of its own at column w of gate|up's first row (what the
// kernels' joined layout reads it from).
Tensor up_half(const Tensor& gate_up, int64_t w) {
  Tensor up = gate_up;
  up.data = static_cast<char*>(gate_up.data) + static_cast<size_t>(w) * dtype_size(gate_up.dtype);
  return up;
}
}  // namespace

void CudaBackend::swiglu_forward(const Tensor& out, const Tensor& gate, const Tensor& up) {
  check_f32_or_bf16(out, "swiglu out");
  check_f32_or_bf16(gate, "swiglu gate");
  check_same(up, gate, "swiglu");
  check_size(out, gate, "swiglu");
  HG_CHECK(up.device == Device::CUDA, "swiglu up is not a CUDA tensor");
  run_swiglu_forward(out, gate, up, 0);
}

void CudaBackend::swiglu_forward_joined(const Tensor& out, const Tensor& gate_up) {
  check_f32_or_bf16(out, "swiglu_forward_joined out");
  check_f32_or_bf16(gate_up, "swiglu_forward_joined gate_up");
  check_swiglu_joined(out, gate_up, "swiglu_forward_joined");
  run_swiglu_forward(out, gate_up, up_half(gate_up, out.cols()), out.cols());
}

void CudaBackend::run_swiglu_forward(const Tensor& out, const Tensor& gate, const Tensor& up,
                                     int64_t joined_w) {
  const auto run = [&](auto* o) {
    if (gate.dtype == DType::BF16)
      cuda::swiglu_forward(o, static_cast<const uint16_t*>(bits(gate)),
                           static_cast<const uint16_t*>(bits(up)), out.numel(), joined_w,
                           s_->stream);
    else
      cuda::swiglu_forward(o, static_cast<const float*>(f32(gate)),
                           static_cast<const float*>(f32(up)), out.numel(), joined_w, s_->stream);
  };
  if (out.dtype == DType::BF16) run(bits(out));
  else run(f32(out));
}

void CudaBackend::swiglu_backward(const Tensor& dgate, const Tensor& dup, const Tensor& dout,
                                  const Tensor& gate, const Tensor& up) {
  check_f32_or_bf16(dout, "swiglu_backward dout");
  HG_CHECK(dout.dtype == DType::F32 || gate.dtype == DType::BF16,
           "swiglu_backward: a BF16 dout needs BF16 gate/up");
  check_f32_or_bf16(dgate, "swiglu_backward dgate");
  check_same(dup, dgate, "swiglu_backward dup");
  HG_CHECK(dup.device == Device::CUDA, "swiglu_backward dup is not a CUDA tensor");
  check_f32_or_bf16(gate, "swiglu_backward gate");
  check_same(up, gate, "swiglu_backward");
  HG_CHECK(up.device == Device::CUDA, "swiglu_backward up is not a CUDA tensor");
  for (const Tensor* t : {&dgate, &dup, &dout}) check_size(*t, gate, "swiglu_backward");
  run_swiglu_backward(dgate, dup, dout, gate, up, 0);
}

void CudaBackend::swiglu_backward_joined(const Tensor& dgate_up, const Tensor& dout,
                                         const Tensor& gate_up) {
  check_f32_or_bf16(dout, "swiglu_backward_joined dout");
  check_f32_or_bf16(dgate_up, "swiglu_backward_joined dgate_up");
  check_f32_or_bf16(gate_up, "swiglu_backward_joined gate_up");
  check_swiglu_joined(dout, gate_up, "swiglu_backward_joined");
  check_swiglu_joined(dout, dgate_up, "swiglu_backward_joined");
  HG_CHECK(dout.dtype == DType::F32 || gate_up.dtype == DType::BF16,
           "swiglu_backward_joined: a BF16 dout needs a BF16 gate|up");
  const int64_t w = dout.cols();
  run_swiglu_backward(dgate_up, up_half(dgate_up, w), dout, gate_up, up_half(gate_up, w), w);
}

void CudaBackend::run_swiglu_backward(const Tensor& dgate, const Tensor& dup, const Tensor& dout,
                                      const Tensor& gate, const Tensor& up, int64_t joined_w) {
  const int64_t n = dout.numel();
  const auto run = [&](auto* dg, auto* du) {
    const auto* g16 = static_cast<const uint16_t*>(bits(gate));
    const auto* u16 = static_cast<const uint16_t*>(bits(up));
    if (dout.dtype == DType::BF16)
      cuda::swiglu_backward(dg, du, static_cast<const uint16_t*>(bits(dout)), g16, u16, n,
                            joined_w, s_->stream);
    else if (gate.dtype == DType::BF16)
      cuda::swiglu_backward(dg, du, static_cast<const float*>(f32(dout)), g16, u16, n, joined_w,
                            s_->stream);
    else
      cuda::swiglu_backward(dg, du, f32(dout), static_cast<const float*>(f32(gate)),
                            static_cast<const float*>(f32(up)), n, joined_w, s_->stream);
  };
  if (dgate.dtype == DType::BF16) run(bits(dgate), bits(dup));
  else run(f32(dgate), f32(dup));
}

// ---- soft-cap and cross-entropy -----------------------------------------------------

void CudaBackend::softcap_forward(const Tensor& logits, double cap) {
  check_f32(logits, "softcap logits");
  cuda::softcap(f32(logits), logits.rows(), logits.cols(), static_cast<float>(cap), s_->stream);
}

void CudaBackend::softcap_cross_entropy(const Tensor& logits, const Tensor& losses,
                                        const Tensor& targets, double cap, double dlogits_scale) {
  cross_entropy(logits, losses, targets, cap, dlogits_scale, nullptr);
}

void CudaBackend::softcap_cross_entropy_into(const Tensor& dlogits, const Tensor& logits,
                                             const Tensor& losses, const Tensor& targets,
                                             double cap, double dlogits_scale) {
  check_cross_entropy_into(dlogits, logits);
  HG_CHECK(dlogits.device == Device::CUDA, "cross-entropy: dlogits must be a CUDA tensor");
  cross_entropy(logits, losses, targets, cap, dlogits_scale, &dlogits);
}

void CudaBackend::cross_entropy(const Tensor& logits, const Tensor& losses, const Tensor& targets,
                                double cap, double dlogits_scale, const Tensor* dlogits16) {
  // BF16 logits (storage) only with a BF16 gradient tensor: they cannot take an F32 one in place.
  if (dlogits16) check_f32_or_bf16(logits, "cross-entropy logits");
  else check_f32(logits, "cross-entropy logits");
  check_f32(losses, "cross-entropy losses");
  check_i32(targets, "targets");
  HG_CHECK(targets.numel() == logits.rows() && losses.numel() == logits.rows(),
           "cross-entropy shapes");
  uint32_t* flag = s_->reset_flag();
  const int64_t scratch_floats = cuda::softcap_cross_entropy_scratch(logits.rows(), logits.cols());
  auto* scratch = scratch_floats > 0 ? static_cast<float*>(s_->get(
                                           kCePartials, sizeof(float) * static_cast<size_t>(scratch_floats)))
                                     : nullptr;
  const auto run = [&](const auto* z, auto* grad) {
    cuda::softcap_cross_entropy(z, f32(losses), targets.as<int32_t>(), logits.rows(),
                                logits.cols(), static_cast<float>(cap),
                                static_cast<float>(dlogits_scale), flag, s_->stream, grad, scratch);
  };
  if (!dlogits16) run(f32(logits), f32(logits));
  else if (logits.dtype == DType::BF16) run(bits(logits), bits(*dlogits16));
  else run(f32(logits), bits(*dlogits16));
  s_->check_ids_flag(targets, "target", logits.cols());
}

// ---- optimizer ------------------------------------------------------------------

namespace {
// The CPU kernel's constants, rounded to float the same way.
cuda::AdamWConstants adamw_constants(const AdamWParams& hp) {
  const double bc1 = 1.0 - std::pow(hp.beta1, static_cast<double>(hp.step));
  const double bc2 = 1.0 - std::pow(hp.beta2, static_cast<double>(hp.step));
  cuda::AdamWConstants c{};
  c.step_size = static_cast<float>(hp.lr / bc1);
  c.inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  c.decay = static_cast<float>(1.0 - hp.lr * hp.weight_decay);
  c.beta1 = static_cast<float>(hp.beta1);
  c.beta2 = static_cast<float>(hp.beta2);
  c.grad_scale = static_cast<float>(hp.grad_scale);
  c.eps = static_cast<float>(hp.eps);
  return c;
}
}  // namespace

void CudaBackend::adamw_step(const Tensor& param, const Tensor& grad, const Tensor& m,
                             const Tensor& v, const AdamWParams& hp) {
  for (const Tensor* t : {&param, &grad, &m, &v}) check_f32(*t, "adamw operand");
  check_same(param, grad, "adamw grad");
  check_same(param, m, "adamw m");
  check_same(param, v, "adamw v");
  cuda::adamw(f32(param), f32(grad), f32(m), f32(v), param.numel(), adamw_constants(hp),
              s_->stream);
}

// One launch for all groups (a model1 step had ~130 adamw_step calls, most of
// them a norm's 1280 values), 16-byte accesses where the buffers allow. Norms
// get decay 1 - lr * 0 = 1, as adamw_step gives them. HESSGPT_ADAMW_CHUNKED=0
// makes a call per group again (A/B timings; read at every call).
void CudaBackend::adamw_step_groups(const Tensor& params, const Tensor& grads, const Tensor& m,
                                    const Tensor& v, const std::vector<AdamWGroup>& groups,
                                    const AdamWParams& hp) {
  for (const Tensor* t : {&params, &grads, &m, &v}) check_f32(*t, "adamw operand");
  check_adamw_groups(params, grads, m, v, groups);
  if (!env_switch_on("HESSGPT_ADAMW_CHUNKED")) {
    Backend::adamw_step_groups(params, grads, m, v, groups, hp);
    return;
  }
  if (groups != s_->adamw_groups) {
    std::vector<cuda::AdamWChunk> spans;
    spans.reserve(groups.size());
    for (const AdamWGroup& g : groups) spans.push_back({g.offset, g.offset + g.count, g.decays});
    const std::vector<cuda::AdamWChunk> chunks = cuda::adamw_chunks(spans);
    const size_t bytes = chunks.size() * sizeof(cuda::AdamWChunk);
    void* table = s_->get(kAdamWChunks, std::max<size_t>(1, bytes));
    if (bytes > 0)
      HG_CUDA_CHECK(cudaMemcpyAsync(table, chunks.data(), bytes, cudaMemcpyHostToDevice,
                                    s_->stream));
    HG_CUDA_CHECK(cudaStreamSynchronize(s_->stream));  // `chunks` is freed on return
    s_->adamw_groups = groups;
    s_->adamw_chunk_count = static_cast<int64_t>(chunks.size());
  }
  bool vec = true;
  for (const Tensor* t : {&params, &grads, &m, &v})
    vec = vec && reinterpret_cast<uintptr_t>(t->data) % 16 == 0;
  cuda::adamw_chunked(f32(params), f32(grads), f32(m), f32(v),
                      static_cast<const cuda::AdamWChunk*>(s_->scratch[kAdamWChunks].data()),
                      s_->adamw_chunk_count, adamw_constants(hp), vec, s_->stream);
}

}  // namespace hessgpt
