// The backend interface: the list of ops the model needs, each a forward /
// backward pair with one signature on every backend. Model, training and
// inference code call only this; kernels live in backend/<name>/.
//
// Shape legend: N rows (= B*T tokens), C channels (d), V vocabulary,
// B batch, T time, H query heads, KV key/value heads, D head dim.
// Gradient rule (as in llm.c): parameter gradients accumulate (+=); activation
// gradients overwrite (=) unless the op says it accumulates.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace hessgpt {

// Precision of matrix products for F32 tensors: FP32, or operands rounded to
// BF16 with FP32 accumulation (weights, gradients and other ops stay FP32).
enum class MatmulPrecision { FP32, BF16 };

// BF16 storage. Where an op below says a tensor "may be BF16" next to F32
// ones, BF16 is only how it is stored: an input is read as float (exact), an
// output is the F32 result rounded to nearest even, once. Under BF16 products
// a BF16-stored operand gives the same product as its F32 original, so a model
// may keep the products' inputs in BF16 at half the memory and traffic.

// A width rounded up to a multiple of 8: BF16 rows of it are 16-byte
// aligned, which the tensor-core products need to read them in place.
inline int64_t padded_width(int64_t width) { return (width + 7) / 8 * 8; }

// The part of c = op(a) op(b) a product computes (Backend::matmul): m x n of
// c's rows x cols, summing over k.
struct MatmulShape {
  int64_t m = 0, n = 0, k = 0;
  int64_t rows = 0, cols = 0;
};
// Checks the shapes of a product (each dimension equal, or one side its
// partner's padded_width) and returns the part computed. Throws Error.
MatmulShape matmul_shape(const Tensor& c, const Tensor& a, bool trans_a, const Tensor& b,
                         bool trans_b);

struct AdamWParams {
  double lr = 4e-4;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.0;  // already resolved per tensor (0 for norms)
  int64_t step = 1;           // 1-based, for bias correction
  double grad_scale = 1.0;    // multiplies gradients first (clipping, accumulation)
};

// A range of flat parameter buffers that one AdamW step updates alike:
// elements [offset, offset + count), with hp.weight_decay where `decays`
// (matrices), none where not (norms).
struct AdamWGroup {
  int64_t offset = 0, count = 0;
  bool decays = false;
  bool operator==(const AdamWGroup&) const = default;
};

// A backend's recording of a sequence of its ops (Backend::record).
class RecordedOps {
 public:
  virtual ~RecordedOps() = default;
  // Runs the recorded ops; false (running nothing) when the recording no
  // longer holds, because the backend's working memory has moved since it
  // was made: record the ops again.
  [[nodiscard]] virtual bool replay() = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual Device device() const = 0;
  virtual std::string name() const = 0;
  virtual bool supports(DType dtype) const = 0;

  // ---- memory -------------------------------------------------------------
  virtual void* allocate(size_t bytes) = 0;
  virtual void release(void* ptr) = 0;
  virtual void copy_from_host(const Tensor& dst, const void* src) = 0;
  virtual void copy_to_host(void* dst, const Tensor& src) = 0;
  virtual void copy(const Tensor& dst, const Tensor& src) = 0;  // same dtype, same numel
  // dst = src converted: F32 -> BF16 rounds to nearest even, BF16 -> F32 is
  // exact, equal dtypes copy. Same numel.
  virtual void convert(const Tensor& dst, const Tensor& src) = 0;
  // dst [R, A + B] = the rows of a [R, A] and b [R, B] side by side, each
  // converted to dst's dtype as convert() does (F32 or BF16, any mix): one
  // operand for two products that share the other. The default runs
  // copy_columns for each.
  virtual void concat_columns(const Tensor& dst, const Tensor& a, const Tensor& b);
  // Columns [col0, col0 + C) of dst [R, W] = src [R, C], converted as convert()
  // does; dst's other columns are left alone.
  virtual void copy_columns(const Tensor& dst, int64_t col0, const Tensor& src) = 0;
  virtual void fill(const Tensor& x, double value) = 0;
  virtual void synchronize() {}
  // Bytes this backend could still allocate now (host: MemAvailable; GPU:
  // free device memory), 0 when unknown. For checks before a large run.
  virtual size_t free_memory_bytes() const { return 0; }

