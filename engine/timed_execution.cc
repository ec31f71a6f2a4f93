#include "engine/timed_execution.h"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>
#include <thread>

#include <spdlog/spdlog.h>

#include "base/thread_annotations.h"

namespace discomfort::engine {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

struct Attempt {
  ExecutionRequest request;
  // Lock order: mu, then g_abandoned_mu, then progress_mu.
  Mutex mu;
  CondVar cv;
  bool done GUARDED_BY(mu) = false;
  bool registered GUARDED_BY(mu) = false;  // in g_abandoned
  std::optional<Result<ExecutionOutcome>> result GUARDED_BY(mu);
  Mutex progress_mu;  // held while a progress event is forwarded
  std::string running_node GUARDED_BY(progress_mu);
  // The caller's callbacks (and what they capture) are gone.
  bool abandoned GUARDED_BY(progress_mu) = false;
};

// The execution left running after its node ignored an interrupt. One per process, whatever the
// executor: ComfyUI's state is global, and several bridge handles share one ComfyUI.
Mutex g_abandoned_mu;
CondVar g_abandoned_cv;
std::shared_ptr<Attempt> g_abandoned GUARDED_BY(g_abandoned_mu);
std::atomic<bool> g_any_abandoned{false};  // lets the common case skip the lock

// A wait's end on the real clock for a time on the clock `now` was read from. An injected clock
// moves on its own, unseen by the wait: such waits are cut into short real-time polls.
Clock::time_point WallTime(Clock::time_point when, Clock::time_point now, bool injected) {
  const auto wall = Clock::now() + (when - now);
  return injected ? std::min(wall, Clock::now() + std::chrono::milliseconds(10)) : wall;
}

std::string SecondsText(double s) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g s", s);
  return buf;
}

std::string ClassOf(const ExecutionRequest& request, const std::string& node) {
  if (!request.prompt || node.empty()) return {};
  auto it = request.prompt->find(node);
  if (it == request.prompt->end() || !it->is_object()) return {};
  auto ct = it->find("class_type");
  return ct != it->end() && ct->is_string() ? ct->get<std::string>() : std::string();
}

std::string NodeLabel(const std::string& node, const std::string& class_type) {
  if (node.empty()) return "an unknown node";
  return "node " + node + (class_type.empty() ? "" : " (" + class_type + ")");
}

std::string RunningNode(Attempt& a) {
  MutexLock lock(a.progress_mu);
  return a.running_node;
}

}  // namespace

Status WaitForAbandonedExecution(double seconds) {
  if (!g_any_abandoned.load()) return Status::Ok();
  MutexLock lock(g_abandoned_mu);
  const auto idle = []() NO_THREAD_SAFETY_ANALYSIS {
    return g_abandoned == nullptr;
  };  // called with the lock held
  if (g_abandoned_cv.WaitFor(g_abandoned_mu, std::chrono::duration<double>(std::max(0.0, seconds)),
                             idle)) {
    return Status::Ok();
  }
  Attempt& a = *g_abandoned;
  ErrorLocation where;
  where.workflow = a.request.workflow_name;
  where.node_id = RunningNode(a);
  where.class_type = ClassOf(a.request, where.node_id);
  return Status(ErrorCode::kTimeout,
                "an earlier execution of " + a.request.workflow_name +
                    " ignored its interrupt and still runs in " +
                    NodeLabel(where.node_id, where.class_type) +
                    "; nothing else can execute until that node returns",
                where);
}

