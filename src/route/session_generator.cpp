#include "route/session_generator.h"

#include "core/error.h"

namespace hessgpt::route {

SessionGenerator::SessionGenerator(infer::Session& session,
                                   const infer::SamplingOptions& sampling)
    : session_(session), sampling_(sampling), sampler_(sampling) {}

void SessionGenerator::reset() {
  session_.reset();
  pending_.clear();
  history_.clear();
  sampler_ = infer::Sampler(sampling_);  // the same seed gives the same answers after /reset
}

void SessionGenerator::append(std::span<const int32_t> ids) {
  pending_.insert(pending_.end(), ids.begin(), ids.end());
}

int32_t SessionGenerator::next() {
  HG_CHECK(!pending_.empty(), "nothing to feed the model: the context is empty");
  if (session_.position() + static_cast<int64_t>(pending_.size()) > session_.capacity())
    HG_FAIL("the conversation (", session_.position() + static_cast<int64_t>(pending_.size()),
            " tokens) no longer fits the model's context of ", session_.capacity(),
            " tokens; /reset to start over");
  const std::span<const float> logits = session_.feed(pending_);
  history_.insert(history_.end(), pending_.begin(), pending_.end());
  pending_.clear();
  const int32_t id = sampler_.sample(logits, history_);
  pending_.push_back(id);
  return id;
}

}  // namespace hessgpt::route