  // ---- dense algebra ------------------------------------------------------
  // c[M,N] = alpha * op(a) op(b) + beta * c, op = transpose when the flag is set.
  // a, b, c are 2-D readings (rows(), cols()) of their tensors. a and b may be
  // BF16 (storage) with an F32 or BF16 c; c may be BF16 with beta = 0.
  // Padded widths: a dimension may be its partner's padded_width (the FFN's
  // activations under --bf16-activations are stored that wide, the padding
  // zero). The product is then the one of the zero-padded operands: over the
  // shorter K, and c's rows or columns beyond op(a)'s or op(b)'s become
  // beta * c. An operand's padding in K must be finite: a backend may multiply
  // it by the other's zeros rather than skip it.
  virtual void matmul(const Tensor& c, const Tensor& a, bool trans_a, const Tensor& b,
                      bool trans_b, float alpha, float beta) = 0;

  // c = op(a) op(b) + d for an F32 c and d of c's shape (d may be c): a
  // residual connection added by the product itself. The default copies d
  // into c and accumulates; a backend may read d in the product's epilogue
  // instead (one pass over c fewer).
  virtual void matmul_add(const Tensor& c, const Tensor& a, bool trans_a, const Tensor& b,
                          bool trans_b, const Tensor& d);

  // Decoding's products with the op before them (a backend may fold it into
  // the product's reads; the defaults run the two ops, writing the scratch).
  // c = rmsnorm(x; norm_w) w^T, ln and rstd the norm's scratch (x's shape,
  // x's rows).
  virtual void rmsnorm_matmul(const Tensor& c, const Tensor& x, const Tensor& norm_w, double eps,
                              const Tensor& w, const Tensor& ln, const Tensor& rstd);
  // c += (silu(gate) * up) w^T, act the SwiGLU's scratch (gate's shape).
  virtual void swiglu_matmul_add(const Tensor& c, const Tensor& gate, const Tensor& up,
                                 const Tensor& w, const Tensor& act);

  // y += x (residual connections; gradient accumulation).
  virtual void add_inplace(const Tensor& y, const Tensor& x) = 0;
  // x *= s
  virtual void scale_inplace(const Tensor& x, double s) = 0;
  // sum(x^2) in double, for global-norm clipping.
  virtual double sum_squares(const Tensor& x) = 0;

  // ---- embedding: out[N,C] = table[ids[n]]; dtable[V,C] += scatter(dout) ---
  virtual void embedding_forward(const Tensor& out, const Tensor& ids, const Tensor& table) = 0;
  // embedding_forward for ids the caller has already checked against table's
  // rows (decoding checks each token on the host): no read-back of a verdict,
  // so a recorded step (record below) can hold it. The default runs the
  // checked op; CUDA's leaves the row of an id outside the table unwritten.
  virtual void embedding_forward_prechecked(const Tensor& out, const Tensor& ids,
                                            const Tensor& table) {
    embedding_forward(out, ids, table);
  }
  virtual void embedding_backward(const Tensor& dtable, const Tensor& ids, const Tensor& dout) = 0;

