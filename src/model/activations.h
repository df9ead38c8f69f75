// The activation arena of one training or evaluation pass: everything the
// forward pass keeps for backward, plus backward scratch, sized from
// (batch, sequence) and the config. One allocation; tensors are views.
//
// Selective recomputation (`recompute`): the tensors that one cheap,
// memory-bound op rebuilds from another kept tensor (ln1, q, k, ln2, act: the
// two norms, QK-Norm + RoPE and SwiGLU) get one copy shared by every layer
// instead of one per layer; backward rebuilds each layer's before using it.
// That is 39 % of model1's activation memory for a few element-wise passes,
// and the gradients are bit for bit the same (the same kernels on the same
// inputs). `recompute_mlp` shares only the MLP's two (ln2, act: 62 % of those
// bytes for 44 % of the passes, the rest kept per layer). Evaluation never
// needs more than the current layer's, so it always shares them.
//
// BF16 storage (MemoryOptions): gate/up, and the products' inputs ln1, att,
// ln2, act, may be kept in BF16, and attention's inputs q, k, v. Under BF16
// products the products and attention read the same values either way, so
// only what else reads them moves (SwiGLU reads gate/up, attention's backward
// reads att); the BF16 dact (MemoryOptions) is a rounding of its own. With the products' inputs in
// BF16 the FFN's tensors are also stored at a padded width, zeros beyond FFN
// (the products treat them as zero-padded; SwiGLU maps zeros to zeros).
#pragma once

#include <array>
#include <vector>

#include "backend/backend.h"
#include "core/model_config.h"
#include "model/lora.h"

