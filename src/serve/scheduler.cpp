#include "serve/scheduler.h"

#include <exception>

#include "core/error.h"
#include "serve/answer_stream.h"

namespace hessgpt::serve {
namespace {

ApiError stopping_error() {
  return ApiError{503, "the server is shutting down", "", "server_shutting_down"};
}

CompletionEvent delta_event(std::string text) {
  CompletionEvent e;
  e.text = std::move(text);
  return e;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

std::optional<CompletionEvent> Completion::next(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!ready_.wait_for(lock, timeout, [&] { return !events_.empty(); })) return std::nullopt;
  CompletionEvent e = std::move(events_.front());
  events_.pop_front();
  return e;
}

void Completion::push(CompletionEvent event) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    events_.push_back(std::move(event));
  }
  ready_.notify_one();
}

Scheduler::Scheduler(TurnRunner& runner) : runner_(runner), worker_([this] { loop(); }) {}

Scheduler::~Scheduler() { stop(); }

std::shared_ptr<Completion> Scheduler::submit(TurnSpec spec, bool stream) {
  auto completion = std::make_shared<Completion>();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!stopping_) {
      queue_.push_back(Job{std::move(spec), stream, completion, std::chrono::steady_clock::now()});
      ++stats_.queued;
      wake_.notify_one();
      return completion;
    }
  }
  CompletionEvent failed;
  failed.kind = CompletionEvent::Kind::kFailed;
  failed.error = stopping_error();
  completion->push(std::move(failed));
  return completion;
}

void Scheduler::stop() {
  std::deque<Job> dropped;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    if (running_) running_->cancel();
    dropped.swap(queue_);
    stats_.queued = 0;
    wake_.notify_all();
  }
  for (Job& job : dropped) {
    CompletionEvent failed;
    failed.kind = CompletionEvent::Kind::kFailed;
    failed.error = stopping_error();
    job.completion->push(std::move(failed));
  }
  if (worker_.joinable() && worker_.get_id() != std::this_thread::get_id()) worker_.join();
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void Scheduler::loop() {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;  // stop() failed whatever was queued
      job = std::move(queue_.front());
      queue_.pop_front();
      --stats_.queued;
      running_ = job.completion;
      stats_.running = 1;
    }
    run(job);
    std::lock_guard<std::mutex> lock(mutex_);
    running_.reset();
    stats_.running = 0;
  }
}

void Scheduler::run(Job& job) {
  const auto start = std::chrono::steady_clock::now();
  CompletionEvent end;
  end.queued_seconds = std::chrono::duration<double>(start - job.queued_at).count();
  Completion& completion = *job.completion;
  enum { kCompleted, kCancelled, kFailed } outcome = kCompleted;
  try {
    AnswerStream stream(runner_.tokenizer());
    TurnHooks hooks;
    hooks.should_stop = [&] { return completion.cancelled(); };
    if (job.stream) {
      hooks.on_answer_token = [&](int32_t id) {
        std::string delta = stream.push(id);
        if (!delta.empty()) completion.push(delta_event(std::move(delta)));
      };
    }
    end.turn = runner_.run(job.spec, hooks);
    if (job.stream) {
      std::string rest = stream.finish(end.turn.answer);
      if (!rest.empty()) completion.push(delta_event(std::move(rest)));
    }
    end.kind = CompletionEvent::Kind::kDone;
  } catch (const Cancelled&) {
    outcome = kCancelled;
    end.kind = CompletionEvent::Kind::kFailed;
    end.error = ApiError{499, "the request was cancelled", "", "cancelled"};
  } catch (const std::exception& e) {
    outcome = kFailed;
    end.kind = CompletionEvent::Kind::kFailed;
    end.error = ApiError{500, str_cat("generation failed: ", e.what()), "", "generation_failed"};
  } catch (...) {
    outcome = kFailed;
    end.kind = CompletionEvent::Kind::kFailed;
    end.error = ApiError{500, "generation failed (unknown exception)", "", "generation_failed"};
  }
  end.seconds = seconds_since(start);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (outcome == kCancelled && stopping_) end.error = stopping_error();
    if (outcome == kCompleted) ++stats_.completed;
    if (outcome == kCancelled) ++stats_.cancelled;
    if (outcome == kFailed) ++stats_.failed;
  }
  completion.push(std::move(end));
}

}  // namespace hessgpt::serve
