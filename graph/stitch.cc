#include "graph/stitch.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "graph/error_at.h"
#include "graph/execution_order.h"
#include "graph/ui_json_edit.h"
#include "graph/ui_to_api.h"
#include "graph/workflow.h"
#include "graph/workflow_ports.h"

namespace discomfort::graph {
namespace {

using nlohmann::json;

struct RegisteredOutput {
  std::string node_id;  // id in the merged workflow
  std::string type;
  std::string workflow;
  std::string original_node_id;
};

Status RepeatedInputClash(const std::string& uid, const Port& first, const Port& later) {
  ErrorLocation where;
  where.node_id = later.node_id;
  where.class_type = kPortClass;
  where.port = uid;
  return Status(ErrorCode::kTypeMismatch,
                "INPUT ports '" + uid + "' on nodes " + first.node_id + " (" + first.type +
                    ") and " + later.node_id + " (" + later.type +
                    ") would read the same value but their types differ",
                where);
}

// After joining, a unique_id may remain on several OUTPUTs (the last one shadows the others: it is
// the value the context ends up with, so the shadowed ones are dropped) or on several INPUTs (they
// read one value: later ones are merged into the first, which then feeds all their consumers).
Status ResolveUiPortClashes(json* merged) {
  DISCOMFORT_ASSIGN_OR_RETURN(UiWorkflow parsed, ParseUiWorkflow(*merged, "stitched"));
  DISCOMFORT_ASSIGN_OR_RETURN(PortSet ports, DiscoverUiPortsAllowingClashes(parsed));
  std::set<std::string> drop;
  std::map<std::string, const Port*> last_output;
  for (const Port& p : ports.outputs) {
    auto [it, inserted] = last_output.emplace(p.unique_id, &p);
    if (!inserted) {
      drop.insert(it->second->node_id);  // outputs come in merge order: the later one wins
      it->second = &p;
    }
  }
  std::map<std::string, const Port*> first_input;
  std::map<std::string, std::string> redirect;  // later input node -> first input node
  for (const Port& p : ports.inputs) {
    auto [it, inserted] = first_input.emplace(p.unique_id, &p);
    if (inserted) continue;
    if (!TypesCompatible(it->second->type, p.type)) {
      return RepeatedInputClash(p.unique_id, *it->second, p);
    }
    redirect[p.node_id] = it->second->node_id;
    drop.insert(p.node_id);
  }
  if (drop.empty()) return Status::Ok();
  for (json& l : (*merged)["links"]) {
    auto origin = NodeIdToString(l[1]);
    if (origin && redirect.count(*origin)) {
      l[1] = NodeIdJson(redirect[*origin]);
      l[2] = 0;
    }
  }
  std::set<std::string> keep;
  for (const UiNode& n : parsed.root.nodes) {
    if (!drop.count(n.id)) keep.insert(n.id);
  }
  FilterUiNodes(merged, keep);
  return Status::Ok();
}

Status PortTypeClash(const std::string& uid, const RegisteredOutput& out, const Port& in,
                     const std::string& in_workflow) {
  ErrorLocation where;
  where.workflow = in_workflow;
  where.node_id = in.node_id;
  where.class_type = kPortClass;
  where.port = uid;
  return Status(ErrorCode::kTypeMismatch,
                "port '" + uid + "': OUTPUT of " + out.workflow + " (node " + out.original_node_id +
                    ") has type " + out.type + " but INPUT of " + in_workflow + " (node " +
                    in.node_id + ") expects " + in.type,
                where);
}

Result<StitchResult> StitchUi(const std::vector<json>& workflows, const StitchOptions& options,
                              const std::vector<std::string>& names) {
  int64_t next_node = 1, next_link = 1;
  json nodes = json::array(), links = json::array();
  json subgraphs = json::array();
  std::set<std::string> subgraph_ids;
  json group_nodes = json::object();
  std::map<std::string, RegisteredOutput> outputs;  // by unique_id; later ones shadow
  for (size_t w = 0; w < workflows.size(); ++w) {
    const std::string& name = names[w];
    DISCOMFORT_ASSIGN_OR_RETURN(UiWorkflow parsed, ParseUiWorkflow(workflows[w], name));
    DISCOMFORT_ASSIGN_OR_RETURN(PortSet ports, DiscoverUiPorts(parsed));
    std::map<std::string, std::string> node_map;
    for (const UiNode& node : parsed.root.nodes) node_map[node.id] = std::to_string(next_node++);
    std::map<int64_t, int64_t> link_map;
    for (int64_t id : parsed.root.link_order) {
      const UiLink& l = parsed.root.links.at(id);
      auto o = node_map.find(l.origin_id);
      auto t = node_map.find(l.target_id);
      if (o == node_map.end() || t == node_map.end()) {
        return ErrorAt(ErrorCode::kNotFound,
                       "link " + std::to_string(l.id) + " connects " + l.origin_id + " to " +
                           l.target_id + ", but one of them is not a node of the workflow",
                       name);
      }
      link_map[id] = next_link;
      links.push_back(json::array({next_link, std::stoll(o->second), l.origin_slot,
                                   std::stoll(t->second), l.target_slot, l.type}));
      ++next_link;
    }
    const json& raw_nodes = workflows[w]["nodes"];
    std::map<std::string, size_t> merged_index;  // new id -> index in `nodes`
    for (size_t i = 0; i < raw_nodes.size(); ++i) {
      json node = raw_nodes[i];
      const std::string new_id = node_map[parsed.root.nodes[i].id];
      node["id"] = std::stoll(new_id);
      merged_index[new_id] = nodes.size();
      nodes.push_back(std::move(node));
    }
    // Cross-links: earlier OUTPUT -> this INPUT with the same unique_id.
    for (const Port& in : ports.inputs) {
      auto out = outputs.find(in.unique_id);
      if (out == outputs.end()) continue;
      if (!TypesCompatible(out->second.type, in.type)) {
        return PortTypeClash(in.unique_id, out->second, in, name);
      }
      const std::string type = out->second.type.empty() ? "*" : out->second.type;
      links.push_back(json::array({next_link, std::stoll(out->second.node_id), 0,
                                   std::stoll(node_map[in.node_id]), 0, type}));
      json& target = nodes[merged_index[node_map[in.node_id]]];
      if (!target.contains("inputs") || !target["inputs"].is_array() || target["inputs"].empty()) {
        target["inputs"] =
            json::array({{{"name", "input_data"}, {"type", "*"}, {"link", nullptr}}});
      }
      ++next_link;
    }
    for (const Port& out : ports.outputs) {
      outputs[out.unique_id] = {node_map[out.node_id], out.type, name, out.node_id};
    }
    for (const auto& [id, graph] : parsed.subgraphs) {
      if (!subgraph_ids.insert(id).second) continue;
      const json& defs = JsonMember(workflows[w], "definitions", JsonEmptyObject());
      for (const json& def : JsonMember(defs, "subgraphs", JsonEmptyArray())) {
        if (def.value("id", json()) == id) subgraphs.push_back(def);
      }
    }
    for (const auto& [group, def] : parsed.group_nodes->items()) {
      if (!group_nodes.contains(group)) group_nodes[group] = def;
    }
  }
  json merged = {{"last_node_id", next_node - 1}, {"last_link_id", next_link - 1},
                 {"nodes", std::move(nodes)},     {"links", std::move(links)},
                 {"groups", json::array()},       {"config", json::object()},
                 {"extra", json::object()},       {"version", 0.4}};
  if (!subgraphs.empty()) merged["definitions"] = {{"subgraphs", subgraphs}};
  if (!group_nodes.empty()) merged["extra"]["groupNodes"] = group_nodes;
  SyncNodeLinkFields(&merged);
  DISCOMFORT_RETURN_IF_ERROR(ResolveUiPortClashes(&merged));

  if (options.delete_input_ports || options.delete_output_ports) {
    DISCOMFORT_ASSIGN_OR_RETURN(UiWorkflow parsed, ParseUiWorkflow(merged, "stitched"));
    DISCOMFORT_ASSIGN_OR_RETURN(PortSet ports, DiscoverUiPorts(parsed));
    std::set<std::string> drop;
    if (options.delete_input_ports) {
      for (const Port& p : ports.inputs) drop.insert(p.node_id);
    }
    if (options.delete_output_ports) {
      for (const Port& p : ports.outputs) drop.insert(p.node_id);
    }
    for (const Port& p : ports.unconnected) drop.insert(p.node_id);
    std::set<std::string> keep;
    for (const UiNode& n : parsed.root.nodes) {
      if (!drop.count(n.id)) keep.insert(n.id);
    }
    FilterUiNodes(&merged, keep);
  }
  StitchResult result;
  DISCOMFORT_ASSIGN_OR_RETURN(UiWorkflow final_wf, ParseUiWorkflow(merged, "stitched"));
  DISCOMFORT_ASSIGN_OR_RETURN(result.ports, DiscoverUiPorts(final_wf));
  DISCOMFORT_ASSIGN_OR_RETURN(result.execution_order, TopologicalOrder(final_wf.root));
  result.workflow = std::move(merged);
  return result;
}

// The API form of ResolveUiPortClashes. DiscoverPorts is strict, so clashes are found by uid here.
Status ResolveApiPortClashes(json* merged) {
  std::map<std::string, std::vector<std::string>> by_uid;  // port nodes per unique_id, id order
  std::vector<std::string> ids;
  for (const auto& [id, node] : merged->items()) ids.push_back(id);
  std::sort(ids.begin(), ids.end(), NodeIdLess);
  for (const std::string& id : ids) {
    const json& node = (*merged)[id];
    if (node["class_type"] != kPortClass) continue;
    const json& uid = JsonMember(node, "inputs", JsonEmptyObject()).value("unique_id", json());
    if (uid.is_string()) by_uid[uid.get<std::string>()].push_back(id);
  }
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> consumers;
  for (const auto& [id, node] : merged->items()) {
    if (!node.contains("inputs")) continue;
    for (const auto& [name, value] : node["inputs"].items()) {
      if (auto link = AsLink(value)) consumers[link->node_id].push_back({id, name});
    }
  }
  std::set<std::string> drop;
  for (const auto& [uid, nodes] : by_uid) {
    if (nodes.size() < 2) continue;
    std::vector<std::string> outputs, inputs;
    for (const std::string& id : nodes) {
      const bool fed = (*merged)[id]["inputs"].contains("input_data") &&
                       IsLink((*merged)[id]["inputs"]["input_data"]);
      const bool read = consumers.count(id) > 0;
      if (fed && !read) outputs.push_back(id);
      if (read && !fed) inputs.push_back(id);
    }
    for (size_t i = 0; i + 1 < outputs.size(); ++i) drop.insert(outputs[i]);
    for (size_t i = 1; i < inputs.size(); ++i) {
      for (const auto& [consumer, name] : consumers[inputs[i]]) {
        (*merged)[consumer]["inputs"][name] = MakeLink({inputs[0], 0});
      }
      drop.insert(inputs[i]);
    }
  }
  for (const std::string& id : drop) merged->erase(id);
  return Status::Ok();
}

Result<StitchResult> StitchApi(const std::vector<json>& prompts, const StitchOptions& options,
                               const std::vector<std::string>& names, const NodeDefinitions* defs) {
  int64_t next_node = 1;
  json merged = json::object();
  std::map<std::string, RegisteredOutput> outputs;
  for (size_t w = 0; w < prompts.size(); ++w) {
    const json& prompt = prompts[w];
    auto found = DiscoverPorts(prompt, ObjectInfoOf(defs));
    if (!found.ok()) {
      Status st = found.TakeStatus();
      st.where().workflow = names[w];
      return st;
    }
    const PortSet& ports = *found;
    std::vector<std::string> ids;
    for (const auto& [id, node] : prompt.items()) ids.push_back(id);
    std::sort(ids.begin(), ids.end(), NodeIdLess);
    std::map<std::string, std::string> node_map;
    for (const std::string& id : ids) node_map[id] = std::to_string(next_node++);
    for (const std::string& id : ids) {
      json node = prompt[id];
      if (node.contains("inputs")) {
        for (auto& [name, value] : node["inputs"].items()) {
          if (auto link = AsLink(value)) value = MakeLink({node_map[link->node_id], link->slot});
        }
      }
      merged[node_map[id]] = std::move(node);
    }
    for (const Port& in : ports.inputs) {
      auto out = outputs.find(in.unique_id);
      if (out == outputs.end()) continue;
      if (!TypesCompatible(out->second.type, in.type)) {
        return PortTypeClash(in.unique_id, out->second, in, names[w]);
      }
      merged[node_map[in.node_id]]["inputs"]["input_data"] = MakeLink({out->second.node_id, 0});
    }
    for (const Port& out : ports.outputs) {
      outputs[out.unique_id] = {node_map[out.node_id], out.type, names[w], out.node_id};
    }
  }
  DISCOMFORT_RETURN_IF_ERROR(ResolveApiPortClashes(&merged));
  if (options.delete_input_ports || options.delete_output_ports) {
    auto found = DiscoverPorts(merged, ObjectInfoOf(defs));
    if (!found.ok()) return found.TakeStatus();
    std::set<std::string> drop;
    if (options.delete_input_ports) {
      for (const Port& p : found->inputs) drop.insert(p.node_id);
    }
    if (options.delete_output_ports) {
      for (const Port& p : found->outputs) drop.insert(p.node_id);
    }
    for (const Port& p : found->unconnected) drop.insert(p.node_id);
    for (const std::string& id : drop) merged.erase(id);
    for (auto& [id, node] : merged.items()) {
      if (!node.contains("inputs")) continue;
      std::vector<std::string> dangling;
      for (const auto& [name, value] : node["inputs"].items()) {
        if (auto link = AsLink(value); link && drop.count(link->node_id)) dangling.push_back(name);
      }
      for (const std::string& name : dangling) node["inputs"].erase(name);
    }
  }
  StitchResult result;
  auto ports = DiscoverPorts(merged, ObjectInfoOf(defs));
  if (!ports.ok()) return ports.TakeStatus();
  result.ports = std::move(ports).value();
  DISCOMFORT_ASSIGN_OR_RETURN(result.execution_order, TopologicalOrderOfPrompt(merged));
  result.workflow = std::move(merged);
  return result;
}

}  // namespace

Result<StitchResult> StitchWorkflows(const std::vector<json>& workflows,
                                     const StitchOptions& options,
                                     const std::vector<std::string>& names,
                                     const NodeDefinitions* defs) {
  if (workflows.empty()) {
    return Status(ErrorCode::kInvalidArgument, "stitching needs at least one workflow");
  }
  std::vector<std::string> labels = names;
  for (size_t i = labels.size(); i < workflows.size(); ++i) {
    labels.push_back("workflow " + std::to_string(i + 1));
  }
  bool all_ui = true;
  for (size_t i = 0; i < workflows.size(); ++i) {
    const WorkflowFormat f = DetectFormat(workflows[i]);
    if (f == WorkflowFormat::kUnknown) {
      return ErrorAt(ErrorCode::kParse, "not a ComfyUI workflow (neither UI nor API format)",
                     labels[i]);
    }
    all_ui &= f != WorkflowFormat::kApi;
  }
  try {
    if (all_ui) return StitchUi(workflows, options, labels);
    std::vector<json> prompts;
    for (size_t i = 0; i < workflows.size(); ++i) {
      ConvertOptions convert;
      convert.source_name = labels[i];
      DISCOMFORT_ASSIGN_OR_RETURN(json prompt, ToApiPrompt(workflows[i], defs, convert));
      prompts.push_back(std::move(prompt));
    }
    return StitchApi(prompts, options, labels, defs);
  } catch (const std::exception& e) {
    return Status(ErrorCode::kInternal, std::string("stitching failed: ") + e.what());
  }
}

}  // namespace discomfort::graph
