// Where a decoded token's time goes on a device: a session's decoding steps
// with every backend op bracketed by timing marks (TimedBackend), as `bench
// train --profile` does for a training step. The session must run on the
// TimedBackend. A TimedBackend records nothing for replay, so the steps run op
// by op (no CUDA graph): each op's time is the device's time for it alone,
// and a token's wall time less its ops' sum is the device idling between
// them (launches, the host's work, the logits' read-back).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "backend/timed_backend.h"
#include "infer/session_interface.h"

namespace hessgpt::infer {

struct DecodeProfile {
  std::vector<TimedBackend::Entry> entries;  // over `tokens` decoding steps
  int64_t tokens = 0;
  double seconds = 0;  // the steps' wall time
};

// Resets the session, feeds the prompt (untimed), then decodes `tokens` steps
// (the prompt's ids again, in turn: the ids do not change the work) with
// their ops timed.
DecodeProfile profile_decode(Session& session, TimedBackend& timed,
                             std::span<const int32_t> prompt, int64_t tokens);

}  // namespace hessgpt::infer
