// Per-node work of a large workflow spread over TBB's workers, with the outcome a serial loop
// would have: the error reported is the one of the lowest failing index.
#pragma once

#include <cstddef>
#include <exception>
#include <mutex>
#include <string>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_invoke.h>

#include "graph/status.h"

namespace discomfort::graph {

// Below this many items a loop stays on the calling thread: a typical workflow (tens of nodes)
// converts in well under a millisecond, less than waking the workers costs.
inline constexpr size_t kParallelMinItems = 256;
// Items per task: a few hundred microseconds of work each.
inline constexpr size_t kParallelGrain = 64;

namespace internal {
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
  tbb::parallel_for(tbb::blocked_range<size_t>(0, n, kParallelGrain),
                    [&](const tbb::blocked_range<size_t>& range) {
                      for (size_t i = range.begin(); i != range.end(); ++i) {
                        Status st = guarded(i);
                        if (st.ok()) continue;
                        std::lock_guard<std::mutex> lock(mu);
                        if (i < first_failure) {
                          first_failure = i;
                          failure = std::move(st);
                        }
                        return;  // the rest of this range cannot fail earlier
                      }
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
  tbb::parallel_invoke([&] { first_status = internal::Guarded(first); },
                       [&] { second_status = internal::Guarded(second); });
  return first_status.ok() ? second_status : first_status;
}

}  // namespace discomfort::graph
