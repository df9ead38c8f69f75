// The CUDA backend's attention: our kernels (FP32, or the tensor cores under
// BF16 products) and cuDNN's fused attention where it is asked for and takes
// the shape (attention_cudnn.h).
#include <cstdlib>
#include <string>
#include <string_view>

#include "backend/cuda/cuda_backend_state.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch_config.h"

namespace hessgpt {
using namespace cuda_backend_detail;

// ---- attention ------------------------------------------------------------------

namespace {
void check_head_dim(int64_t d) {
  if (cuda::attention_width(d) == 0)
    HG_FAIL("attention: head dim ", d, " is not supported by the CUDA backend (1 to ",
            cuda::kAttnMaxHeadDim, ")");
}

// q, k and v: all F32 or all BF16 (storage).
void check_attention_operands(const Tensor& q, const Tensor& k, const Tensor& v) {
  check_f32_or_bf16(q, "attention q");
  HG_CHECK(k.dtype == q.dtype && v.dtype == q.dtype, "attention: q, k, v of different types (",
           dtype_name(q.dtype), ", ", dtype_name(k.dtype), ", ", dtype_name(v.dtype), ")");
  HG_CHECK(k.device == Device::CUDA && v.device == Device::CUDA,
           "attention k and v must be CUDA tensors");
}
}  // namespace

// q, k, v as F32 device pointers for the FP32 kernels: BF16 storage widened
// into scratch (one block, three parts).
std::array<const float*, 3> CudaBackend::attention_f32(const Tensor& q, const Tensor& k,
                                                       const Tensor& v) {
  if (q.dtype == DType::F32) return {f32(q), f32(k), f32(v)};
  const int64_t nq = q.numel(), nk = k.numel();
  auto* wide = static_cast<float*>(
      s_->get(kAttnWide, sizeof(float) * static_cast<size_t>(nq + 2 * nk)));
  cuda::widen_bf16(wide, bits(q), nq, s_->stream);
  cuda::widen_bf16(wide + nq, bits(k), nk, s_->stream);
  cuda::widen_bf16(wide + nq + nk, bits(v), nk, s_->stream);
  return {wide, wide + nq, wide + nq + nk};
}

// Attention's two products follow the matrix-product precision: BF16 puts them
// on the tensor cores. HESSGPT_ATTENTION (read at every call, so that a test
// can compare engines in one process): unset or "cudnn" runs cuDNN's fused
// attention where it takes the shape (attention_cudnn.h), our tensor-core
// kernels elsewhere; on an H200 it made model1's step 6-7 % faster. "ours"
// keeps to our kernels; "fp32" keeps the FP32 kernels under BF16 (A/B
// timings, and a way out should the tensor-core path misbehave).
namespace {
enum class AttnEngine { Ours, Fp32, Cudnn };
AttnEngine attention_engine_choice() {
  const char* e = std::getenv("HESSGPT_ATTENTION");
  if (!e || !*e) return AttnEngine::Cudnn;
  const std::string_view v(e);
  if (v == "ours") return AttnEngine::Ours;
  if (v == "fp32") return AttnEngine::Fp32;
  if (v == "cudnn") return AttnEngine::Cudnn;
  HG_FAIL("HESSGPT_ATTENTION must be ours, fp32 or cudnn (got '", v, "')");
}
}  // namespace

bool CudaBackend::attention_on_tensor_cores() const {
  return matmul_precision_ == MatmulPrecision::BF16 &&
         attention_engine_choice() != AttnEngine::Fp32;
}

std::string CudaBackend::cudnn_attention_status() { return s_->cudnn().status(); }
std::string CudaBackend::cudnn_device_properties_json() {
  return s_->cudnn().device_properties_json();
}
int64_t CudaBackend::cudnn_attention_calls() const {
  return s_->cudnn_attention ? s_->cudnn_attention->calls() : 0;
}

// cuDNN's fused attention, unless another engine is asked for, takes the
// training shape under BF16 products in BF16 storage: all of q, k, v, out in
// BF16, queries = keys from position 0 (no decoding offset). The limits it
// has besides (head dims, versions) are its plans' (cudnn_sdpa_unsupported).
bool CudaBackend::cudnn_attention_fits(const Tensor& q, const Tensor& k, const Tensor& out,
                                       int64_t q_pos0) const {
  return matmul_precision_ == MatmulPrecision::BF16 &&
         attention_engine_choice() == AttnEngine::Cudnn && q.dtype == DType::BF16 &&
         out.dtype == DType::BF16 && q_pos0 == 0 && q.dim(1) == k.dim(1);
}

void CudaBackend::attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q,
                                    const Tensor& k, const Tensor& v, double scale,
                                    int64_t q_pos0) {
  check_f32_or_bf16(out, "attention out");
  check_f32(lse, "attention lse");
  check_attention_operands(q, k, v);
  HG_CHECK(q.ndim == 4 && k.ndim == 4 && v.ndim == 4, "attention expects [B, T, heads, D]");
  const int64_t b = q.dim(0), tq = q.dim(1), h = q.dim(2), d = q.dim(3);
  const int64_t tk = k.dim(1), kv = k.dim(2);
  HG_CHECK(k.dim(0) == b && k.dim(3) == d && kv > 0 && h % kv == 0, "attention shapes");
  check_same(k, v, "attention v");
  HG_CHECK(q_pos0 >= 0 && q_pos0 + tq <= tk, "attention: queries reach past the keys");
  check_size(out, q, "attention out");
  HG_CHECK(lse.numel() == b * h * tq, "attention lse shape");
  check_head_dim(d);
  const bool out_bf16 = out.dtype == DType::BF16;
  if (cudnn_attention_fits(q, k, out, q_pos0) &&
      s_->cudnn().forward(bits(out), f32(lse), bits(q), bits(k), bits(v),
                          {b, tq, h, kv, d, static_cast<float>(scale)}))
    return;
  if (attention_on_tensor_cores()) {
    void* pack = s_->get(kAttnPack, cuda::attention_mma_scratch_bytes(b, tq, tk, h, kv, d, false));
    const auto run = [&](const auto* tq_, const auto* tk_, const auto* tv_) {
      const auto mma = [&](auto* o) {
        cuda::attention_mma_forward(o, f32(lse), tq_, tk_, tv_, b, tq, tk, h, kv, d,
                                    static_cast<float>(scale), q_pos0, pack, s_->stream);
      };
      if (out_bf16) mma(bits(out));
      else mma(f32(out));
    };
    if (q.dtype == DType::BF16) run(bits(q), bits(k), bits(v));
    else run(f32(q), f32(k), f32(v));
    return;
  }
  // The FP32 kernels write F32: a BF16 output is staged and rounded.
  float* o = out_bf16 ? static_cast<float*>(s_->get(kAttnOut, out.numel() * sizeof(float)))
                      : f32(out);
  const auto [qf, kf, vf] = attention_f32(q, k, v);
  cuda::attention_forward(o, f32(lse), qf, kf, vf, b, tq, tk, h, kv, d,
                          static_cast<float>(scale), q_pos0, s_->stream);
  const int64_t rows = out.numel() / d;
  if (out_bf16)
    cuda::to_bf16(bits(out), d, rows, static_cast<const float*>(o), d, rows, d, s_->stream);
}

