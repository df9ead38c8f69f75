// The compute thread: one turn at a time, deltas then one final event, and
// every way a turn can end (done, failed, cancelled, server stopping) seen
// by the connection that asked.
#include <gtest/gtest.h>

#include <thread>

#include "serve/scheduler.h"
#include "serve_test_util.h"

namespace hessgpt {
namespace {

using serve::CompletionEvent;
using serve_test::FakeRunner;

serve::TurnSpec turn(const std::string& user, int64_t max_tokens = 50) {
  serve::TurnSpec spec;
  spec.conversation.messages.push_back({chat::Role::kUser, user, {}});
  spec.max_tokens = max_tokens;
  return spec;
}

// Reads a completion to its end: the deltas joined, and the last event.
CompletionEvent drain(serve::Completion& c, std::string* text = nullptr) {
  for (;;) {
    auto e = c.next(std::chrono::seconds(30));
    if (!e) {
      ADD_FAILURE() << "no event within 30 s";
      return {};
    }
    if (e->kind != CompletionEvent::Kind::kDelta) return *e;
    if (text) *text += e->text;
  }
}

TEST(ServeScheduler, StreamsDeltasThenTheTurn) {
  FakeRunner runner;
  serve::Scheduler scheduler(runner);
  std::string text;
  const CompletionEvent e = drain(*scheduler.submit(turn("hello there"), true), &text);
  ASSERT_EQ(e.kind, CompletionEvent::Kind::kDone);
  EXPECT_EQ(e.turn.answer, "echo: hello there");
  EXPECT_EQ(text, e.turn.answer);
  // Not streaming: no deltas, the same turn.
  auto quiet = scheduler.submit(turn("hello there"), false);
  std::string none;
  EXPECT_EQ(drain(*quiet, &none).turn.answer, "echo: hello there");
  EXPECT_EQ(none, "");
  EXPECT_EQ(scheduler.stats().completed, 2u);
}

TEST(ServeScheduler, TurnsNeverOverlap) {
  FakeRunner runner;
  runner.slow_pause = std::chrono::milliseconds(1);
  serve::Scheduler scheduler(runner);
  std::vector<std::shared_ptr<serve::Completion>> all;
  for (int i = 0; i < 4; ++i) all.push_back(scheduler.submit(turn("slow", 20), i % 2 == 0));
  for (auto& c : all) EXPECT_EQ(drain(*c).kind, CompletionEvent::Kind::kDone);
  EXPECT_FALSE(runner.overlapped);
  EXPECT_EQ(runner.specs().size(), 4u);
}

TEST(ServeScheduler, AFailedTurnIsAnEventAndTheNextTurnRuns) {
  FakeRunner runner;
  serve::Scheduler scheduler(runner);
  const CompletionEvent failed = drain(*scheduler.submit(turn("boom"), true));
  ASSERT_EQ(failed.kind, CompletionEvent::Kind::kFailed);
  EXPECT_EQ(failed.error.status, 500);
  EXPECT_EQ(failed.error.message, "generation failed: boom");
  EXPECT_EQ(drain(*scheduler.submit(turn("ok"), false)).turn.answer, "echo: ok");
  EXPECT_EQ(scheduler.stats().failed, 1u);
}

TEST(ServeScheduler, CancellingStopsTheTurnAtItsNextToken) {
  FakeRunner runner;
  serve::Scheduler scheduler(runner);
  auto c = scheduler.submit(turn("slow", 300), true);
  ASSERT_TRUE(c->next(std::chrono::seconds(10)));  // the first delta: it runs
  c->cancel();
  const CompletionEvent e = drain(*c);
  EXPECT_EQ(e.kind, CompletionEvent::Kind::kFailed);
  EXPECT_EQ(e.error.code, "cancelled");
  EXPECT_LT(runner.tokens_when_cancelled, 50);  // 300 would take 3 s
  EXPECT_EQ(scheduler.stats().cancelled, 1u);
}

TEST(ServeScheduler, StopCancelsTheRunningTurnAndFailsTheQueue) {
  FakeRunner runner;
  serve::Scheduler scheduler(runner);
  auto running = scheduler.submit(turn("slow", 300), true);
  auto queued = scheduler.submit(turn("never"), false);
  ASSERT_TRUE(running->next(std::chrono::seconds(10)));
  const auto t0 = std::chrono::steady_clock::now();
  scheduler.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  EXPECT_EQ(drain(*running).error.status, 503);
  EXPECT_EQ(drain(*queued).error.status, 503);
  EXPECT_EQ(drain(*scheduler.submit(turn("late"), false)).error.message,
            "the server is shutting down");
  EXPECT_EQ(runner.specs().size(), 1u);  // "never" never ran
}

}  // namespace
}  // namespace hessgpt
