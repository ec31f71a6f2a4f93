#include "engine/recipes.h"

#include <chrono>
#include <set>
#include <utility>

#include "engine/loop.h"
#include "engine/port_types.h"
#include "graph/api_prompt.h"
#include "graph/prune.h"
#include "graph/workflow.h"
#include "graph/workflow_ports.h"

namespace discomfort::engine {
namespace {

using nlohmann::json;

Status NoRecipe(const std::string& unique_id, const graph::Port& input, const std::string& why) {
  ErrorLocation where;
  where.port = input.unique_id;
  where.node_id = input.node_id;
  where.class_type = graph::kPortClass;
  return Status(ErrorCode::kTypeMismatch,
                "no recipe for '" + unique_id + "': it depends on INPUT port '" + input.unique_id +
                    "', which read " + why + " (only JSON values and objects with a recipe can " +
                    "be frozen into one)",
                where);
}

// Every input of every node that links to `node_id` gets `replacement` instead.
void ReplaceLinksTo(json& prompt, const std::string& node_id, const json& replacement) {
  for (auto& [_, node] : prompt.items()) {
    if (!node.contains("inputs") || !node["inputs"].is_object()) continue;
    for (auto& [name, value] : node["inputs"].items()) {
      auto link = graph::AsLinkView(value);
      if (link && *link->node_id == node_id) value = replacement;
    }
  }
}

// The nodes of `sub` (another value's recipe) copied into `prompt` under ids prefixed with
// `prefix`, without its OUTPUT port for `unique_id`; returns the link that fed that port.
Result<json> StitchIn(json& prompt, const json& sub, const std::string& unique_id,
                      const std::string& prefix) {
  if (graph::DetectFormat(sub) != graph::WorkflowFormat::kApi) {
    return Status(ErrorCode::kInvalidArgument, "its recipe is not an API prompt");
  }
  DISCOMFORT_ASSIGN_OR_RETURN(graph::PortSet ports, graph::DiscoverPorts(sub));
  const graph::Port* out = ports.FindOutput(unique_id);
  if (out == nullptr && ports.outputs.size() == 1) out = &ports.outputs.front();
  if (out == nullptr || !out->source) {
    return Status(ErrorCode::kInvalidArgument,
                  "its recipe has no OUTPUT port '" + unique_id + "' fed by a node");
  }
  for (const auto& [id, node] : sub.items()) {
    if (id == out->node_id) continue;
    json copy = node;
    if (copy.contains("inputs") && copy["inputs"].is_object()) {
      for (auto& [name, value] : copy["inputs"].items()) {
        if (auto link = graph::AsLink(value)) {
          value = graph::MakeLink({prefix + link->node_id, link->slot});
        }
      }
    }
    prompt[prefix + id] = std::move(copy);
  }
  return graph::MakeLink({prefix + out->source->node_id, out->source->slot});
}

}  // namespace

Result<BuiltRecipe> BuildRecipe(const json& source_prompt, const std::string& unique_id,
                                const std::map<std::string, storage::Value>& inputs,
                                const std::map<std::string, double>& node_seconds) {
  DISCOMFORT_ASSIGN_OR_RETURN(json prompt, graph::PruneToOutput(source_prompt, unique_id));
  DISCOMFORT_ASSIGN_OR_RETURN(graph::PortSet ports, graph::DiscoverPorts(prompt));
  BuiltRecipe built;
  double seconds = 0;
  bool known = true;
  for (const auto& [id, node] : prompt.items()) {
    if (node.value("class_type", "") == graph::kPortClass) continue;
    auto time = node_seconds.find(id);
    if (time == node_seconds.end()) {
      known = false;
    } else {
      seconds += time->second;
    }
  }
  for (const graph::Port& input : ports.inputs) {
    auto found = inputs.find(input.unique_id);
    if (found == inputs.end()) return NoRecipe(unique_id, input, "no value");
    const storage::Value& value = found->second;
    json replacement;
    if (value.is_json()) {
      if (graph::IsLink(value.json())) {
        return NoRecipe(unique_id, input, "a JSON value shaped like a link");
      }
      replacement = value.json();
    } else if (value.is_host() && value.has_recipe()) {
      auto stitched = StitchIn(prompt, value.recipe(), input.unique_id, input.node_id + ".");
      if (!stitched.ok())
        return NoRecipe(unique_id, input, "an object whose recipe " + stitched.status().message());
      replacement = std::move(stitched).value();
      if (value.rebuild_seconds() >= 0) {
        seconds += value.rebuild_seconds();
      } else {
        known = false;
      }
    } else {
      return NoRecipe(unique_id, input, DescribeValueType(value));
    }
    ReplaceLinksTo(prompt, input.node_id, replacement);
    prompt.erase(input.node_id);
  }
  built.prompt = std::move(prompt);
  built.rebuild_seconds = known ? seconds : -1;
  return built;
}

Result<RecipeRun> RunRecipe(
    const std::string& unique_id, const storage::Value& value, bool exact,
    const std::function<Result<storage::Value>(const std::string& unique_id)>& read_input,
    const std::function<Result<ExecutionOutcome>(ExecutionRequest request)>& execute,
    std::map<std::string, double>* node_seconds) {
  const std::string name = "recipe of '" + unique_id + "'";
  ErrorLocation where;
  where.port = unique_id;
  where.workflow = name;
  auto fail = [&](const Status& st) {
    Status out(st.code(), "running the " + name + ": " + st.message(), st.where());
    if (out.where().port.empty()) out.where().port = unique_id;
    if (out.where().workflow.empty()) out.where().workflow = name;
    out.set_traceback(st.traceback());
    return out;
  };
  const json& recipe = value.json();
  if (graph::DetectFormat(recipe) != graph::WorkflowFormat::kApi) {
    return Status(ErrorCode::kInvalidArgument,
                  "the " + name +
                      " is not an API-format prompt (a UI workflow from the web UI must be "
                      "converted first: `discomfort convert`)",
                  where);
  }
  auto prepared = PrepareWorkflow({name, recipe}, 0);
  if (!prepared.ok()) return fail(prepared.status());
  std::string output = unique_id;
  if (prepared->ports.FindOutput(unique_id) == nullptr) {
    if (prepared->ports.outputs.size() != 1) {
      return Status(ErrorCode::kInvalidArgument,
                    "the " + name + " has no OUTPUT port '" + unique_id + "'", where);
    }
    output = prepared->ports.outputs.front().unique_id;
  }
  ExecutionRequest request;
  request.slot = kRecipeSlot;
  request.workflow_name = name;
  request.exact = exact;
  request.prompt = prepared->executable_prompt;
  for (const graph::Port& port : prepared->ports.inputs) {
    auto input = read_input(port.unique_id);
    if (!input.ok()) return fail(input.status());
    if (input->is_recipe()) {
      return Status(ErrorCode::kInvalidArgument,
                    "the " + name + " reads '" + port.unique_id +
                        "', which is itself a recipe (recipes read values, not recipes)",
                    where);
    }
    request.inputs[port.unique_id] = *input;
  }
  const auto started = std::chrono::steady_clock::now();
  auto outcome = execute(std::move(request));
  if (!outcome.ok()) return fail(outcome.status());
  RecipeRun run;
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  auto produced = outcome->outputs.find(output);
  if (produced == outcome->outputs.end() || produced->second.is_none()) {
    return Status(ErrorCode::kExecution, "the " + name + " produced no value", where);
  }
  std::map<std::string, double> ran;
  for (const NodeTiming& time : outcome->node_times) ran[time.node_id] = time.seconds;
  double rebuild = 0;
  bool known = true;
  for (const auto& [id, node] : recipe.items()) {
    if (node.value("class_type", "") == graph::kPortClass) continue;
    const std::string key = id + "\n" + node.dump();
    if (auto time = ran.find(id); time != ran.end()) {
      (*node_seconds)[key] = time->second;
      rebuild += time->second;
    } else if (auto last = node_seconds->find(key); last != node_seconds->end()) {
      rebuild += last->second;
    } else {
      known = false;
    }
  }
  run.value = produced->second.WithRecipe(std::make_shared<const json>(recipe),
                                          known ? rebuild : run.seconds);
  return run;
}

void RecipeBook::RecordNodeTimes(const std::string& slot, const std::vector<NodeTiming>& times) {
  auto& seconds = node_seconds_[slot];
  for (const NodeTiming& time : times) seconds[time.node_id] = time.seconds;
}

bool RecipeBook::HasByReferenceOutputs(const PreparedWorkflow& wf) {
  for (const graph::Port& port : wf.ports.outputs) {
    if (std::string(graph::PassByForType(port.type)) == "ref") return true;
  }
  return false;
}

storage::Value RecipeBook::Attach(const PreparedWorkflow& wf, const std::string& unique_id,
                                  const storage::Value& value,
                                  const std::map<std::string, storage::Value>& inputs,
                                  const std::map<std::string, uint64_t>& versions, json* skipped) {
  const graph::Port* port = wf.ports.FindOutput(unique_id);
  if (port == nullptr || !value.is_host() || wf.source_prompt == nullptr ||
      std::string(graph::PassByForType(port->type)) != "ref") {
    return value;
  }
  const std::string key = wf.slot + "\n" + unique_id;
  auto it = cached_.find(key);
  const bool fresh = it == cached_.end();
  if (fresh || it->second.versions != versions) {
    Cached entry;
    entry.versions = versions;
    auto built = BuildRecipe(*wf.source_prompt, unique_id, inputs, node_seconds_[wf.slot]);
    if (built.ok()) {
      entry.prompt = std::make_shared<const json>(std::move(built->prompt));
      entry.rebuild_seconds = built->rebuild_seconds;
    } else {
      entry.why = built.status().message();
    }
    const bool newly_skipped = entry.prompt == nullptr && (fresh || it->second.prompt != nullptr);
    it = cached_.insert_or_assign(key, std::move(entry)).first;
    if (newly_skipped && skipped != nullptr) {
      *skipped = {{"event", "recipe_skipped"},
                  {"port", unique_id},
                  {"workflow", wf.name},
                  {"reason", it->second.why}};
    }
  }
  if (it->second.prompt == nullptr) return value;
  return value.WithRecipe(it->second.prompt, it->second.rebuild_seconds);
}

}  // namespace discomfort::engine