void CudaBackend::attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv,
                                     const Tensor& dout, const Tensor& q, const Tensor& k,
                                     const Tensor& v, const Tensor& out, const Tensor& lse,
                                     double scale) {
  check_f32(lse, "attention_backward lse");
  check_f32_or_bf16(dout, "attention_backward dout");
  HG_CHECK(dq.dtype == dout.dtype && dk.dtype == dout.dtype && dv.dtype == dout.dtype,
           "attention_backward: dout, dq, dk, dv must all be F32 or all BF16");
  check_attention_operands(q, k, v);
  check_f32_or_bf16(out, "attention_backward out");
  HG_CHECK(q.ndim == 4 && k.ndim == 4 && v.ndim == 4, "attention expects [B, T, heads, D]");
  const int64_t b = q.dim(0), t = q.dim(1), h = q.dim(2), d = q.dim(3), kv = k.dim(2);
  HG_CHECK(k.dim(1) == t, "attention backward needs Tq == Tk");
  HG_CHECK(k.dim(0) == b && k.dim(3) == d && kv > 0 && h % kv == 0, "attention shapes");
  check_size(dq, q, "attention dq");
  check_size(dk, k, "attention dk");
  check_size(dv, v, "attention dv");
  check_size(dout, q, "attention dout");
  check_size(out, q, "attention out");
  HG_CHECK(lse.numel() == b * h * t, "attention lse shape");
  check_head_dim(d);
  if (cudnn_attention_fits(q, k, out, 0) && cudnn_attention_backward(dq, dk, dv, dout, q, k, v, out,
                                                                      lse, scale))
    return;
  if (dout.dtype == DType::BF16) {
    // Our kernels take F32 gradients: dout widened, dq, dk, dv rounded after.
    const int64_t nq = q.numel(), nk = k.numel();
    auto* wide = static_cast<float*>(
        s_->get(kAttnGrads, sizeof(float) * static_cast<size_t>(2 * nq + 2 * nk)));
    const auto staged = [](Tensor like, float* at) {
      like.data = at;
      like.dtype = DType::F32;
      return like;
    };
    const Tensor dout32 = staged(dout, wide), dq32 = staged(dq, wide + nq),
                 dk32 = staged(dk, wide + 2 * nq), dv32 = staged(dv, wide + 2 * nq + nk);
    cuda::widen_bf16(f32(dout32), bits(dout), nq, s_->stream);
    attention_backward(dq32, dk32, dv32, dout32, q, k, v, out, lse, scale);
    for (const auto& [to, from] :
         {std::pair{&dq, &dq32}, std::pair{&dk, &dk32}, std::pair{&dv, &dv32}})
      cuda::to_bf16(bits(*to), from->numel(), 1, f32(*from), from->numel(), 1, from->numel(),
                    s_->stream);
    return;
  }
  auto* delta = static_cast<float*>(
      s_->get(kAttnDelta, sizeof(float) * static_cast<size_t>(std::max<int64_t>(b * h * t, 1))));
  const auto run = [&](const auto* o) {
    if (attention_on_tensor_cores()) {
      void* pack = s_->get(kAttnPack, cuda::attention_mma_scratch_bytes(b, t, t, h, kv, d, true));
      const auto mma = [&](const auto* tq, const auto* tk, const auto* tv) {
        cuda::attention_mma_backward(f32(dq), f32(dk), f32(dv), delta, f32(dout), tq, tk, tv, o,
                                     f32(lse), b, t, h, kv, d, static_cast<float>(scale), pack,
                                     s_->stream);
      };
      if (q.dtype == DType::BF16) mma(bits(q), bits(k), bits(v));
      else mma(f32(q), f32(k), f32(v));
    } else {
      const auto [qf, kf, vf] = attention_f32(q, k, v);
      cuda::attention_backward(f32(dq), f32(dk), f32(dv), delta, f32(dout), qf, kf, vf, o,
                               f32(lse), b, t, h, kv, d, static_cast<float>(scale), s_->stream);
    }
  };
  if (out.dtype == DType::BF16) run(static_cast<const uint16_t*>(bits(out)));
  else run(static_cast<const float*>(f32(out)));
}

