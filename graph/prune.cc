#include "graph/prune.h"

#include <set>
#include <vector>

#include "graph/api_prompt.h"
#include "graph/ui_json_edit.h"
#include "graph/ui_to_api.h"
#include "graph/workflow.h"
#include "graph/workflow_ports.h"

namespace discomfort::graph {
namespace {

using nlohmann::json;

// The ids of `start` and of every node it reads from, directly or not.
std::set<std::string> PromptAncestors(const json& prompt, const std::string& start) {
  std::set<std::string> seen = {start};
  std::vector<std::string> todo = {start};
  while (!todo.empty()) {
    std::string id = todo.back();
    todo.pop_back();
    const json& node = prompt[id];
    if (!node.contains("inputs")) continue;
    for (const auto& [name, value] : node["inputs"].items()) {
      if (auto link = AsLink(value);
          link && prompt.contains(link->node_id) && seen.insert(link->node_id).second) {
        todo.push_back(link->node_id);
      }
    }
  }
  return seen;
}

}  // namespace

Result<json> PruneToOutput(const json& doc, const std::string& unique_id,
                           const NodeDefinitions* defs) {
  auto missing = [&](const PortSet& ports) {
    std::string known;
    for (const Port& p : ports.outputs) known += (known.empty() ? "" : ", ") + p.unique_id;
    ErrorLocation where;
    where.port = unique_id;
    return Status(ErrorCode::kNotFound,
                  "no OUTPUT port with unique_id '" + unique_id +
                      "' (OUTPUT ports: " + (known.empty() ? "none" : known) + ")",
                  where);
  };
  try {
    if (DetectFormat(doc) == WorkflowFormat::kApi) {
      DISCOMFORT_ASSIGN_OR_RETURN(json prompt, ToApiPrompt(doc, nullptr));
      auto ports = DiscoverPorts(prompt, ObjectInfoOf(defs));
      if (!ports.ok()) return ports.TakeStatus();
      const Port* port = ports->FindOutput(unique_id);
      if (port == nullptr) return missing(*ports);
      const std::set<std::string> keep = PromptAncestors(prompt, port->node_id);
      json pruned = json::object();
      for (const std::string& id : keep) pruned[id] = prompt[id];
      return pruned;
    }
    UiWorkflow parsed;
    DISCOMFORT_ASSIGN_OR_RETURN(json ui, NormalizedUi(doc, "", &parsed));
    DISCOMFORT_ASSIGN_OR_RETURN(PortSet ports, DiscoverUiPorts(parsed));
    const Port* port = ports.FindOutput(unique_id);
    if (port == nullptr) return missing(ports);
    std::set<std::string> keep = {port->node_id};
    std::vector<std::string> todo = {port->node_id};
    while (!todo.empty()) {
      const std::string id = todo.back();
      todo.pop_back();
      for (const auto& [link_id, link] : parsed.root.links) {
        if (link.target_id == id && parsed.root.FindNode(link.origin_id) &&
            keep.insert(link.origin_id).second) {
          todo.push_back(link.origin_id);
        }
      }
    }
    FilterUiNodes(&ui, keep);
    return ui;
  } catch (const std::exception& e) {
    return Status(ErrorCode::kInternal, std::string("pruning failed: ") + e.what());
  }
}

}  // namespace discomfort::graph