namespace hessgpt {

struct LayerActivations {
  Tensor input;        // [N, C] residual stream entering the block
  Tensor ln1;          // [N, C]            (shared under recomputation)
  Tensor rstd1;        // [N]
  Tensor q_raw;        // [N, H*D] before QK-Norm (BF16 under --bf16-activations)
  Tensor k_raw;        // [N, KV*D]
  Tensor q;            // [B, T, H, D] after QK-Norm and RoPE (shared)
  Tensor k;            // [B, T, KV, D]     (shared)
  Tensor v;            // [B, T, KV, D]
  Tensor rstd_q;       // [N*H]
  Tensor rstd_k;       // [N*KV]
  Tensor att;          // [B, T, H, D]
  Tensor lse;          // [B, H, T]
  Tensor mid;          // [N, C] residual after attention
  Tensor ln2;          // [N, C]            (shared)
  Tensor rstd2;        // [N]
  Tensor gate;         // [N, FFN], FFN padded under BF16 product inputs (above)
  Tensor up;           // [N, FFN]
  Tensor gate_up;      // [N, 2 FFN]: gate | up side by side instead, where joined (below)
  Tensor act;          // [N, FFN] silu(gate) * up (shared)
  std::array<Tensor, kLoraTargets> lora_u;  // [N, r] = x A^T per adapted target
};

// The adapters the arena must hold intermediates for (rank 0: none).
struct LoraShape {
  int64_t rank = 0;
  std::array<bool, kLoraTargets> mask{};
};

struct Activations {
  int64_t batch = 0, seq = 0, head_chunk = 0;
  bool shared_attention = false;  // ln1, q, k are one copy for all layers
  bool shared_mlp = false;        // ln2, act are one copy for all layers
  bool bf16_ffn = false;  // gate, up are BF16
  bool bf16_activations = false;  // ln1, att, ln2, act are BF16
  // gate and up side by side in one tensor per layer (ArenaOptions), their
  // gradients too: one product each for them, their input gradient, and
  // their weights' gradient.
  bool joined_gate_up = false;
  // The head's product writes the logits in BF16 (ArenaOptions), as under
  // autocast, and the cross-entropy writes their gradient over them: half
  // the bytes each way and twice the rows a chunk for the same memory, no
  // dlogits16. A rounding of the loss's own (~1e-3 of it).
  bool bf16_logits = false;
  Tensor ids, targets;  // [N] I32
  std::vector<LayerActivations> layers;
  Tensor output;        // [N, C] residual after the last block
  Tensor lnf, rstdf;    // final norm
  Tensor logits;        // [head_chunk, V] (the head works on row chunks)
  Tensor losses;        // [N]
  // The head scores only rows with a target (model_forward.cpp): their
  // indices, targets and final-norm rows gathered densely, and (training)
  // the gradient of those rows before it is scattered back into dln.
  Tensor head_rows, head_targets;    // [N] I32
  Tensor head_hidden, head_dhidden;  // [N, C]
  // Under BF16 product inputs: the head's products read a BF16 copy of the
  // embedding (made once per pass, not once per product) and the
  // cross-entropy's gradient in BF16.
  Tensor embed16;    // [V, C] BF16
  Tensor dlogits16;  // [head_chunk, V] BF16 (training, F32 logits)
  // Backward scratch (the attention's overlays the MLP's: one block's MLP
  // backward is over before its attention backward starts).
  Tensor dres, dln;                  // [N, C]
  // dln in BF16 where one product writes it (fused q|k|v, joined gate|up)
  // and the norm's backward reads it: a rounding of its own, as autocast's
  // (the product's output is BF16 there too), half the bytes either way.
  Tensor dln16;                      // [N, C] BF16, or none
  // dres rounded to BF16 by the norms' backward, for the products that read
  // it (the o and down projections' backward), where dgate and dup are BF16.
  Tensor dres16;                     // [N, C] BF16, or none
  Tensor dq, dq_raw, datt;           // [N, H*D]
  Tensor dk, dk_raw, dv;             // [N, KV*D]
  // dq_raw | dk_raw | dv side by side in BF16, the q, k and v projections'
  // backward as one product each (model_backward.cpp), where dq_raw and
  // dk_raw are BF16 and no adapter reads them; else none.
  Tensor dqkv;                       // [N, H*D + 2 KV*D]
  Tensor dgate, dup, dact;           // [N, FFN]
  Tensor dgate_up;                   // [N, 2 FFN] where joined, instead of dgate, dup
  // Joined, with a padded FFN: [gate; up]'s weight gradient with the padding
  // rows, added into the parameters' gradients without them (F32).
  Tensor dw_gate_up;                 // [2 FFN, C]
  Tensor lora_du;                    // [N, r]
};

// How a training pass keeps what backward needs: the memory options of
// pretrain, sft, bench train and info.
struct MemoryOptions {
  bool recompute = false;  // --recompute: selective recomputation (above)
  // --bf16-ffn: gate and up, the two widest tensors a layer keeps (2 x FFN
  // per token), in BF16; they only feed SwiGLU, which reads them as float.
  // Not with LoRA adapters on gate or up (their products accumulate into it).
  bool bf16_ffn = false;
  // --bf16-activations: also ln1, att, ln2 and act, the products' inputs, in
  // BF16 (meant for BF16 products, which round them anyway): no F32 -> BF16
  // operand copies and half the traffic of the ops that write them; without
  // adapters attention's inputs q, k, v (with QK-Norm), the backward's product
  // inputs dgate, dup, dq_raw, dk_raw and dres's copy too, and dact and dln
  // (roundings of their own, as autocast's); with QK-Norm, q and k before it
  // too (q_raw, k_raw: product outputs only QK-Norm reads, rounded as
  // --bf16-ffn rounds gate and up, which moves the loss a little).
  // Implies bf16_ffn where allowed; not with LoRA dropout (it reads x as F32).
  bool bf16_activations = false;
  // --recompute-mlp: the MLP's part of `recompute` only (above); implied by it.
  bool recompute_mlp = false;
};

// What the options come to for a model of this dtype (BF16 storage is for F32
// models) with these adapters (lora may be null: none).
MemoryOptions effective_memory_options(const MemoryOptions& wanted, DType dtype,
                                       const LoraConfig* lora);

// What the arena holds besides the config and the batch shape.
struct ArenaOptions {
  bool training = true;  // backward scratch too
  LoraShape lora;        // the adapters' intermediates
  MemoryOptions memory;  // effective ones (effective_memory_options)
  // Gate and up side by side (Activations::joined_gate_up): for products
  // over weight copies with the FFN padded alike (weight_copies.h); only
  // with BF16 product inputs and no adapters.
  bool join_gate_up = false;
  // The head's logits in BF16 storage (Activations::bf16_logits): training
  // under BF16 product inputs.
  bool bf16_logits = false;
};

// Whether training under these (effective) memory options keeps the logits in
// BF16: under BF16 product inputs, unless HESSGPT_BF16_LOGITS=0 (A/B timings).
bool bf16_logits_wanted(const MemoryOptions& memory);

// Rows of the logits processed at once: bounds the logits to 256 MiB (2096
// rows of F32 at V = 32008, 4193 of BF16; HESSGPT_HEAD_CHUNK_ROWS overrides
// it; throws Error when that is not a positive count).
int64_t head_chunk_rows(int64_t rows, int64_t vocab, size_t logit_bytes = 4);

// Bytes the arena needs (training keeps backward scratch; inference does not).
size_t activation_bytes(const ModelConfig& config, int64_t batch, int64_t seq, DType dtype,
                        const ArenaOptions& options);

// Carves the arena out of buffer (which must hold activation_bytes()).
Activations layout_activations(const ModelConfig& config, const Buffer& buffer, int64_t batch,
                               int64_t seq, DType dtype, const ArenaOptions& options);

}  // namespace hessgpt
