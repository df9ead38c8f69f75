#include "model/lora_dropout.h"

#include <cmath>

namespace hessgpt {
namespace {

// SplitMix64's finaliser: a full-avalanche bijection, cheap enough to run per element.
inline uint64_t mix64(uint64_t z) {
  z ^= z >> 30;
  z *= 0xbf58476d1ce4e5b9ULL;
  z ^= z >> 27;
  z *= 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;
// Separates the mask stream from other uses of the same seed (adapter init).
constexpr uint64_t kDomain = 0x6c6f72615f64726fULL;  // "lora_dro"

inline uint32_t element_bits(uint64_t stream, uint64_t index) {
  return static_cast<uint32_t>(mix64(stream + (index + 1) * kGolden) >> 32);
}

}  // namespace

LoraDropoutKey lora_dropout_key(uint64_t seed, uint64_t counter, int64_t layer, int target, double p) {
  LoraDropoutKey key;
  const uint64_t site = static_cast<uint64_t>(layer) * 64 + static_cast<uint64_t>(target);
  key.stream = mix64(mix64(mix64(seed ^ kDomain) + counter * kGolden) + site * kGolden);
  // p < 1 is validated, so the product stays below 2^32.
  key.threshold = static_cast<uint32_t>(std::floor(p * 4294967296.0));
  key.keep_scale = 1.0 / (1.0 - p);
  return key;
}

bool lora_dropout_keeps(const LoraDropoutKey& key, uint64_t index) {
  return element_bits(key.stream, index) >= key.threshold;
}

template <typename T>
void lora_dropout_apply(const LoraDropoutKey& key, T* dst, const T* src, int64_t row0, int64_t rows,
                        int64_t cols, bool accumulate) {
  const T scale = static_cast<T>(key.keep_scale);
  const uint64_t stream = key.stream;
  const uint32_t threshold = key.threshold;
  // Each element's bit depends only on its index, so any partition of the
  // rows over threads yields the same mask.
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const uint64_t base = static_cast<uint64_t>(row0 + r) * static_cast<uint64_t>(cols);
    T* d = dst + r * cols;
    const T* s = src + r * cols;
    if (accumulate) {
#pragma omp simd
      for (int64_t c = 0; c < cols; ++c)
        d[c] += element_bits(stream, base + static_cast<uint64_t>(c)) >= threshold ? s[c] * scale : T(0);
    } else {
#pragma omp simd
      for (int64_t c = 0; c < cols; ++c)
        d[c] = element_bits(stream, base + static_cast<uint64_t>(c)) >= threshold ? s[c] * scale : T(0);
    }
  }
}

template void lora_dropout_apply<float>(const LoraDropoutKey&, float*, const float*, int64_t, int64_t,
                                        int64_t, bool);
template void lora_dropout_apply<double>(const LoraDropoutKey&, double*, const double*, int64_t,
                                         int64_t, int64_t, bool);

}  // namespace hessgpt
