#include "backend/backend.h"

#include <algorithm>
#include <utility>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#ifdef HESSGPT_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace hessgpt {

Buffer::Buffer(Backend* backend, size_t bytes)
    : backend_(backend), data_(backend->allocate(bytes)), bytes_(bytes) {}

Buffer::~Buffer() {
  if (data_) backend_->release(data_);
}

Buffer::Buffer(Buffer&& other) noexcept
    : backend_(other.backend_), data_(std::exchange(other.data_, nullptr)),
      bytes_(std::exchange(other.bytes_, 0)) {}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    if (data_) backend_->release(data_);
    backend_ = other.backend_;
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

Tensor Buffer::tensor(DType dtype, std::initializer_list<int64_t> dims, size_t offset) const {
  Tensor t(static_cast<char*>(data_) + offset, dtype, backend_->device(), dims);
  HG_CHECK(offset + t.bytes() <= bytes_, "tensor ", t.shape_string(), " at offset ", offset,
           " overruns a buffer of ", bytes_, " bytes");
  return t;
}

MatmulShape matmul_shape(const Tensor& c, const Tensor& a, bool trans_a, const Tensor& b,
                         bool trans_b) {
  const int64_t ma = trans_a ? a.cols() : a.rows(), ka = trans_a ? a.rows() : a.cols();
  const int64_t kb = trans_b ? b.cols() : b.rows(), nb = trans_b ? b.rows() : b.cols();
  const auto fits = [](int64_t x, int64_t y) {
    return x == y || (x < y ? padded_width(x) == y : padded_width(y) == x);
  };
  HG_CHECK(fits(ka, kb), "matmul inner dimensions differ: ", a.shape_string(),
           trans_a ? "^T" : "", " x ", b.shape_string(), trans_b ? "^T" : "");
  HG_CHECK(fits(c.rows(), ma) && fits(c.cols(), nb), "matmul output ", c.shape_string(),
           " expected [", ma, ", ", nb, "]");
  MatmulShape s;
  s.rows = c.rows();
  s.cols = c.cols();
  s.m = std::min(s.rows, ma);
  s.n = std::min(s.cols, nb);
  s.k = std::min(ka, kb);
  return s;
}

void Backend::softcap_cross_entropy_into(const Tensor& dlogits, const Tensor& logits,
                                         const Tensor& losses, const Tensor& targets, double cap,
                                         double dlogits_scale) {
  check_cross_entropy_into(dlogits, logits);
  HG_CHECK(logits.dtype != DType::BF16,
           "cross-entropy over BF16 logits: this backend does not score them");
  softcap_cross_entropy(logits, losses, targets, cap, dlogits_scale);
  convert(dlogits, logits);
}

void Backend::rmsnorm_backward_copy(const Tensor& dx, const Tensor& dx16, const Tensor& dw,
                                    const Tensor& dout, const Tensor& x, const Tensor& w,
                                    const Tensor& rstd, bool accumulate_dx) {
  HG_CHECK(dx.dtype == DType::F32 && dx16.dtype == DType::BF16 && dx16.numel() == dx.numel(),
           "rmsnorm_backward_copy: dx16 must be BF16 of an F32 dx's size, got ",
           dtype_name(dx16.dtype), " ", dx16.shape_string(), " for ", dtype_name(dx.dtype), " ",
           dx.shape_string());
  rmsnorm_backward(dx, dw, dout, x, w, rstd, accumulate_dx);
  convert(dx16, dx);
}

void Backend::rmsnorm_matmul(const Tensor& c, const Tensor& x, const Tensor& norm_w, double eps,
                             const Tensor& w, const Tensor& ln, const Tensor& rstd) {
  rmsnorm_forward(ln, rstd, x, norm_w, eps);
  matmul(c, ln, false, w, true, 1.0f, 0.0f);
}

void Backend::swiglu_matmul_add(const Tensor& c, const Tensor& gate, const Tensor& up,
                                const Tensor& w, const Tensor& act) {
  swiglu_forward(act, gate, up);
  matmul(c, act, false, w, true, 1.0f, 1.0f);
}

void Backend::matmul_add(const Tensor& c, const Tensor& a, bool trans_a, const Tensor& b,
                         bool trans_b, const Tensor& d) {
  HG_CHECK(d.dtype == c.dtype && d.numel() == c.numel(), "matmul_add: addend ", d.shape_string(),
           " for an output ", c.shape_string());
  if (d.data != c.data) copy(c, d);
  matmul(c, a, trans_a, b, trans_b, 1.0f, 1.0f);
}

namespace {
// The [rows, D] reading of a [B, T, heads, D] tensor.
Tensor head_rows(const Tensor& t) {
  HG_CHECK(t.ndim == 4, "QK-Norm + RoPE expects [B, T, heads, D], got ", t.shape_string());
  return t.view({t.dim(0) * t.dim(1) * t.dim(2), t.dim(3)});
}
}  // namespace

