// The one orchestration path. What a user asks for — workflows or a loop plan, iterations, an
// `until`, input values, a sweep grid — becomes a ready run here: workflows read and converted,
// ports typed by the node definitions, stages prepared, inputs seeded into the context, conditions
// parsed once. The CLI, the Python module and the C++ SDK each fill a request and call these
// functions, so the three cannot drift apart.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "discomfort/status.h"
#include "engine/condition.h"
#include "engine/loop.h"
#include "engine/plan.h"
#include "engine/sweep.h"
#include "engine/trace.h"
#include "engine/workflow_resolver.h"
#include "storage/context.h"

namespace discomfort::engine {

// A workflow by path (read through the resolver) or as a document already in memory.
struct WorkflowSpec {
  std::string path;
  std::optional<nlohmann::json> document;  // UI or API format; set: `path` is not read
  std::string name;                        // for messages; default: the file name of `path`

  static WorkflowSpec File(std::string path) { return {std::move(path), std::nullopt, {}}; }
  static WorkflowSpec Document(std::string name, nlohmann::json document) {
    return {{}, std::move(document), std::move(name)};
  }
  std::string DisplayName() const;
};

// A value written as text (CLI --set, plan inputs): a JSON literal (42, 1.5, true, "text",
// [1,2]); "@image.png" (decoded into an IMAGE tensor); "@values.json" (its JSON); anything else is
// a string. Relative file names are relative to `base_dir`.
Result<storage::Value> ParseInputText(const std::string& text, const std::string& base_dir,
                                      storage::FileSystem& fs);
// A plan's `inputs` value: JSON as it is, except strings starting with '@', which load files as
// in ParseInputText.
Result<storage::Value> ParseInputJson(const nlohmann::json& value, const std::string& base_dir,
                                      storage::FileSystem& fs);
// "unique_id=VALUE" items (CLI --set) into the context; errors name the port.
Status PutSetValues(storage::Context& context, const std::vector<std::string>& items,
                    storage::FileSystem& fs);

struct RunRequest {
  // Either workflows (one stage "main", run in order each iteration) or a loop plan.
  std::vector<WorkflowSpec> workflows;
  std::optional<nlohmann::json> plan;  // a plan document (engine/plan.h); or:
  std::string plan_path;               // a plan file (read when `plan` is unset)
  std::string plan_base_dir;           // relative paths in the plan; default: plan_path's folder

  std::optional<int> iterations;             // unset: the plan's max_iterations, else 1
  std::string until;                         // an expression; overrides the plan's; "" keeps it
  std::optional<Condition> until_condition;  // a C++/Python callback; overrides both
  std::vector<std::string> set_values;       // "unique_id=VALUE", put before the run
  bool seed_inputs = true;  // put the plan's inputs and set_values (false when resuming)

  std::optional<double> iteration_timeout;  // unset: the plan's, else none
  std::optional<double> interrupt_grace;    // unset: the plan's, else 10 s
  std::optional<int> save_every;            // unset: every iteration
  std::optional<double> max_vram_gb;  // the context's device budget; unset: the plan's, else kept
  std::string output_dir;             // IMAGE outputs as PNG; "" none

  int checkpoint_every = 0;
  std::string checkpoint_dir;
  nlohmann::json checkpoint_manifest = nlohmann::json::object();
  std::string resume_from;      // a checkpoint folder: its snapshot is loaded, the run continues
  std::string trace_path;       // a Chrome trace of the run (engine/trace.h); "" none
  bool exact_executor = false;  // ComfyUI's full round every iteration (ExecutionRequest::exact)
};

struct PreparedRun {
  std::vector<Stage> stages;
  LoopOptions
      options;  // iterations, until, limits, output, checkpoints; callbacks left for the caller
  bool from_plan = false;
  // With trace_path: the open trace (options.trace points into it), recording the context's I/O
  // until it is closed or destroyed. Destroy it before the context.
  std::unique_ptr<TraceSession> trace;
};

// Reads and prepares everything; on success the context holds the seeded inputs (or the resumed
// checkpoint). Port types come from the resolver's node definitions when it has them.
Result<PreparedRun> PrepareRun(const RunRequest& request, WorkflowResolver& resolver,
                               storage::Context& context);

// Prepares workflows as one stage's (slots numbered from `first_index`).
Result<std::vector<PreparedWorkflow>> PrepareWorkflows(const std::vector<WorkflowSpec>& workflows,
                                                       WorkflowResolver& resolver,
                                                       size_t first_index = 0);

struct SweepRequest {
  std::vector<WorkflowSpec> workflows;
  std::vector<GridAxis> grid;       // a product, first axis slowest; or:
  std::vector<std::string> images;  // PNG files, one point each; or:
  std::string images_dir;           // every .png of a folder, by name; or:
  // Points made earlier by MakeSweepPoints (a distributed sweep hands each worker its own), kept
  // with their indices so files get the names they have in the whole sweep.
  std::vector<SweepPoint> points;
  std::optional<Shard> shard;           // this shard's points only (names unchanged)
  std::vector<std::string> set_values;  // "unique_id=VALUE" shared by every point
  std::string trace_path;               // a Chrome trace of the sweep; "" none
  SweepOptions options;
};

struct PreparedSweep {
  std::vector<PreparedWorkflow> workflows;
  std::vector<SweepPoint> points;  // already sharded
  SweepOptions options;
  std::unique_ptr<TraceSession> trace;  // with trace_path (options.trace points into it)
};

// The points, the prepared workflows; set_values go into `parent`, which seeds every point.
Result<PreparedSweep> PrepareSweep(const SweepRequest& request, WorkflowResolver& resolver,
                                   storage::Context& parent);

}  // namespace discomfort::engine
