#include "model/activations.h"

#include <algorithm>
#include <cstdlib>

#include "backend/buffer_carver.h"
#include "core/env_switch.h"
#include "core/error.h"

namespace hessgpt {

int64_t head_chunk_rows(int64_t rows, int64_t vocab, size_t logit_bytes) {
  const int64_t budget_bytes = int64_t{1} << 28;
  int64_t chunk = budget_bytes / static_cast<int64_t>(logit_bytes) / vocab;
  // HESSGPT_HEAD_CHUNK_ROWS=R sets the chunk for A/B timings on a GPU: at
  // model1's 2096 rows each chunk's dE product reads and writes the F32
  // embedding gradient once more, which larger chunks would halve.
  if (const char* e = std::getenv("HESSGPT_HEAD_CHUNK_ROWS"); e && *e) {
    char* end = nullptr;
    const long long r = std::strtoll(e, &end, 10);
    if (*end != '\0' || r <= 0)
      HG_FAIL("HESSGPT_HEAD_CHUNK_ROWS must be a positive row count (got '", e, "')");
    chunk = r;
  }
  return std::max<int64_t>(1, std::min(rows, chunk));
}

bool bf16_logits_wanted(const MemoryOptions& memory) {
  return memory.bf16_activations && env_switch_on("HESSGPT_BF16_LOGITS");
}

MemoryOptions effective_memory_options(const MemoryOptions& wanted, DType dtype,
                                       const LoraConfig* lora) {
  MemoryOptions m = wanted;
  const bool f32 = dtype == DType::F32;
  m.bf16_ffn = f32 && (wanted.bf16_ffn || wanted.bf16_activations) &&
               !(lora && lora->adapts_gate_or_up());
  m.bf16_activations = f32 && wanted.bf16_activations && !(lora && lora->dropout > 0);
  return m;
}

namespace {

// Attention's gradients (datt, dq, dk, dv) in BF16 storage too, where dq_raw
// and dk_raw are: the default since the H200 measured 1.02x model1's tok/s
// (HESSGPT_BF16_ATTENTION_GRADS=0 keeps them in F32, for A/B timings). The o
// projection's backward then writes datt rounded once, as cuDNN's fused
// backward reads it, and dq, dk, dv come out of it in BF16 without widening
// passes; our own kernels stage them in F32.
bool bf16_attention_grads_wanted() { return env_switch_on("HESSGPT_BF16_ATTENTION_GRADS"); }

// dln in BF16 where one product writes it (Activations::dln16): the default
// (HESSGPT_BF16_DLN=0 keeps it in F32, for A/B timings). The norms' backward
// reads it: 84 MB a norm fewer written and read for model1, ~2 ms a step.
bool bf16_dln_wanted() { return env_switch_on("HESSGPT_BF16_DLN"); }

// q and k before QK-Norm in BF16 under --bf16-activations (the default;
// HESSGPT_BF16_QK_RAW=0 keeps them F32): their products write half the bytes,
// QK-Norm reads them widened, forward and backward, and each layer keeps 2.3 GB
// less for model1's step (105 MB a layer). A rounding of the forward's own, as
// --bf16-ffn's of gate and up (and autocast's): the loss moves by ~5e-4.
bool bf16_qk_raw_wanted() { return env_switch_on("HESSGPT_BF16_QK_RAW"); }

Activations carve(const ModelConfig& c, BufferCarver& cv, int64_t b, int64_t t,
                  const ArenaOptions& o) {
  const bool training = o.training;
  const LoraShape& lora = o.lora;
  const int64_t n = b * t, d = c.hidden_size, h = c.num_attention_heads,
                kv = c.num_key_value_heads, hd = c.head_dim;
  Activations a;
  a.batch = b;
  a.seq = t;
  a.bf16_logits = o.bf16_logits;
  const DType logit_type = a.bf16_logits ? DType::BF16 : cv.dtype();
  a.head_chunk = head_chunk_rows(n, c.vocab_size, dtype_size(logit_type));
  a.ids = cv.take({n}, DType::I32);
  a.targets = cv.take({n}, DType::I32);
  a.shared_attention = o.memory.recompute || !training;
  a.shared_mlp = a.shared_attention || o.memory.recompute_mlp;
  a.bf16_ffn = o.memory.bf16_ffn;
  a.bf16_activations = o.memory.bf16_activations;
  // The storage of gate/up and of the products' inputs (MemoryOptions).
  const DType ffn_type = a.bf16_ffn ? DType::BF16 : cv.dtype();
  const DType input_type = a.bf16_activations ? DType::BF16 : cv.dtype();
  // Under BF16 products without adapters the FFN's tensors are stored at a
  // padded width (backend.h), their extra columns zero: BF16 rows of 16-byte
  // multiples that the products read and write in place (model1's 3413 ->
  // 3416). Adapters' own products keep the exact width.
  const bool pad_ffn = a.bf16_activations && lora.rank == 0;
  const int64_t ffn = pad_ffn ? padded_width(c.intermediate_size) : c.intermediate_size;
  a.joined_gate_up = o.join_gate_up && pad_ffn;
  // Attention's inputs q, k, v: BF16 too where QK-Norm + RoPE writes q and k
  // (not the in-place RoPE without QK-Norm) and no adapter adds into v. Under
  // BF16 products attention reads them rounded either way (backend.h).
  const DType qkv_type = a.bf16_activations && lora.rank == 0 && c.qk_norm ? DType::BF16 : cv.dtype();
  // q and k before QK-Norm too: product outputs that only QK-Norm reads, as
  // gate and up are SwiGLU's (bf16_qk_raw_wanted).
  const DType raw_type = qkv_type == DType::BF16 && bf16_qk_raw_wanted() ? DType::BF16 : cv.dtype();
  LayerActivations shared;
  if (a.shared_attention) {
    shared.ln1 = cv.take({n, d}, input_type);
    shared.q = cv.take({b, t, h, hd}, qkv_type);
    shared.k = cv.take({b, t, kv, hd}, qkv_type);
  }
  if (a.shared_mlp) {
    shared.ln2 = cv.take({n, d}, input_type);
    shared.act = cv.take({n, ffn}, input_type);
  }
  // Each layer's own copy, or the shared one.
  const auto own = [&](bool is_shared, const Tensor& common, std::initializer_list<int64_t> dims,
                       DType type) { return is_shared ? common : cv.take(dims, type); };
  const bool sa = a.shared_attention, sm = a.shared_mlp;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    LayerActivations la;
    la.input = cv.take({n, d});
    la.ln1 = own(sa, shared.ln1, {n, d}, input_type);
    la.rstd1 = cv.take({n});
    la.q_raw = cv.take({n, h * hd}, raw_type);
    la.k_raw = cv.take({n, kv * hd}, raw_type);
    la.q = own(sa, shared.q, {b, t, h, hd}, qkv_type);
    la.k = own(sa, shared.k, {b, t, kv, hd}, qkv_type);
    la.v = cv.take({b, t, kv, hd}, qkv_type);
    la.rstd_q = cv.take({n * h});
    la.rstd_k = cv.take({n * kv});
    la.att = cv.take({b, t, h, hd}, input_type);
    la.lse = cv.take({b, h, t});
    la.mid = cv.take({n, d});
    la.ln2 = own(sm, shared.ln2, {n, d}, input_type);
    la.rstd2 = cv.take({n});
    if (a.joined_gate_up) {
      la.gate_up = cv.take({n, 2 * ffn}, ffn_type);
    } else {
      la.gate = cv.take({n, ffn}, ffn_type);
      la.up = cv.take({n, ffn}, ffn_type);
    }
    la.act = own(sm, shared.act, {n, ffn}, input_type);
    for (int k = 0; k < kLoraTargets; ++k)
      if (lora.rank > 0 && lora.mask[static_cast<size_t>(k)]) la.lora_u[static_cast<size_t>(k)] = cv.take({n, lora.rank});
    a.layers.push_back(la);
  }
  a.output = cv.take({n, d});
  a.lnf = cv.take({n, d});
  a.rstdf = cv.take({n});
  a.logits = cv.take({a.head_chunk, c.vocab_size}, logit_type);
  a.losses = cv.take({n});
  a.head_rows = cv.take({n}, DType::I32);
  a.head_targets = cv.take({n}, DType::I32);
  a.head_hidden = cv.take({n, d});
  if (a.bf16_activations) {
    a.embed16 = cv.take({c.vocab_size, d}, DType::BF16);
    if (training && !a.bf16_logits)
      a.dlogits16 = cv.take({a.head_chunk, c.vocab_size}, DType::BF16);
  }
  if (training) {
    a.head_dhidden = cv.take({n, d});
    a.dres = cv.take({n, d});
    a.dln = cv.take({n, d});
    // A block's backward is done with the MLP's scratch before the
    // attention's is first written: the two share memory.
    // Gradients that only feed products (dgate, dup; dq_raw, dk_raw out of
    // QK-Norm's backward) follow the products' inputs into BF16, unless
    // adapters read them too (their products scale, so do not round alike).
    // So does dact, the down projection's BF16 output that SwiGLU's backward
    // reads: a rounding of its own, as under autocast, where that product's
    // gradient is BF16 too.
    const DType grad_type = a.bf16_activations && lora.rank == 0 ? DType::BF16 : cv.dtype();
    const DType raw_grad_type = c.qk_norm ? grad_type : cv.dtype();
    const DType att_grad_type =
        raw_grad_type == DType::BF16 && bf16_attention_grads_wanted() ? DType::BF16 : cv.dtype();
    if (grad_type == DType::BF16) a.dres16 = cv.take({n, d}, DType::BF16);
    if (grad_type == DType::BF16 && bf16_dln_wanted()) a.dln16 = cv.take({n, d}, DType::BF16);
    const size_t scratch = cv.offset();
    if (a.joined_gate_up) {
      a.dgate_up = cv.take({n, 2 * ffn}, grad_type);
      // Into the logits' block where it fits: the head is done before the blocks' backward.
      const auto bytes = [](int64_t elements, DType type) {
        return elements * static_cast<int64_t>(dtype_size(type));
      };
      const bool in_logits =
          bytes(2 * ffn * d, cv.dtype()) <= bytes(a.head_chunk * c.vocab_size, logit_type);
      if (ffn != c.intermediate_size && !in_logits) a.dw_gate_up = cv.take({2 * ffn, d});
      else if (ffn != c.intermediate_size && a.logits.data)
        a.dw_gate_up = Tensor(a.logits.data, cv.dtype(), a.logits.device, {2 * ffn, d});
    } else {
      a.dgate = cv.take({n, ffn}, grad_type);
      a.dup = cv.take({n, ffn}, grad_type);
    }
    a.dact = cv.take({n, ffn}, grad_type);
    const size_t mlp_end = cv.offset();
    cv.rewind(scratch);
    a.dq = cv.take({b, t, h, hd}, att_grad_type);
    a.dq_raw = cv.take({n, h * hd}, raw_grad_type);
    a.datt = cv.take({b, t, h, hd}, att_grad_type);
    a.dk = cv.take({b, t, kv, hd}, att_grad_type);
    a.dk_raw = cv.take({n, kv * hd}, raw_grad_type);
    a.dv = cv.take({b, t, kv, hd}, att_grad_type);
    if (raw_grad_type == DType::BF16 && lora.rank == 0)
      a.dqkv = cv.take({n, (h + 2 * kv) * hd}, DType::BF16);
    cv.rewind(std::max(mlp_end, cv.offset()));
    if (lora.rank > 0) a.lora_du = cv.take({n, lora.rank});
  }
  return a;
}

}  // namespace

size_t activation_bytes(const ModelConfig& config, int64_t batch, int64_t seq, DType dtype,
                        const ArenaOptions& options) {
  BufferCarver cv(nullptr, dtype);
  carve(config, cv, batch, seq, options);
  return cv.offset();
}

Activations layout_activations(const ModelConfig& config, const Buffer& buffer, int64_t batch,
                               int64_t seq, DType dtype, const ArenaOptions& options) {
  BufferCarver cv(&buffer, dtype);
  return carve(config, cv, batch, seq, options);
}

}  // namespace hessgpt
