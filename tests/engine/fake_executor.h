// A C++ stand-in for ComfyUI in engine tests: each call runs a callback over the request.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <vector>

#include "engine/executor.h"

namespace discomfort::testing {

class FakeExecutor : public engine::Executor {
 public:
  using Body = std::function<Result<engine::ExecutionOutcome>(const engine::ExecutionRequest&)>;
  explicit FakeExecutor(Body body) : body_(std::move(body)) {}
  // With a per-iteration timeout the engine calls this on a helper thread.
  Result<engine::ExecutionOutcome> Execute(const engine::ExecutionRequest& request) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests.push_back(request);
    }
    interrupted.store(false);  // as ComfyUI clears its flag when an execution starts
    return body_(request);
  }
  // From any thread, like the bridge's: bodies that model an interruptible node poll `interrupted`.
  void Interrupt() override {
    interrupted.store(true);
    interrupts.fetch_add(1);
  }

  std::vector<engine::ExecutionRequest> requests;  // read when no execution runs
  std::atomic<int> interrupts{0};
  std::atomic<bool> interrupted{false};

 private:
  std::mutex mu_;
  Body body_;
};

}  // namespace discomfort::testing