  // ---- RMSNorm over the last dim: out[R,D] = x / rms(x) * w; caches rstd[R].
  // Used for the block norms (D = C) and QK-Norm (R = N*heads, D = head dim).
  // out may be BF16 (storage) for an F32 x.
  virtual void rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& x,
                               const Tensor& w, double eps) = 0;
  // dx (= or += when accumulate_dx), dw +=. dx may be BF16 (storage) when it
  // does not accumulate; dout may be BF16 (storage, read widened) for an F32 x.
  virtual void rmsnorm_backward(const Tensor& dx, const Tensor& dw, const Tensor& dout,
                                const Tensor& x, const Tensor& w, const Tensor& rstd,
                                bool accumulate_dx) = 0;
  // rmsnorm_backward into an F32 dx, then dx16 = dx rounded to BF16 (dx16 of
  // dx's size): the residual stream's gradient, which the next products read
  // as an operand and would otherwise each round on their own. The default
  // runs the two ops; a backend may write the copy in the same pass.
  virtual void rmsnorm_backward_copy(const Tensor& dx, const Tensor& dx16, const Tensor& dw,
                                     const Tensor& dout, const Tensor& x, const Tensor& w,
                                     const Tensor& rstd, bool accumulate_dx);

  // ---- RoPE, rotate-half pairing, in place on x[B,T,heads,D];
  // cos/sin[P, D/2] tables hold the (YaRN-scaled) values; token t uses row pos0 + t.
  virtual void rope_forward(const Tensor& x, const Tensor& cos, const Tensor& sin,
                            int64_t pos0) = 0;
  // The transpose of the rotation, in place on the gradient.
  virtual void rope_backward(const Tensor& dx, const Tensor& cos, const Tensor& sin,
                             int64_t pos0) = 0;

  // ---- QK-Norm then RoPE: x[B,T,heads,D] -> out, RMSNorm over D (rstd[B*T*heads]
  // cached) and the rotation at pos0, as rmsnorm_forward then rope_forward do
  // them. The default runs those two ops; a backend may fuse them (one pass
  // over the tensor instead of three). out may be BF16 (storage; rounded once,
  // after the rotation), and x BF16 (storage, read widened: q's and k's
  // product outputs under --bf16-activations), where the backend overrides this.
  virtual void qk_norm_rope_forward(const Tensor& out, const Tensor& rstd, const Tensor& x,
                                    const Tensor& w, double eps, const Tensor& cos,
                                    const Tensor& sin, int64_t pos0);
  // The backward of both: dx =, dw +=. dout may be overwritten (the default
  // rotates it back in place first); it may be BF16 (storage: attention's
  // gradients under --bf16-activations), and so may x (as above), where the
  // backend overrides this. dx may have more heads than dout, [B, T, Hx, D]:
  // the gradient then goes to heads [dx_head0, dx_head0 + heads) of each
  // token, the others left alone (q's and k's gradients written straight into
  // the fused q/k/v operand).
  // The default takes dx_head0 = 0 and dout's heads only.
  virtual void qk_norm_rope_backward(const Tensor& dx, const Tensor& dw, const Tensor& dout,
                                     const Tensor& x, const Tensor& w, const Tensor& rstd,
                                     const Tensor& cos, const Tensor& sin, int64_t pos0,
                                     int64_t dx_head0);

  // ---- causal GQA attention, flash-style (memory linear in T) --------------
  // q[B,Tq,H,D], k/v[B,Tk,KV,D], out[B,Tq,H,D], lse[B,H,Tq] (log-sum-exp of the
  // scaled scores, cached for backward). Query t sits at absolute position
  // q_pos0 + t and sees keys 0 .. q_pos0 + t. out may be BF16 (storage), and
  // so may q, k, v (all three together); backward reads them as stored. Under
  // BF16 products the two products take q, k, v rounded to BF16, whatever
  // their storage (the CUDA tensor-core kernels' operands).
  virtual void attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q,
                                 const Tensor& k, const Tensor& v, double scale,
                                 int64_t q_pos0) = 0;
  // dq, dk, dv overwritten. dout, dq, dk, dv are all F32, or all BF16
  // (storage: the gradient computed in F32 from dout widened, rounded once).
  virtual void attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv,
                                  const Tensor& dout, const Tensor& q, const Tensor& k,
                                  const Tensor& v, const Tensor& out, const Tensor& lse,
                                  double scale) = 0;

  // ---- one decoding step's attention, at a position read on the device ------
  // For one token at position p = pos[0] (I32 [1], on this backend), as a
  // KV-cache session's step does it with the ops above (the default runs them):
  //   q_out [H*D] = QK-Norm + RoPE of q_raw at p (RoPE alone without norms);
  //   row p of k_cache [P, KV, D] = the same of k_raw; row p of v_cache = v_raw;
  //   out [H*D] = causal attention of q_out over cache rows 0 .. p (F32).
  // The position is an operand, not an argument: a backend that records ops
  // for replay (record() below) can then replay one step at every position.
  // The default reads it back to the host, so it cannot be recorded.
  struct DecodeAttention {
    Tensor out, q_out;                // [1, H*D] each
    Tensor q_raw, k_raw, v_raw;       // [1, H*D], [1, KV*D], [1, KV*D]
    Tensor q_norm, k_norm;            // [D] each; both empty without QK-Norm
    Tensor k_cache, v_cache;          // [P, KV, D]
    Tensor cos, sin;                  // [P, D/2]
    Tensor pos;                       // I32 [1], 0 <= pos < P
    double eps = 0.0, scale = 0.0;
  };
  virtual void decode_attention(const DecodeAttention& step);

  // ---- SwiGLU: out = silu(gate) * up; gate and up may both be BF16, and out
  // may be BF16 (storage; gradients stay F32) ---------------------------------
  virtual void swiglu_forward(const Tensor& out, const Tensor& gate, const Tensor& up) = 0;
  // dgate and dup may be BF16 (storage; both or neither).
  virtual void swiglu_backward(const Tensor& dgate, const Tensor& dup, const Tensor& dout,
                               const Tensor& gate, const Tensor& up) = 0;
  // The same with gate and up side by side, as one product writes them and
  // one product reads their gradients: gate_up [R, 2W] holds gate in columns
  // [0, W) and up in [W, 2W) (so does dgate_up), out and dout are [R, W].
  // F32 or BF16 storage each, as above; the same values as the ops above.
  virtual void swiglu_forward_joined(const Tensor& out, const Tensor& gate_up) = 0;
  virtual void swiglu_backward_joined(const Tensor& dgate_up, const Tensor& dout,
                                      const Tensor& gate_up) = 0;

  // ---- soft-cap, then cross-entropy -----------------------------------------
  // logits[R,V] raw in; on return they hold cap*tanh(z/cap) (cap <= 0: unchanged).
  virtual void softcap_forward(const Tensor& logits, double cap) = 0;
  // logits[R,V] raw in; losses[R] = -log softmax(softcap(z))[target] (0 where
  // target == -100). When dlogits_scale != 0 the logits are overwritten with
  // dloss/dz * dlogits_scale (the gradient w.r.t. the raw, pre-cap logits).
  virtual void softcap_cross_entropy(const Tensor& logits, const Tensor& losses,
                                     const Tensor& targets, double cap,
                                     double dlogits_scale) = 0;
  // The same with the gradient (dlogits_scale != 0) written to dlogits, BF16
  // storage [R, V], for products that round it anyway; the logits are left
  // unspecified. The logits may be BF16 storage too (a BF16 product's output,
  // as under autocast), scored widened, and dlogits may then be the logits
  // themselves. The default runs the op above on F32 logits, then converts.
  virtual void softcap_cross_entropy_into(const Tensor& dlogits, const Tensor& logits,
                                          const Tensor& losses, const Tensor& targets,
                                          double cap, double dlogits_scale);

  // ---- optimizer ------------------------------------------------------------
  // One AdamW step on a flat tensor; m, v are FP32 (or the param dtype).
  virtual void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& m,
                          const Tensor& v, const AdamWParams& hp) = 0;
  // adamw_step over groups of flat buffers of one length (a model's whole
  // parameter set in one call): each group's elements as adamw_step updates
  // them with its decay. The default calls adamw_step per group; a backend may
  // update every group in one pass (the same arithmetic per element).
  virtual void adamw_step_groups(const Tensor& params, const Tensor& grads, const Tensor& m,
                                 const Tensor& v, const std::vector<AdamWGroup>& groups,
                                 const AdamWParams& hp);

  // ---- recorded op sequences (CUDA graphs) ------------------------------------
  // Records the ops `ops` issues on this backend, without running them, for
  // replay as one launch: the same ops with the same operands (pointers,
  // shapes, arguments), on whatever the tensors hold at replay. The ops must
  // not read results back to the host nor allocate: run them once unrecorded
  // first, so that the backend's working memory has grown to what they need.
  // Returns null where the backend does not record (the default) or the ops
  // cannot be recorded (the reason is logged); the caller runs them op by op.
  virtual std::unique_ptr<RecordedOps> record(const std::function<void()>& ops) {
    (void)ops;
    return nullptr;
  }

  // ---- timing marks (hessgpt bench train --profile) --------------------------
  // A mark notes where the op stream has got to; ms_between(from, to) is the
  // time the device took between two marks (it waits for `to`). Marks count
  // from 0 again after clear_timing_marks(). The default synchronises and
  // reads the host clock, exact where ops finish before they return; the CUDA
  // backend records events in its stream instead, so that a profiled step
  // keeps the host running ahead of the device and times only the device.
  virtual int64_t timing_mark();
  virtual double ms_between(int64_t from, int64_t to);
  virtual void clear_timing_marks() { host_marks_.clear(); }

  // Threads this backend's host-side work may use.
  virtual void set_threads(int threads) { (void)threads; }

  virtual bool supports_matmul_precision(MatmulPrecision p) const {
    return p == MatmulPrecision::FP32;
  }
  // Throws Error when unsupported.
  virtual void set_matmul_precision(MatmulPrecision p);
  MatmulPrecision matmul_precision() const { return matmul_precision_; }

 protected:
  MatmulPrecision matmul_precision_ = MatmulPrecision::FP32;

 private:
  std::vector<std::chrono::steady_clock::time_point> host_marks_;
};

