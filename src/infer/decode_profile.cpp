#include "infer/decode_profile.h"

#include <chrono>

#include "core/error.h"

namespace hessgpt::infer {

DecodeProfile profile_decode(Session& session, TimedBackend& timed,
                             std::span<const int32_t> prompt, int64_t tokens) {
  if (prompt.empty()) HG_FAIL("profile_decode: the prompt is empty");
  if (tokens <= 0) HG_FAIL("profile_decode: ", tokens, " decoding steps (at least 1)");
  if (static_cast<int64_t>(prompt.size()) + tokens > session.capacity())
    HG_FAIL("profile_decode: ", prompt.size(), " prompt tokens and ", tokens,
            " steps exceed the session's ", session.capacity(), " positions");
  session.reset();
  session.feed(prompt);
  timed.reset();
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < tokens; ++i)
    session.feed(prompt.subspan(static_cast<size_t>(i) % prompt.size(), 1));
  DecodeProfile p;
  p.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  p.entries = timed.entries();
  p.tokens = tokens;
  return p;
}

}  // namespace hessgpt::infer