Result<ExecutionOutcome> ExecuteWithDeadline(Executor& executor, ExecutionRequest request,
                                             const DeadlineOptions& options) {
  const auto now_of = [&options] { return options.now ? options.now() : Clock::now(); };
  const auto remaining = std::chrono::duration<double>(options.deadline - now_of()).count();
  DISCOMFORT_RETURN_IF_ERROR(
      WaitForAbandonedExecution(std::clamp(remaining, 0.0, options.grace_seconds)));
  if (now_of() >= options.deadline) {
    ErrorLocation where;
    where.workflow = request.workflow_name;
    return Status(ErrorCode::kTimeout,
                  "the iteration ran past its " + SecondsText(options.limit_seconds) +
                      " limit before " + request.workflow_name + " started",
                  where);
  }

  auto attempt = std::make_shared<Attempt>();
  attempt->request = std::move(request);
  Attempt* raw = attempt.get();  // the request (holding this callback) lives inside the attempt
  attempt->request.on_progress = [raw, forward = std::move(attempt->request.on_progress)](
                                     const std::string& event, const json& data) {
    MutexLock lock(raw->progress_mu);
    if (event == "node_start") {
      auto node = data.find("node");
      if (node != data.end() && node->is_string()) raw->running_node = node->get<std::string>();
    }
    if (!raw->abandoned && forward) forward(event, data);
  };
  std::thread worker([attempt, &executor] {
    std::optional<Result<ExecutionOutcome>> result;
    try {
      result.emplace(executor.Execute(attempt->request));
    } catch (const std::exception& e) {  // nothing may escape a thread
      result.emplace(Status(ErrorCode::kInternal, std::string("execution threw: ") + e.what()));
    }
    bool registered = false;
    {
      MutexLock lock(attempt->mu);
      attempt->result = std::move(result);
      attempt->done = true;
      registered = attempt->registered;
    }
    attempt->cv.NotifyAll();
    if (registered) {
      MutexLock lock(g_abandoned_mu);
      if (g_abandoned == attempt) {
        g_abandoned.reset();
        g_any_abandoned.store(false);
      }
      g_abandoned_cv.NotifyAll();
      spdlog::warn("[discomfort] the abandoned execution of {} returned",
                   attempt->request.workflow_name);
    }
  });

  enum class Reason { kNone, kTimeout, kCancel };
  Reason reason = Reason::kNone;
  Clock::time_point give_up, next_interrupt;
  MutexLock lock(attempt->mu);
  while (!attempt->done) {
    const auto now = now_of();
    if (reason == Reason::kNone) {
      if (now >= options.deadline) {
        reason = Reason::kTimeout;
      } else if (options.cancel != nullptr && options.cancel->load()) {
        reason = Reason::kCancel;
      }
      if (reason != Reason::kNone) {
        give_up = now + std::chrono::duration_cast<Clock::duration>(
                            std::chrono::duration<double>(options.grace_seconds));
        next_interrupt = now;
      }
    }
    if (reason == Reason::kNone) {
      const auto wake = options.cancel != nullptr
                            ? std::min(options.deadline, now + std::chrono::milliseconds(50))
                            : options.deadline;
      attempt->cv.WaitUntil(attempt->mu, WallTime(wake, now, bool(options.now)));
      continue;
    }
    if (now >= give_up) break;
    if (now >= next_interrupt) {
      // Again and again: ComfyUI clears its flag when an execution starts, so one sent while
      // the prompt was still being validated would be lost.
      lock.Unlock();
      executor.Interrupt();
      lock.Lock();
      next_interrupt = now_of() + std::chrono::milliseconds(250);
      continue;
    }
    attempt->cv.WaitUntil(attempt->mu,
                          WallTime(std::min(give_up, next_interrupt), now, bool(options.now)));
  }

  if (attempt->done) {
    std::optional<Result<ExecutionOutcome>> finished = std::move(attempt->result);
    lock.Unlock();
    worker.join();
    Result<ExecutionOutcome> result = std::move(*finished);
    if (reason != Reason::kTimeout) return result;
    // The deadline passed: a timeout, whatever the interrupted execution returned.
    ErrorLocation where;
    where.workflow = attempt->request.workflow_name;
    if (!result.ok()) where.node_id = result.status().where().node_id;
    if (where.node_id.empty() || where.node_id == "None") where.node_id = RunningNode(*attempt);
    where.class_type = ClassOf(attempt->request, where.node_id);
    std::string message = "the iteration ran past its " + SecondsText(options.limit_seconds) +
                          " limit; ComfyUI was interrupted in " +
                          NodeLabel(where.node_id, where.class_type);
    if (!result.ok() && result.status().code() != ErrorCode::kCancelled) {
      message += " (the execution then failed: " + result.status().message() + ")";
    }
    return Status(ErrorCode::kTimeout, message, where);
  }

  // The node ignores the interrupt: leave it running, and keep the executor closed until it ends.
  ErrorLocation where;
  where.workflow = attempt->request.workflow_name;
  {
    MutexLock progress(attempt->progress_mu);
    attempt->abandoned = true;
    where.node_id = attempt->running_node;
  }
  where.class_type = ClassOf(attempt->request, where.node_id);
  {
    MutexLock registry(g_abandoned_mu);
    g_abandoned = attempt;  // none other: executions wait for an abandoned one first
    g_any_abandoned.store(true);
  }
  attempt->registered = true;
  lock.Unlock();
  worker.detach();
  const std::string why =
      reason == Reason::kTimeout
          ? "the iteration ran past its " + SecondsText(options.limit_seconds) + " limit and "
          : "cancelled, but ";
  return Status(
      reason == Reason::kTimeout ? ErrorCode::kTimeout : ErrorCode::kCancelled,
      why + NodeLabel(where.node_id, where.class_type) + " ignored the interrupt for " +
          SecondsText(options.grace_seconds) +
          ": it is left running in the background (its results are dropped, the context holds the "
          "last finished iteration, and nothing else executes until it returns)",
      where);
}

}  // namespace discomfort::engine
