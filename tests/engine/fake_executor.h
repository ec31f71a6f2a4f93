// A C++ stand-in for ComfyUI in engine tests: each call runs a callback over the request.
#pragma once

#include <functional>
#include <vector>

#include "engine/executor.h"

namespace discomfort::testing {

class FakeExecutor : public engine::Executor {
 public:
  using Body = std::function<Result<engine::ExecutionOutcome>(const engine::ExecutionRequest&)>;
  explicit FakeExecutor(Body body) : body_(std::move(body)) {}
  Result<engine::ExecutionOutcome> Execute(const engine::ExecutionRequest& request) override {
    requests.push_back(request);
    return body_(request);
  }
  void Interrupt() override { ++interrupts; }

  std::vector<engine::ExecutionRequest> requests;
  int interrupts = 0;

 private:
  Body body_;
};

}  // namespace discomfort::testing
