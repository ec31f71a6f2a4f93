// The loop: per iteration, each workflow in order; INPUT ports read the context, OUTPUT ports
// write it; a unique_id that is both carries state from iteration N to N+1.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/executor.h"
#include "graph/api_prompt.h"
#include "graph/status.h"
#include "storage/context.h"

namespace discomfort::engine {

// Context keys the engine sets before each iteration, readable by INPUT ports of those names.
inline constexpr const char* kIterationKey = "iteration";    // 0-based index
inline constexpr const char* kIterationsKey = "iterations";  // total count

struct Workflow {
  std::string name;        // file name, for messages
  nlohmann::json prompt;   // API format, DiscomfortPorts still in place
};

// A workflow made ready for execution once, reused every iteration.
struct PreparedWorkflow {
  std::string name;
  std::string slot;
  graph::PortSet ports;
  nlohmann::json executable_prompt;  // ports rewritten into loaders / savers
};

Result<PreparedWorkflow> PrepareWorkflow(const Workflow& workflow, size_t index,
                                         const nlohmann::json* object_info = nullptr);

struct IterationReport {
  int iteration = 0;
  double seconds = 0;
  std::vector<std::string> files;   // images written this iteration
  std::vector<NodeTiming> node_times;
};

struct LoopOptions {
  int iterations = 1;
  std::string output_dir;     // where IMAGE outputs go as PNG; empty: none written
  std::function<void(const IterationReport&)> on_iteration;
  const std::atomic<bool>* cancel = nullptr;  // checked between executions
};

struct LoopResult {
  int iterations_completed = 0;
  std::map<std::string, storage::Value> outputs;  // every OUTPUT unique_id -> final value
  std::map<std::string, std::vector<std::string>> files;  // unique_id -> last files written
  std::vector<IterationReport> reports;
};

class LoopRunner {
 public:
  LoopRunner(Executor& executor, storage::Context& context);

  // Runs `iterations` passes. An iteration's outputs reach the context only when all its
  // workflows succeeded, so an error leaves the context as of the last good iteration.
  Result<LoopResult> Run(const std::vector<PreparedWorkflow>& workflows, const LoopOptions& options);

 private:
  Executor& executor_;
  storage::Context& context_;
};

}  // namespace discomfort::engine
