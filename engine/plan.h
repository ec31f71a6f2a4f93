// Loop plans: the JSON structure behind `discomfort run --plan PLAN.json` (and the same
// structure in the C++ and Python APIs).
//
// {
//   "max_iterations": 20,                       // required, >= 0
//   "until": "score > 0.9 && iteration >= 3",   // optional, checked after each iteration
//   "inputs": {"prompt": "a fox", "seed": 1},   // optional, put into the context first
//   "iteration_timeout": 600,                   // optional seconds per iteration (LoopOptions)
//   "interrupt_grace": 10,                      // optional seconds a node may ignore the interrupt
//   "max_vram_gb": 20,                          // optional budget for the context's GPU tensors
//   "stages": [                                 // required, run in order every iteration
//     {"name": "generate", "workflows": ["gen.json", "score.json"],
//      "when": "iteration % 2 == 0",            // optional
//      "on_error": "stop" | "skip" | "retry",   // optional, default "stop"
//      "retries": 2}                            // with "retry": extra attempts, then stop
//   ]
// }
// Workflow paths are relative to the plan file's folder.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "discomfort/status.h"
#include "engine/condition.h"
#include "engine/loop.h"

namespace discomfort::engine {

struct StageSpec {
  std::string name;
  std::vector<std::string> workflows;  // resolved paths
  std::optional<Condition> when;       // unset: always (parsed once, by ParseLoopPlan)
  ErrorPolicy on_error = ErrorPolicy::kStop;
  int retries = 0;
};

struct LoopPlan {
  int max_iterations = 1;
  std::optional<Condition> until;  // unset: run max_iterations (parsed once, by ParseLoopPlan)
  nlohmann::json inputs = nlohmann::json::object();
  std::vector<StageSpec> stages;
  double iteration_timeout = 0;  // 0: none; copy into LoopOptions
  double interrupt_grace = 10;
  std::optional<double> max_vram_gb;  // the context's budget for device tensors (GiB); unset: none
};

// Checks the structure and the condition syntax; errors carry a JSON pointer into the plan.
Result<LoopPlan> ParseLoopPlan(const nlohmann::json& plan, const std::string& base_dir);
nlohmann::json LoopPlanToJson(const LoopPlan& plan);

// Builds runnable stages from a plan, given a loader that reads a workflow file into an API prompt.
using WorkflowLoader = std::function<Result<nlohmann::json>(const std::string& path)>;
// `object_info` (may be null) types the ports, so context values are checked against them.
Result<std::vector<Stage>> PrepareStages(const LoopPlan& plan, const WorkflowLoader& load,
                                         const nlohmann::json* object_info = nullptr);

}  // namespace discomfort::engine
