// LoRA dropout masks (PEFT semantics: y = W x + s B A dropout(x), training
// passes only). Masks are never stored: a counter-based hash of (seed, pass
// counter, layer, target, element index) regenerates the same bits in forward
// and backward, for any thread count and after a resume.
#pragma once

#include <cstdint>

namespace hessgpt {

struct LoraDropoutKey {
  uint64_t stream = 0;     // one per (seed, counter, layer, target)
  uint32_t threshold = 0;  // element dropped when its 32 hash bits fall below this
  double keep_scale = 1;   // 1 / (1 - p): inverted dropout keeps the expectation
};

LoraDropoutKey lora_dropout_key(uint64_t seed, uint64_t counter, int64_t layer, int target, double p);

// Whether element `index` (row * cols + col over the whole pass) is kept.
bool lora_dropout_keeps(const LoraDropoutKey& key, uint64_t index);

// dst[r, c] (+)= keep(row0 + r, c) ? src[r, c] * keep_scale : 0 over host
// arrays of rows x cols; `=` unless accumulate. dst may alias src.
template <typename T>
void lora_dropout_apply(const LoraDropoutKey& key, T* dst, const T* src, int64_t row0, int64_t rows,
                        int64_t cols, bool accumulate);

}  // namespace hessgpt
