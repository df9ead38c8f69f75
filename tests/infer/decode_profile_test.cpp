// profile_decode (bench generate --profile): a DeviceSession on a TimedBackend
// over the CPU backend. The profile holds the decoding steps' ops and nothing
// of the prompt's, each op as often in every step, and timing changes no
// value: the steps' logits are those of a session on the plain backend.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "backend/timed_backend.h"
#include "core/error.h"
#include "infer/decode_profile.h"
#include "infer/device_session.h"
#include "infer_test_util.h"

namespace hessgpt::infer {
namespace {

using testing::random_ids;
using testing::random_model;
using testing::tiny_config;

const TimedBackend::Entry* find_op(const std::vector<TimedBackend::Entry>& entries,
                                   const std::string& op) {
  const auto it = std::find_if(entries.begin(), entries.end(),
                               [&](const TimedBackend::Entry& e) { return e.op == op; });
  return it == entries.end() ? nullptr : &*it;
}

TEST(DecodeProfile, TimesTheDecodingStepsOpsAndChangesNoLogit) {
  const ModelConfig c = tiny_config(64);
  const auto cpu = make_backend("cpu", 2);
  TimedBackend timed(*cpu);
  DeviceSession profiled(random_model(c, timed, 5));
  DeviceSession plain(random_model(c, *cpu, 5));
  const std::vector<int32_t> prompt = random_ids(7, c.vocab_size, 3);
  const int64_t steps = 4;

  const DecodeProfile p = profile_decode(profiled, timed, prompt, steps);
  EXPECT_EQ(p.tokens, steps);
  EXPECT_GT(p.seconds, 0.0);
  EXPECT_EQ(profiled.position(), static_cast<int64_t>(prompt.size()) + steps);
  ASSERT_FALSE(p.entries.empty());
  // One attention step a layer a token; the prompt's causal attention (a
  // prefill op) is not in the table.
  const TimedBackend::Entry* step = find_op(p.entries, "attention_decode");
  ASSERT_NE(step, nullptr);
  EXPECT_EQ(step->calls, steps * c.num_hidden_layers);
  EXPECT_EQ(find_op(p.entries, "attention_forward"), nullptr);
  for (const TimedBackend::Entry& e : p.entries) {
    EXPECT_EQ(e.calls % steps, 0) << e.op << " " << e.shape << ": " << e.calls << " calls";
    EXPECT_GE(e.ms, 0.0) << e.op;
  }
  EXPECT_TRUE(std::any_of(p.entries.begin(), p.entries.end(), [](const TimedBackend::Entry& e) {
    return std::string(TimedBackend::category(e.op)) == "products";
  }));

  // The same ids on the plain backend: the profile decoded the prompt's ids
  // in turn after the prompt.
  plain.feed(prompt);
  std::vector<float> want;
  for (int64_t i = 0; i < steps; ++i) {
    const auto l = plain.feed(std::span<const int32_t>(&prompt[static_cast<size_t>(i)], 1));
    want.assign(l.begin(), l.end());
  }
  profiled.reset();
  profiled.feed(prompt);
  std::vector<float> got;
  for (int64_t i = 0; i < steps; ++i) {
    const auto l = profiled.feed(std::span<const int32_t>(&prompt[static_cast<size_t>(i)], 1));
    got.assign(l.begin(), l.end());
  }
  EXPECT_EQ(got, want);
}

template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(DecodeProfile, RejectsStepsItCannotRun) {
  const ModelConfig c = tiny_config(16);
  const auto cpu = make_backend("cpu", 1);
  TimedBackend timed(*cpu);
  DeviceSession session(random_model(c, timed, 5));
  const std::vector<int32_t> prompt = random_ids(10, c.vocab_size, 3);
  EXPECT_NE(error_of([&] { profile_decode(session, timed, prompt, 0); }).find("0 decoding steps"),
            std::string::npos);
  EXPECT_NE(error_of([&] { profile_decode(session, timed, prompt, 7); })
                .find("exceed the session's 16"),
            std::string::npos);
  EXPECT_NE(error_of([&] { profile_decode(session, timed, {}, 2); }).find("the prompt is empty"),
            std::string::npos);
  EXPECT_EQ(error_of([&] { profile_decode(session, timed, prompt, 6); }), "");
}

}  // namespace
}  // namespace hessgpt::infer
