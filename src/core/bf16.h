// BF16 (the top half of an IEEE float) conversions, one definition for the
// backend's matrix products, quantised inference weights and safetensors.
// Rounding is to nearest even; NaN stays a (quiet) NaN.
#pragma once

#include <bit>
#include <cstdint>

namespace hessgpt {

// Branch-free, so loops over arrays of it vectorise.
inline uint16_t float_to_bf16(float f) {
  const uint32_t u = std::bit_cast<uint32_t>(f);
  const bool nan = (u & 0x7fffffffu) > 0x7f800000u;
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  return static_cast<uint16_t>(nan ? ((u >> 16) | 0x40u) : rounded);
}

inline float bf16_to_float(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

}  // namespace hessgpt
