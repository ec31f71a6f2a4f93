// The loop: per iteration, each stage whose `when` holds runs its workflows in order; INPUT
// ports read the context, OUTPUT ports write it; a unique_id that is both carries state from
// iteration N to N+1. An `until` condition, checked after each iteration, ends the loop early.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "discomfort/status.h"
#include "engine/checkpoint.h"
#include "engine/condition.h"
#include "engine/executor.h"
#include "engine/trace.h"
#include "graph/api_prompt.h"
#include "storage/context.h"
#include "storage/filesystem.h"

namespace discomfort::engine {

// Context keys the engine sets before each iteration, readable by INPUT ports of those names.
inline constexpr const char* kIterationKey = "iteration";    // 0-based index
inline constexpr const char* kIterationsKey = "iterations";  // the maximum count

struct Workflow {
  std::string name;       // file name, for messages
  nlohmann::json prompt;  // API format, DiscomfortPorts still in place
};

// A workflow made ready for execution once, reused every iteration.
struct PreparedWorkflow {
  std::string name;
  std::string slot;
  graph::PortSet ports;
  // Ports rewritten into loaders / savers; shared by every request of every iteration.
  std::shared_ptr<const nlohmann::json> executable_prompt;
  // The prompt as given (ports in place): what the recipes of its OUTPUT values are pruned from.
  std::shared_ptr<const nlohmann::json> source_prompt;
};

Result<PreparedWorkflow> PrepareWorkflow(const Workflow& workflow, size_t index,
                                         const nlohmann::json* object_info = nullptr);

enum class ErrorPolicy { kStop, kSkip, kRetry };

struct Stage {
  std::string name;
  std::vector<PreparedWorkflow> workflows;
  std::optional<Condition> when;  // unset: every iteration
  ErrorPolicy on_error = ErrorPolicy::kStop;
  int retries = 0;  // extra attempts with kRetry
};

struct IterationReport {
  int iteration = 0;
  double seconds = 0;
  std::vector<std::string> files;  // images written this iteration
  std::vector<NodeTiming> node_times;
  std::vector<std::string> stages_run;
  std::vector<std::string> stages_failed;  // skipped after an error (kSkip / retries exhausted)
};

struct LoopOptions {
  int iterations = 1;              // the maximum with `until`
  std::optional<Condition> until;  // checked after each iteration
  std::string output_dir;          // IMAGE outputs as PNG; empty: none written
  // With output_dir: IMAGE outputs are written at every K-th iteration ((it + 1) % K == 0) and
  // always at the last iteration the run finishes (the count, or where `until` stopped it);
  // 0 writes the last one only. A cancelled or failed run keeps the files written before it.
  int save_every = 1;
  std::function<void(const IterationReport&)> on_iteration;
  // LoopResult::reports keeps the last `max_reports` iterations' reports; older ones were
  // delivered through on_iteration / on_event only. Unattended runs of many thousands of
  // iterations set a bound (the CLI keeps none), so memory does not grow with the count.
  size_t max_reports = std::numeric_limits<size_t>::max();
  // JSON events for monitors: run_start, iteration_start, workflow_done, stage_skipped,
  // stage_failed, iteration_done, run_done, error; recipe_run (an INPUT port read a recipe),
  // recipe_skipped (an OUTPUT of a by-reference type got no recipe, and why); and the context's
  // model_spill / model_restore (storage::Context::AddEventObserver).
  std::function<void(const nlohmann::json&)> on_event;
  const std::atomic<bool>* cancel = nullptr;  // checked between executions
  // Seconds an iteration (all its stages and retries) may run; 0: no limit. Past it, ComfyUI is
  // interrupted and the run ends with kTimeout naming the iteration, workflow and node; the
  // context keeps the last finished iteration (and a checkpoint is saved, as on cancel).
  // Executions then run on a helper thread (engine/timed_execution.h), and a set `cancel` also
  // interrupts a running execution.
  double iteration_timeout = 0;
  // How long a node may ignore that interrupt before the run ends anyway, leaving the node
  // running in the background (engine/timed_execution.h says what that means).
  double interrupt_grace = 10;
  // The clock iteration deadlines are measured on; unset: std::chrono::steady_clock (tests inject
  // one that jumps).
  std::function<std::chrono::steady_clock::time_point()> clock;
  int first_iteration = 0;  // > 0 when resuming
  // Every K finished iterations (and when cancelled) the context is saved to
  // `checkpoint_dir`/context with `checkpoint_dir`/run.json = checkpoint_manifest plus
  // {"next_iteration": N}; `discomfort resume` continues from there.
  int checkpoint_every = 0;
  std::string checkpoint_dir;
  nlohmann::json checkpoint_manifest = nlohmann::json::object();
  // Where images and checkpoints are written; null: the real file system. Not owned.
  storage::FileSystem* fs = nullptr;
  // Spans of iterations, stages, workflows, nodes and PNG encodes; null: no trace. Not owned.
  TraceWriter* trace = nullptr;
  // ExecutionRequest::exact for every execution (--exact-executor).
  bool exact_executor = false;
};

struct LoopResult {
  int iterations_completed = 0;  // index of the next iteration to run
  bool stopped_by_until = false;
  std::map<std::string, storage::Value> outputs;          // OUTPUT unique_id -> final value
  std::map<std::string, std::vector<std::string>> files;  // unique_id -> last files written
  std::vector<IterationReport> reports;
};

class LoopRunner {
 public:
  LoopRunner(Executor& executor, storage::Context& context);

  // One stage running `workflows` every iteration.
  Result<LoopResult> Run(const std::vector<PreparedWorkflow>& workflows,
                         const LoopOptions& options);
  // An iteration's outputs reach the context only when it finished, so an error leaves the
  // context as of the last good iteration. The context values an iteration reads stay pinned
  // (never spilled) while the workflows that read them run. An INPUT port that reads a recipe
  // runs it (engine/recipes.h) and the object replaces the recipe in the context at once, so it
  // runs once per run; objects of by-reference types (graph::PassByForType) reach the context
  // carrying the recipe that recreates them.
  Result<LoopResult> RunStages(const std::vector<Stage>& stages, const LoopOptions& options);

 private:
  Executor& executor_;
  storage::Context& context_;
};

}  // namespace discomfort::engine