void Backend::qk_norm_rope_forward(const Tensor& out, const Tensor& rstd, const Tensor& x,
                                   const Tensor& w, double eps, const Tensor& cos,
                                   const Tensor& sin, int64_t pos0) {
  HG_CHECK(out.ndim == 4 && out.numel() == x.numel(), "QK-Norm + RoPE: out ", out.shape_string(),
           " for x ", x.shape_string());
  rmsnorm_forward(head_rows(out), rstd, head_rows(x), w, eps);
  rope_forward(out, cos, sin, pos0);
}

void Backend::qk_norm_rope_backward(const Tensor& dx, const Tensor& dw, const Tensor& dout,
                                    const Tensor& x, const Tensor& w, const Tensor& rstd,
                                    const Tensor& cos, const Tensor& sin, int64_t pos0,
                                    int64_t dx_head0) {
  check_head_range(dx, dout, dx_head0);
  HG_CHECK(dx_head0 == 0 && dx.numel() == dout.numel(),
           "qk_norm_rope_backward: this backend writes whole rows only, not heads [", dx_head0,
           ", ", dx_head0 + dout.dim(2), ") of ", dx.shape_string());
  rope_backward(dout, cos, sin, pos0);
  rmsnorm_backward(head_rows(dx), dw, head_rows(dout), head_rows(x), w, rstd, false);
}

void check_adamw_groups(const Tensor& params, const Tensor& grads, const Tensor& m,
                        const Tensor& v, const std::vector<AdamWGroup>& groups) {
  for (const Tensor* t : {&grads, &m, &v})
    HG_CHECK(t->dtype == params.dtype && t->numel() == params.numel(), "adamw: operand ",
             dtype_name(t->dtype), " ", t->shape_string(), " for parameters ",
             dtype_name(params.dtype), " ", params.shape_string());
  for (const AdamWGroup& g : groups)
    HG_CHECK(g.offset >= 0 && g.count >= 0 && g.offset + g.count <= params.numel(),
             "adamw: group [", g.offset, ", ", g.offset + g.count, ") outside the ",
             params.numel(), " parameters");
}

void Backend::adamw_step_groups(const Tensor& params, const Tensor& grads, const Tensor& m,
                                const Tensor& v, const std::vector<AdamWGroup>& groups,
                                const AdamWParams& hp) {
  check_adamw_groups(params, grads, m, v, groups);
  const size_t esize = dtype_size(params.dtype);
  for (const AdamWGroup& g : groups) {
    if (g.count == 0) continue;
    const auto part = [&](const Tensor& t) {
      return Tensor(static_cast<char*>(t.data) + static_cast<size_t>(g.offset) * esize, t.dtype,
                    t.device, {g.count});
    };
    AdamWParams group_hp = hp;
    group_hp.weight_decay = g.decays ? hp.weight_decay : 0.0;
    adamw_step(part(params), part(grads), part(m), part(v), group_hp);
  }
}

int64_t Backend::timing_mark() {
  synchronize();
  host_marks_.push_back(std::chrono::steady_clock::now());
  return static_cast<int64_t>(host_marks_.size()) - 1;
}

double Backend::ms_between(int64_t from, int64_t to) {
  const auto count = static_cast<int64_t>(host_marks_.size());
  HG_CHECK(from >= 0 && to >= from && to < count, "ms_between: marks ", from, " and ", to,
           " out of the ", count, " recorded");
  const auto elapsed =
      host_marks_[static_cast<size_t>(to)] - host_marks_[static_cast<size_t>(from)];
  return std::chrono::duration<double, std::milli>(elapsed).count();
}

void Backend::set_matmul_precision(MatmulPrecision p) {
  if (!supports_matmul_precision(p))
    HG_FAIL("the ", name(), " backend of this build cannot multiply matrices in ",
            p == MatmulPrecision::BF16 ? "BF16" : "FP32",
            p == MatmulPrecision::BF16 ? " (build with oneDNN: Debian libdnnl-dev)" : "");
  matmul_precision_ = p;
}

void Backend::concat_columns(const Tensor& dst, const Tensor& a, const Tensor& b) {
  // Shapes checked before either copy writes; types are copy_columns' checks.
  for (const Tensor* t : {&dst, &a, &b})
    HG_CHECK(t->ndim >= 1 && t->data != nullptr, "concat_columns: an empty operand");
  HG_CHECK(a.rows() == dst.rows() && b.rows() == dst.rows() && a.cols() + b.cols() == dst.cols(),
           "concat_columns: ", dst.shape_string(), " is not ", a.shape_string(), " beside ",
           b.shape_string());
  copy_columns(dst, 0, a);
  copy_columns(dst, a.cols(), b);
}

