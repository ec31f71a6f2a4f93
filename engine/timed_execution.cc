#include "engine/timed_execution.h"

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <spdlog/spdlog.h>

namespace discomfort::engine {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

struct Attempt {
  ExecutionRequest request;
  // Lock order: mu, then g_abandoned_mu, then progress_mu.
  std::mutex mu;  // done, result, registered
  std::condition_variable cv;
  bool done = false;
  bool registered = false;  // in g_abandoned
  std::optional<Result<ExecutionOutcome>> result;
  std::mutex progress_mu;  // held while a progress event is forwarded; running_node, abandoned
  std::string running_node;
  bool abandoned = false;  // the caller's callbacks (and what they capture) are gone
};

// The execution left running after its node ignored an interrupt. One per process, whatever the
// executor: ComfyUI's state is global, and several bridge handles share one ComfyUI.
std::mutex g_abandoned_mu;
std::condition_variable g_abandoned_cv;
std::shared_ptr<Attempt> g_abandoned;
std::atomic<bool> g_any_abandoned{false};  // lets the common case skip the lock

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
  std::lock_guard<std::mutex> lock(a.progress_mu);
  return a.running_node;
}

}  // namespace

Status WaitForAbandonedExecution(double seconds) {
  if (!g_any_abandoned.load()) return Status::Ok();
  std::unique_lock<std::mutex> lock(g_abandoned_mu);
  const auto idle = [] { return g_abandoned == nullptr; };
  if (g_abandoned_cv.wait_for(lock, std::chrono::duration<double>(std::max(0.0, seconds)), idle)) {
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
  const auto remaining = std::chrono::duration<double>(options.deadline - Clock::now()).count();
  DISCOMFORT_RETURN_IF_ERROR(
      WaitForAbandonedExecution(std::clamp(remaining, 0.0, options.grace_seconds)));
  if (Clock::now() >= options.deadline) {
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
    std::lock_guard<std::mutex> lock(raw->progress_mu);
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
      std::lock_guard<std::mutex> lock(attempt->mu);
      attempt->result = std::move(result);
      attempt->done = true;
      registered = attempt->registered;
    }
    attempt->cv.notify_all();
    if (registered) {
      std::lock_guard<std::mutex> lock(g_abandoned_mu);
      if (g_abandoned == attempt) {
        g_abandoned.reset();
        g_any_abandoned.store(false);
      }
      g_abandoned_cv.notify_all();
      spdlog::warn("[discomfort] the abandoned execution of {} returned",
                   attempt->request.workflow_name);
    }
  });

  enum class Reason { kNone, kTimeout, kCancel };
  Reason reason = Reason::kNone;
  Clock::time_point give_up, next_interrupt;
  std::unique_lock<std::mutex> lock(attempt->mu);
  while (!attempt->done) {
    const auto now = Clock::now();
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
      attempt->cv.wait_until(lock, wake);
      continue;
    }
    if (now >= give_up) break;
    if (now >= next_interrupt) {
      // Again and again: ComfyUI clears its flag when an execution starts, so one sent while
      // the prompt was still being validated would be lost.
      lock.unlock();
      executor.Interrupt();
      lock.lock();
      next_interrupt = Clock::now() + std::chrono::milliseconds(250);
      continue;
    }
    attempt->cv.wait_until(lock, std::min(give_up, next_interrupt));
  }

  if (attempt->done) {
    lock.unlock();
    worker.join();
    Result<ExecutionOutcome> result = std::move(*attempt->result);
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
    std::lock_guard<std::mutex> progress(attempt->progress_mu);
    attempt->abandoned = true;
    where.node_id = attempt->running_node;
  }
  where.class_type = ClassOf(attempt->request, where.node_id);
  {
    std::lock_guard<std::mutex> registry(g_abandoned_mu);
    g_abandoned = attempt;  // none other: executions wait for an abandoned one first
    g_any_abandoned.store(true);
  }
  attempt->registered = true;
  lock.unlock();
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