// A block of backend memory, freed on destruction.
class Buffer {
 public:
  Buffer() = default;
  Buffer(Backend* backend, size_t bytes);
  ~Buffer();
  Buffer(Buffer&& other) noexcept;
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  // A tensor over this buffer starting at byte offset.
  Tensor tensor(DType dtype, std::initializer_list<int64_t> dims, size_t offset = 0) const;

 private:
  Backend* backend_ = nullptr;
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// The shapes and dtypes copy_columns takes (every backend checks them so):
// throws Error naming the mismatch.
void check_copy_columns(const Tensor& dst, int64_t col0, const Tensor& src);
// softcap_cross_entropy_into's gradient: BF16 of the logits' size (which are
// F32 or BF16). Throws Error naming the mismatch.
void check_cross_entropy_into(const Tensor& dlogits, const Tensor& logits);
// swiglu_*_joined's operands: F32 or BF16, gate_up (and dgate_up) [R, 2W]
// beside out (or dout) [R, W]. Throws Error naming the mismatch.
void check_swiglu_joined(const Tensor& half, const Tensor& gate_up, const char* op);
// qk_norm_rope_backward's dx against dout: [B, T, Hx, D] with heads
// [dx_head0, dx_head0 + dout's heads) inside Hx.
void check_head_range(const Tensor& dx, const Tensor& dout, int64_t dx_head0);
// adamw_step_groups' operands: one dtype and length, each group inside them.
void check_adamw_groups(const Tensor& params, const Tensor& grads, const Tensor& m,
                        const Tensor& v, const std::vector<AdamWGroup>& groups);

// The sizes of a decoding step (Backend::decode_attention), its operands
// checked: one float dtype throughout, the shapes the step's comment gives.
// Throws Error naming the operand that does not fit.
struct DecodeShape {
  int64_t heads = 0, kv_heads = 0, head_dim = 0, positions = 0;
};
DecodeShape check_decode_attention(const Backend::DecodeAttention& step);

// Host float copies of F32 or F64 tensors (values are converted for F64): the
// one way weights, gradients and optimizer state travel to and from files.
std::vector<float> download_floats(Backend& backend, const Tensor& t);
void upload_floats(Backend& backend, const Tensor& t, const std::vector<float>& values);

// Backends compiled into this binary ("cpu", and "cuda" when built with CUDA),
// and those usable on this machine right now.
std::vector<std::string> compiled_backends();
std::vector<std::string> available_backends();

// A CUDA device as `info --backends` lists it. code_architecture: the
// virtual architecture (same form) of the code it runs for our kernels: its
// own compute capability where the build made code for it
// (CMAKE_CUDA_ARCHITECTURES), else that of the portable PTX, compiled when
// loaded and without the sm_90 paths (chained launches, the one-pass
// cross-entropy).
struct GpuInfo {
  std::string name;
  int compute_capability = 0;  // major * 10 + minor
  int code_architecture = 0;
  int64_t memory_bytes = 0;
};
// Every usable CUDA device; none without CUDA, a driver or a GPU.
std::vector<GpuInfo> available_gpus();

// "cpu" or "cuda"; an empty name picks cuda when available, else cpu.
// Throws Error for an unknown or unavailable backend.
std::unique_ptr<Backend> make_backend(const std::string& name, int threads);

}  // namespace hessgpt
