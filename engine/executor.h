// The engine's view of whatever runs a prompt: bridge/ implements it with ComfyUI's
// PromptExecutor; tests may use a C++ fake. One Execute at a time (ComfyUI's state is global).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "discomfort/status.h"
#include "storage/value.h"

namespace discomfort::engine {

struct ExecutionRequest {
  // Which long-lived executor runs it: one per workflow, so each keeps its node cache
  // (a loaded checkpoint) across iterations.
  std::string slot;
  std::string workflow_name;  // for error messages
  // API format with ports already rewritten; shared with the PreparedWorkflow (read-only), so a
  // request costs no copy of the prompt.
  std::shared_ptr<const nlohmann::json> prompt;
  std::map<std::string, storage::Value> inputs;  // INPUT port unique_id -> value
  std::map<std::string, uint64_t> versions;      // unique_id -> context version (cache key)
  // Live progress while the prompt runs: ("node_start", {"node"}), ("progress", {"node", "value",
  // "max"}), ("cached", {"nodes"}). Called on the executing thread; must return quickly.
  std::function<void(const std::string& event, const nlohmann::json& data)> on_progress;
  // ComfyUI's full prompt round every time (validation, cache keys of every node, the execution
  // list) instead of the steady-state path that, after the first iteration, runs only the nodes
  // whose inputs changed. Both give the same results; this one is for comparison and doubt.
  bool exact = false;
};

struct NodeTiming {
  std::string node_id;
  double seconds = 0;
};

struct ExecutionOutcome {
  std::map<std::string, storage::Value> outputs;  // OUTPUT port unique_id -> value
  nlohmann::json ui = nlohmann::json::object();   // ComfyUI's history outputs per node
  double seconds = 0;
  std::vector<NodeTiming> node_times;
};

class Executor {
 public:
  virtual ~Executor() = default;
  // Validation and execution failures come back as Status (kValidation / kExecution /
  // kCancelled) naming the node, its class and input.
  virtual Result<ExecutionOutcome> Execute(const ExecutionRequest& request) = 0;
  // Asks the running execution to stop at the next node. Safe from any thread.
  virtual void Interrupt() = 0;
  // Lets go of what a slot caches (its nodes' outputs and objects): the next execution there runs
  // every node again. Waits for a running execution. An executor that caches nothing ignores it.
  virtual void ResetSlot(const std::string& slot) {}
};

}  // namespace discomfort::engine
