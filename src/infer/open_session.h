// Opening a decoder session for the command line: which device decodes, and
// which Session runs there.
//   CPU backend   -> InferWeights (FP32 views, BF16, INT8, INT4) + DecoderSession;
//   other (CUDA)  -> the FP32 Model on that backend + DeviceSession, its
//                    matrices in FP32 or (--bits 16) BF16 copies.
// Quantised weights (a quantised checkpoint, or --bits 8/4) are CPU formats.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/model_config.h"
#include "infer/session_interface.h"

namespace hessgpt::infer {

// The --device that decodes checkpoints `dirs` at `bits` (-1: as stored),
// given the requested one ("" = best available): "" becomes "cpu" when the
// weights are quantised; "cuda" with quantised weights is an Error naming the
// problem (before any backend is made, so it reads the same on every machine).
// Anything else comes back unchanged.
std::string decode_device(const std::string& requested, const std::vector<std::string>& dirs,
                          int bits);

// A session over checkpoint `dir` (FP32 or quantised) on `backend`, which
// must outlive it. capacity: positions (0: the model's context).
std::unique_ptr<Session> open_session(const std::string& dir, Backend& backend, int bits = -1,
                                      int64_t group_size = 32, int64_t capacity = 0);

// A session over random weights (Model::init_random(seed)) at `bits` (32, 16, 8, 4).
std::unique_ptr<Session> open_random_session(const ModelConfig& config, uint64_t seed,
                                             Backend& backend, int bits, int64_t group_size = 32,
                                             int64_t capacity = 0);

// The DeviceSession path (the FP32 model's ops on `backend`, matrices in FP32
// or, at bits 16, BF16) whatever the backend's device: `bench generate
// --profile` times that path's backend ops, on the CPU too. dir: a FP32
// checkpoint; empty: random weights of `config` (Model::init_random(seed)).
std::unique_ptr<Session> open_backend_ops_session(const std::string& dir,
                                                  const ModelConfig& config, uint64_t seed,
                                                  Backend& backend, int bits,
                                                  int64_t capacity = 0);

}  // namespace hessgpt::infer