void check_cross_entropy_into(const Tensor& dlogits, const Tensor& logits) {
  HG_CHECK(dlogits.dtype == DType::BF16 && dlogits.numel() == logits.numel(),
           "cross-entropy: dlogits must be BF16 of the logits' size ", logits.shape_string(),
           ", got ", dtype_name(dlogits.dtype), " ", dlogits.shape_string());
  HG_CHECK(logits.dtype == DType::F32 || logits.dtype == DType::BF16,
           "cross-entropy into BF16: F32 or BF16 logits, not ", dtype_name(logits.dtype));
}

void check_copy_columns(const Tensor& dst, int64_t col0, const Tensor& src) {
  for (const Tensor* t : {&dst, &src}) {
    HG_CHECK(t->ndim >= 1 && t->data != nullptr, "copy_columns: an empty operand");
    if (t->dtype != DType::F32 && t->dtype != DType::BF16)
      HG_FAIL("copy_columns: F32 or BF16 operands, not ", dtype_name(t->dtype));
  }
  HG_CHECK(src.rows() == dst.rows() && col0 >= 0 && col0 + src.cols() <= dst.cols(),
           "copy_columns: ", src.shape_string(), " does not fit ", dst.shape_string(),
           " from column ", col0);
}

void check_swiglu_joined(const Tensor& half, const Tensor& gate_up, const char* op) {
  for (const Tensor* t : {&half, &gate_up}) {
    HG_CHECK(t->ndim >= 1 && t->data != nullptr, op, ": an empty operand");
    if (t->dtype != DType::F32 && t->dtype != DType::BF16)
      HG_FAIL(op, ": F32 or BF16 operands, not ", dtype_name(t->dtype));
  }
  HG_CHECK(gate_up.rows() == half.rows() && gate_up.cols() == 2 * half.cols(), op, ": gate|up ",
           gate_up.shape_string(), " is not two of ", half.shape_string(), " side by side");
}

void check_head_range(const Tensor& dx, const Tensor& dout, int64_t dx_head0) {
  HG_CHECK(dx.ndim == 4 && dout.ndim == 4 && dx.dim(0) == dout.dim(0) &&
               dx.dim(1) == dout.dim(1) && dx.dim(3) == dout.dim(3) && dx_head0 >= 0 &&
               dx_head0 + dout.dim(2) <= dx.dim(2),
           "qk_norm_rope_backward: dout ", dout.shape_string(), " from head ", dx_head0,
           " does not fit dx ", dx.shape_string());
}

std::vector<float> download_floats(Backend& backend, const Tensor& t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  if (t.dtype == DType::F32) {
    backend.copy_to_host(out.data(), t);
  } else if (t.dtype == DType::F64) {
    std::vector<double> d(out.size());
    backend.copy_to_host(d.data(), t);
    std::copy(d.begin(), d.end(), out.begin());
  } else {
    HG_FAIL("download_floats: unsupported dtype ", dtype_name(t.dtype));
  }
  return out;
}

void upload_floats(Backend& backend, const Tensor& t, const std::vector<float>& values) {
  HG_CHECK(static_cast<int64_t>(values.size()) == t.numel(), "upload_floats: ", values.size(),
           " values for a tensor of ", t.numel());
  if (t.dtype == DType::F32) {
    backend.copy_from_host(t, values.data());
  } else if (t.dtype == DType::F64) {
    const std::vector<double> d(values.begin(), values.end());
    backend.copy_from_host(t, d.data());
  } else {
    HG_FAIL("upload_floats: unsupported dtype ", dtype_name(t.dtype));
  }
}

#ifdef HESSGPT_HAVE_CUDA
std::vector<std::string> compiled_backends() { return {"cpu", "cuda"}; }

std::vector<std::string> available_backends() {
  if (cuda_device_count() > 0) return {"cpu", "cuda"};
  return {"cpu"};
}

std::vector<GpuInfo> available_gpus() { return cuda_gpus(); }

std::unique_ptr<Backend> make_backend(const std::string& name, int threads) {
  if (name == "cpu") return std::make_unique<CpuBackend>(threads);
  if (name == "cuda") return std::make_unique<CudaBackend>();
  if (name.empty()) {
    if (cuda_device_count() > 0) return std::make_unique<CudaBackend>();
    return std::make_unique<CpuBackend>(threads);
  }
  HG_FAIL("unknown device '", name, "' (expected cpu or cuda)");
}
#else
std::vector<std::string> compiled_backends() { return {"cpu"}; }

std::vector<std::string> available_backends() { return {"cpu"}; }

std::vector<GpuInfo> available_gpus() { return {}; }

std::unique_ptr<Backend> make_backend(const std::string& name, int threads) {
  if (name.empty() || name == "cpu") return std::make_unique<CpuBackend>(threads);
  if (name == "cuda")
    HG_FAIL("the CUDA backend is not compiled into this binary (build with -DHESSGPT_CUDA=ON)");
  HG_FAIL("unknown device '", name, "' (expected cpu or cuda)");
}
#endif

}  // namespace hessgpt
