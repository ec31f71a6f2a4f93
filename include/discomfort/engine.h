// discomfort::Engine: ComfyUI imported into this process as a library (no server, no HTTP), and
// the loops, plans and sweeps that run on it.
//
// Thread safety: one Engine per process (ComfyUI imports once; Create returns the same engine to
// every caller). Several threads may call Run / Sweep at once, each with its own Context: the
// engine runs one ComfyUI execution at a time (ComfyUI's executor state is global, and Python's
// interpreter lock serializes Python anyway), while everything around executions — preparing
// inputs, spilling and reloading context values, encoding PNGs, the callers' own work — runs in
// parallel. A run's results do not depend on what other threads run meanwhile.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "discomfort/context.h"
#include "discomfort/run.h"
#include "discomfort/status.h"
#include "discomfort/workflow_builder.h"

namespace discomfort {

enum class LogLevel { kDebug, kInfo, kWarning, kError };

struct EngineOptions {
  std::string comfyui_path;  // "": $COMFYUI_PATH, else ~/ComfyUI (v0.33.0; v0.8.0 works too)
  std::string work_dir;  // ComfyUI's output/temp/input/user folders; "": a per-process temp folder
  std::optional<bool> cpu;               // unset: CPU when torch sees no GPU
  bool verbose = false;                  // ComfyUI's own log and debug lines
  std::vector<std::string> extra_nodes;  // custom-node files or packages to load
  // Receives every log line of Discomfort and ComfyUI (default: stderr). Called from any thread.
  std::function<void(LogLevel level, const std::string& message)> log_sink;
};

class Engine {
 public:
  // Embeds Python (the venv the library was built with, or $DISCOMFORT_PYTHON) and imports ComfyUI
  // once per process; later calls return the same engine (kInvalidArgument if they name another
  // ComfyUI). Fails with kPython when the process's libtorch is not the one the library was built
  // against (one libtorch per process is what makes handing tensors by pointer possible).
  static Result<std::shared_ptr<Engine>> Create(const EngineOptions& options = {});
  ~Engine();

  // {"comfyui_path", "comfyui_version", "device", "cpu", "node_count", ...}
  nlohmann::json Info() const;
  // Node definitions in the shape of ComfyUI's /object_info.
  Result<nlohmann::json> ObjectInfo();
  Status LoadNodes(const std::string& path);
  // The API prompt of a workflow (UI workflows converted natively).
  Result<nlohmann::json> ToApi(const Workflow& workflow);

  // Runs workflows or a plan in `context`: an OUTPUT and an INPUT port with the same unique_id
  // carry state between iterations. A failed iteration commits nothing (the context keeps the
  // last good one); errors name the iteration, stage, workflow, node, input or port.
  Result<RunResult> Run(Context& context, const RunOptions& options);
  // Independent runs, one per point, each in a child context seeded from `parent` (set_values are
  // put into `parent` first). Per-point
  // failures are in the results; cancellation ends the sweep with kCancelled.
  Result<SweepResult> Sweep(Context& parent, const SweepOptions& options);
  // Stops the execution running now at its next node (from any thread).
  void Interrupt();
  // A builder checked against this ComfyUI's node definitions (discomfort/workflow_builder.h).
  Result<WorkflowBuilder> NewWorkflow();

  struct Impl;

 private:
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace discomfort
