// What generation, perplexity and the router need of a decoder: one sequence
// (batch 1) with a KV cache, fed tokens in order. Two implementations:
//   DecoderSession (session.h)        CPU, any weight format (FP32 views,
//                                     BF16, INT8, INT4), fused one-region decode;
//   DeviceSession (device_session.h)  any backend (the CUDA GPU), FP32 weights
//                                     of a Model, written against Backend ops.
// Both compute the training model's forward pass exactly (up to summation
// order): feeding ids[0..n) in any chunks gives the logits of Model::evaluate.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "core/model_config.h"
#include "infer/quant_matrix.h"

namespace hessgpt::infer {

// What a session decodes with, for reports (--json "device", "weights").
struct SessionInfo {
  std::string device;                 // the backend's name: "cpu", "cuda"
  WeightFormat format = WeightFormat::F32;
  int64_t group_size = 0;             // INT4 only
  size_t weight_bytes_per_token = 0;  // weights one decode step streams (matrices and head)
};

class Session {
 public:
  virtual ~Session() = default;

  virtual const ModelConfig& config() const = 0;
  virtual int64_t position() const = 0;  // tokens in the cache
  virtual int64_t capacity() const = 0;  // positions the cache holds
  virtual size_t kv_cache_bytes() const = 0;
  virtual SessionInfo info() const = 0;
  // Empties the cache (the next feed starts at position 0).
  virtual void reset() = 0;

  // Runs ids at positions position() .. position() + n - 1 (one batched pass
  // for n > 1) and returns the soft-capped logits of the last one: V host
  // floats, valid until the next call. all_logits, when given, receives the
  // logits of every new token [n, V] (host memory). Throws Error, before
  // touching the cache, when n is 0, the context would overflow or an id is
  // outside the vocabulary.
  virtual std::span<const float> feed(std::span<const int32_t> ids,
                                      float* all_logits = nullptr) = 0;
};

// Throws the feed errors above (the same messages for every session).
void check_feed(const ModelConfig& config, int64_t position, int64_t capacity,
                std::span<const int32_t> ids);

}  // namespace hessgpt::infer
