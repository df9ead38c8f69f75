// One compute thread for every generation. The models hold one KV-cache
// session each, so turns run one at a time; running them all on one thread
// (rather than on whichever connection thread holds a lock) also keeps one
// OpenMP team busy instead of a team per connection thread.
//
// A connection submits a turn and reads its Completion: text deltas (when
// streaming), then exactly one kDone or kFailed. The compute thread never
// waits on a network write; the connection cancels the completion when its
// client goes away, and the turn stops at its next token. Nothing a turn
// does (an Error, a bug's exception) escapes the compute thread: it becomes
// a kFailed event and the next turn runs.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "route/router.h"
#include "serve/engine.h"
#include "serve/request.h"

namespace hessgpt::serve {

struct CompletionEvent {
  enum class Kind { kDelta, kDone, kFailed };
  Kind kind = Kind::kDelta;
  std::string text;        // kDelta: the next piece of the answer
  route::TurnResult turn;  // kDone
  ApiError error;          // kFailed: 500 (the turn failed) or 503 (stopping)
  double seconds = 0;      // kDone, kFailed: time on the compute thread
  double queued_seconds = 0;
};

// Shared by one connection thread and the compute thread.
class Completion {
 public:
  // The next event, waiting at most `timeout`; nullopt when none came.
  std::optional<CompletionEvent> next(std::chrono::milliseconds timeout);
  // The client went away: the turn stops before its next token.
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }
  void push(CompletionEvent event);

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<CompletionEvent> events_;
  std::atomic<bool> cancelled_{false};
};

struct SchedulerStats {
  uint64_t completed = 0, cancelled = 0, failed = 0;
  int64_t running = 0, queued = 0;
};

class Scheduler {
 public:
  explicit Scheduler(TurnRunner& runner);
  ~Scheduler();  // stop()
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a turn; with `stream`, answer deltas are pushed as they come.
  // After stop(), the completion fails at once (503).
  std::shared_ptr<Completion> submit(TurnSpec spec, bool stream);
  // Cancels the running turn, fails the queued ones (503) and joins the
  // compute thread. Idempotent.
  void stop();
  SchedulerStats stats() const;

 private:
  struct Job {
    TurnSpec spec;
    bool stream = false;
    std::shared_ptr<Completion> completion;
    std::chrono::steady_clock::time_point queued_at;
  };
  void loop();
  void run(Job& job);

  TurnRunner& runner_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> queue_;
  std::shared_ptr<Completion> running_;
  bool stopping_ = false;
  SchedulerStats stats_;
  std::thread worker_;
};

}  // namespace hessgpt::serve
