// The per-iteration timeout: an execution runs on a helper thread while the loop's thread
// watches the clock, so the loop can interrupt ComfyUI at the deadline and, when a node ignores
// the interrupt, give up on it instead of waiting forever.
//
// What happens to a node that ignores the interrupt (a pure-Python sleep, a C call that never
// checks): after `grace_seconds` the loop returns a kTimeout error while that node still runs on
// the helper thread. Nothing it produces reaches the context (an iteration's outputs are
// committed only when it finished), so the context stays at the last finished iteration. The
// execution is "abandoned": nothing else executes in this process until it returns (ComfyUI's
// state is global, and several bridge handles share one ComfyUI); LoopRunner waits for it before
// each execution (up to the grace period, or the iteration's deadline) and otherwise fails with
// kTimeout naming the node. The executor, and the inputs it was given (held by the request), stay
// alive until then; the executor object must outlive it. A process may simply exit (the CLI
// does, through _Exit) while the node still runs.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>

#include "discomfort/status.h"
#include "engine/executor.h"

namespace discomfort::engine {

struct DeadlineOptions {
  std::chrono::steady_clock::time_point deadline;
  double limit_seconds = 0;   // the configured limit, for messages
  double grace_seconds = 10;  // how long a node may ignore the interrupt before it is abandoned
  // Checked while waiting: a cancel gets the same interrupt-then-grace treatment (kCancelled).
  const std::atomic<bool>* cancel = nullptr;
  // The clock `deadline` is measured on; unset: std::chrono::steady_clock. Tests inject one that
  // jumps, so deadlines pass without waiting for them.
  std::function<std::chrono::steady_clock::time_point()> now;
};

// Runs executor.Execute(request) and returns its result, unless the deadline passes first:
// then executor.Interrupt() (repeated every 250 ms, since ComfyUI clears the flag when an
// execution starts) and kTimeout naming the node that was running. Safe to call with a deadline
// in the past (kTimeout without starting).
Result<ExecutionOutcome> ExecuteWithDeadline(Executor& executor, ExecutionRequest request,
                                             const DeadlineOptions& options);

// Ok when no abandoned execution runs in this process (waiting up to `seconds` for one to end);
// otherwise kTimeout naming its workflow and node.
Status WaitForAbandonedExecution(double seconds);

}  // namespace discomfort::engine
