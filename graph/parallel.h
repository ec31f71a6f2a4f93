// Per-node work of a large workflow spread over TBB's workers, with the outcome a serial loop
// would have: the error reported is the one of the lowest failing index.
#pragma once

#include <algorithm>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <string>

#include <tbb/task_arena.h>
#include <tbb/task_group.h>

#include "discomfort/status.h"

namespace discomfort::graph {

// Below this many items a loop stays on the calling thread: a typical workflow (tens of nodes)
// converts in well under a millisecond, less than waking the workers costs.
inline constexpr size_t kParallelMinItems = 256;
// Items per task: a few hundred microseconds of work each.
inline constexpr size_t kParallelGrain = 64;

namespace internal {

// libtbb is not instrumented, so ThreadSanitizer cannot see that spawning a task publishes what
// the spawner wrote, nor that wait() publishes what the tasks wrote. These annotations say so
// (no-ops in other builds); races between the tasks themselves are still reported.
#if defined(__SANITIZE_THREAD__)
#define DISCOMFORT_TSAN_ANNOTATE 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define DISCOMFORT_TSAN_ANNOTATE 1
#endif
#endif
// The sync object is a global: a task must not read its captures before Receive.
inline int handoff_token = 0;
#ifdef DISCOMFORT_TSAN_ANNOTATE
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
inline void Publish() { __tsan_release(&handoff_token); }
inline void Receive() { __tsan_acquire(&handoff_token); }
#else
inline void Publish() {}
inline void Receive() {}
#endif

// Runs `work` so that a thread waiting inside it only picks up the tasks it spawned. Without
// this, wait() may run any task of the arena, such as a sweep's execute stage, which takes the
// GIL: a caller converting a workflow while holding the GIL would deadlock on it.
template <typename Work>
void Isolated(const Work& work) {
  tbb::this_task_arena::isolate(work);
}

// Spawns `task` on `group`. A std::function, so the task type TSan reports (and the suppression
// for TBB's copy of it in tests/reliability/sanitizers/tsan.supp matches) has a short name.
inline void Spawn(tbb::task_group& group, std::function<void()> task) {
  Publish();  // what the caller wrote so far, `task`'s captures included
  group.run(std::move(task));
}

template <typename Job, typename... Args>
Status Guarded(const Job& job, Args... args) {
  try {
    return job(args...);
  } catch (const std::exception& e) {
    return Status(ErrorCode::kInternal, std::string("unexpected exception: ") + e.what());
  }
}
}  // namespace internal

// Calls `body(i)` (returning Status) for every i in [0, n). Bodies must only write to their own
// item's slot: items after a failing one may still run. Returns the lowest failing index's
// Status (its index in `*failed_at` when given, else n); an exception escaping a body becomes
// kInternal (the task boundary stops it).
template <typename Body>
Status ForEachIndex(size_t n, const Body& body, size_t* failed_at = nullptr) {
  auto guarded = [&body](size_t i) -> Status { return internal::Guarded(body, i); };
  if (failed_at != nullptr) *failed_at = n;
  if (n < kParallelMinItems) {
    for (size_t i = 0; i < n; ++i) {
      Status st = guarded(i);
      if (st.ok()) continue;
      if (failed_at != nullptr) *failed_at = i;
      return st;
    }
    return Status::Ok();
  }
  std::mutex mu;
  size_t first_failure = n;
  Status failure;
  auto run_chunk = [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      Status st = guarded(i);
      if (st.ok()) continue;
      std::lock_guard<std::mutex> lock(mu);
      if (i < first_failure) {
        first_failure = i;
        failure = std::move(st);
      }
      return;  // the rest of this chunk cannot fail earlier
    }
  };
  // Fixed chunks on a task_group (the calling thread takes the first and helps while it waits):
  // per-node work is even, so there is nothing for an adaptive partitioner to balance.
  internal::Isolated([&] {
    tbb::task_group chunks;
    for (size_t begin = kParallelGrain; begin < n; begin += kParallelGrain) {
      internal::Spawn(chunks, [&run_chunk, begin, n] {
        internal::Receive();
        run_chunk(begin, std::min(n, begin + kParallelGrain));
        internal::Publish();
      });
    }
    run_chunk(0, std::min(n, kParallelGrain));
    chunks.wait();
    internal::Receive();
  });
  if (failed_at != nullptr) *failed_at = first_failure;
  return failure;
}

// Runs two independent jobs (returning Status), at the same time when `concurrently`. Returns the
// first job's failure if it failed, else the second's: the order a serial run reports them in.
template <typename First, typename Second>
Status BothJobs(bool concurrently, const First& first, const Second& second) {
  if (!concurrently) {
    Status st = internal::Guarded(first);
    return st.ok() ? internal::Guarded(second) : st;
  }
  Status first_status, second_status;
  internal::Isolated([&] {
    tbb::task_group other;
    internal::Spawn(other, [&] {
      internal::Receive();
      second_status = internal::Guarded(second);
      internal::Publish();
    });
    first_status = internal::Guarded(first);
    other.wait();
    internal::Receive();
  });
  return first_status.ok() ? second_status : first_status;
}

}  // namespace discomfort::graph
