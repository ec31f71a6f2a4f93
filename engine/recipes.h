// Recipes: values passed by reference, as the original Discomfort passed MODEL, CLIP, VAE,
// CONDITIONING and CONTROL_NET. A recipe is an API prompt with one OUTPUT DiscomfortPort: the
// sub-workflow that recreates the value. The loop attaches one to every object an OUTPUT port of
// such a type produces (so a snapshot can persist the object and the RAM budget may drop it), and
// runs one when an INPUT port reads a recipe instead of a value.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "discomfort/status.h"
#include "engine/executor.h"
#include "storage/value.h"

namespace discomfort::engine {

// The executor slot every recipe runs in: one ComfyUI cache for all of them, so the recipes of one
// checkpoint's MODEL, CLIP and VAE (each pruned to the same loader) read its file once. The
// bridge's Python side names it too (discomfort_bridge/model_memory.py).
inline constexpr char kRecipeSlot[] = "discomfort:recipes";

struct BuiltRecipe {
  nlohmann::json prompt;        // API prompt, one OUTPUT port (`unique_id`), no INPUT ports
  double rebuild_seconds = -1;  // the nodes' last run times together; < 0: unknown
};

// The recipe of OUTPUT port `unique_id` of `source_prompt` (an API prompt with its
// DiscomfortPorts): the port and every node it depends on (graph::PruneToOutput), each INPUT port
// among them replaced by the value the workflow read from it (`inputs`): a JSON value frozen in as
// a constant, an object that carries a recipe by that recipe's nodes. A kTypeMismatch error names
// the INPUT port whose value cannot be frozen in: a tensor, an object without a recipe.
// `node_seconds` (node id -> seconds it took when it last ran) gives the rebuild time.
Result<BuiltRecipe> BuildRecipe(const nlohmann::json& source_prompt, const std::string& unique_id,
                                const std::map<std::string, storage::Value>& inputs,
                                const std::map<std::string, double>& node_seconds);

struct RecipeRun {
  storage::Value value;  // the object, carrying its recipe and its rebuild time
  double seconds = 0;    // wall time of this run
};

// Runs the recipe `value` (ValueKind::kRecipe) stored under `unique_id`: its OUTPUT port for that
// unique_id (or its only OUTPUT port) gives the value. `read_input` supplies the recipe's own
// INPUT ports, if it has any (recipes written by hand); `execute` runs the request (the loop
// passes its deadline-aware execution). Errors name the port and say it was its recipe that failed.
// The rebuild time is what every node of the recipe took when it last ran: a node ComfyUI's cache
// served this time (the checkpoint loader another recipe ran a moment ago) counts with the time
// `node_seconds` remembers for it (keyed by the node's id and JSON), which this run updates.
Result<RecipeRun> RunRecipe(
    const std::string& unique_id, const storage::Value& value, bool exact,
    const std::function<Result<storage::Value>(const std::string& unique_id)>& read_input,
    const std::function<Result<ExecutionOutcome>(ExecutionRequest request)>& execute,
    std::map<std::string, double>* node_seconds);

struct PreparedWorkflow;  // engine/loop.h

// A run's recipes for the values its OUTPUT ports produce: when each node last ran (the rebuild
// time), and each port's recipe while the inputs it froze in keep their versions (a loop that
// re-runs a loader workflow every iteration prunes it once).
class RecipeBook {
 public:
  void RecordNodeTimes(const std::string& slot, const std::vector<NodeTiming>& times);
  // Whether any OUTPUT port of `wf` passes by reference (graph::PassByForType).
  static bool HasByReferenceOutputs(const PreparedWorkflow& wf);
  // `value` as produced by `wf`'s OUTPUT port `unique_id`, carrying its recipe when the port's
  // type passes by reference and the value is an object. When it gets none, `*skipped` is set
  // to a recipe_skipped event the first time for this port (later times stay quiet).
  storage::Value Attach(const PreparedWorkflow& wf, const std::string& unique_id,
                        const storage::Value& value,
                        const std::map<std::string, storage::Value>& inputs,
                        const std::map<std::string, uint64_t>& versions, nlohmann::json* skipped);
  // RunRecipe's memory of the recipe slot's node times.
  std::map<std::string, double>* recipe_node_seconds() { return &recipe_node_seconds_; }

 private:
  std::map<std::string, double> recipe_node_seconds_;
  struct Cached {
    std::map<std::string, uint64_t> versions;
    std::shared_ptr<const nlohmann::json> prompt;  // null: no recipe (reason in `why`)
    double rebuild_seconds = -1;
    std::string why;
  };
  std::map<std::string, std::map<std::string, double>> node_seconds_;  // slot -> node -> s
  std::map<std::string, Cached> cached_;                               // slot + "\n" + unique_id
};

}  // namespace discomfort::engine