// cuDNN reads dout and writes dq, dk, dv in BF16: in place where they are
// stored in BF16; else dout is rounded into scratch first (as autocast rounds the
// gradient entering SDPA) and the BF16 gradients widened into the F32 outputs.
bool CudaBackend::cudnn_attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv,
                                           const Tensor& dout, const Tensor& q, const Tensor& k,
                                           const Tensor& v, const Tensor& out, const Tensor& lse,
                                           double scale) {
  const int64_t nq = q.numel(), nk = k.numel();
  const cuda::CudnnAttnShape shape{q.dim(0), q.dim(1), q.dim(2), k.dim(2), q.dim(3),
                                   static_cast<float>(scale)};
  // Planned before anything is enqueued: a shape cuDNN cannot run costs nothing.
  if (!s_->cudnn().backward_planned(shape)) return false;
  if (dout.dtype == DType::BF16)
    return s_->cudnn().backward(bits(dq), bits(dk), bits(dv), bits(dout), bits(q), bits(k),
                                bits(v), bits(out), f32(lse), shape);
  auto* io = static_cast<uint16_t*>(
      s_->get(kAttnCudnn, sizeof(uint16_t) * static_cast<size_t>(2 * nq + 2 * nk)));
  uint16_t *dout16 = io, *dk16 = io + nq, *dv16 = dk16 + nk, *dq16 = dv16 + nk;
  cuda::to_bf16(dout16, nq, 1, static_cast<const float*>(f32(dout)), nq, 1, nq, s_->stream);
  if (!s_->cudnn().backward(dq16, dk16, dv16, dout16, bits(q), bits(k), bits(v), bits(out),
                            f32(lse), shape))
    return false;
  cuda::widen_bf16(f32(dq), dq16, nq, s_->stream);
  cuda::widen_bf16(f32(dk), dk16, nk, s_->stream);
  cuda::widen_bf16(f32(dv), dv16, nk, s_->stream);
  return true;
}

// One decoding step: one kernel of ours (decode.cu), reading the position on
// the device. F32 attention whatever the product precision (the CPU's; the
// step's work is small beside its products).
void CudaBackend::decode_attention(const DecodeAttention& step) {
  const DecodeShape d = check_decode_attention(step);
  for (const Tensor* t : {&step.out, &step.q_out, &step.q_raw, &step.k_raw, &step.v_raw,
                          &step.k_cache, &step.v_cache, &step.cos, &step.sin})
    check_f32(*t, "decode attention operand");
  if (step.q_norm.data) {
    check_f32(step.q_norm, "decode attention q_norm");
    check_f32(step.k_norm, "decode attention k_norm");
  }
  check_i32(step.pos, "decode attention pos");
  check_head_dim(d.head_dim);
  cuda::DecodeStep a;
  a.out = f32(step.out);
  a.q_out = f32(step.q_out);
  a.k_cache = f32(step.k_cache);
  a.v_cache = f32(step.v_cache);
  a.q_raw = f32(step.q_raw);
  a.k_raw = f32(step.k_raw);
  a.v_raw = f32(step.v_raw);
  a.q_norm = step.q_norm.data ? f32(step.q_norm) : nullptr;
  a.k_norm = step.k_norm.data ? f32(step.k_norm) : nullptr;
  a.cos = f32(step.cos);
  a.sin = f32(step.sin);
  a.pos = step.pos.as<int32_t>();
  a.positions = d.positions;
  a.heads = d.heads;
  a.kv_heads = d.kv_heads;
  a.head_dim = d.head_dim;
  a.eps = step.eps;
  a.scale = static_cast<float>(step.scale);
  // The kernel leaves its counters at zero for the next call: they are set
  // once, when the scratch is new.
  const size_t bytes = cuda::decode_scratch_bytes(d.heads, d.head_dim, d.positions);
  const bool fresh = s_->scratch[kDecodePartials].grows_for(bytes);
  void* scratch = s_->get(kDecodePartials, bytes);
  if (fresh) HG_CUDA_CHECK(cudaMemsetAsync(scratch, 0, cuda::kDecodeCounterBytes, s_->stream));
  cuda::decode_step(a, scratch, s_->stream);
}

}  // namespace hessgpt
