#include "graph/validate.h"

#include <utility>

#include "graph/api_prompt.h"
#include "graph/error_at.h"
#include "graph/execution_order.h"
#include "graph/parallel.h"
#include "graph/ui_to_api.h"
#include "graph/workflow.h"
#include "graph/workflow_ports.h"

namespace discomfort::graph {
namespace {

using nlohmann::json;

void ValidateUiGraph(const UiWorkflow& wf, const UiGraph& graph, const NodeDefinitions* defs,
                     std::vector<Status>* problems) {
  const bool is_subgraph = !graph.id.empty();
  auto boundary = [&](const std::string& id) {
    return is_subgraph && (id == kSubgraphInputId || id == kSubgraphOutputId);
  };
  for (int64_t id : graph.link_order) {
    const UiLink& link = graph.links.at(id);
    const UiNode* origin = graph.FindNode(link.origin_id);
    const UiNode* target = graph.FindNode(link.target_id);
    const std::string pointer = graph.json_pointer + "/links";
    if (origin == nullptr && !boundary(link.origin_id)) {
      problems->push_back(ErrorAt(ErrorCode::kNotFound,
                                  "link " + std::to_string(id) + " comes from node " +
                                      link.origin_id + ", which does not exist",
                                  wf.source, link.target_id, target ? target->type : "", pointer));
    }
    if (target == nullptr && !boundary(link.target_id)) {
      problems->push_back(ErrorAt(ErrorCode::kNotFound,
                                  "link " + std::to_string(id) + " goes to node " + link.target_id +
                                      ", which does not exist",
                                  wf.source, link.origin_id, origin ? origin->type : "", pointer));
    }
    if (defs == nullptr || origin == nullptr || target == nullptr) continue;
    const NodeDef* od = defs->Find(origin->type);
    const NodeDef* td = defs->Find(target->type);
    if (od == nullptr || td == nullptr) continue;
    int idx = target->InputIndexOfLink(id);
    if (idx < 0) idx = link.target_slot;
    if (idx < 0 || idx >= static_cast<int>(target->inputs.size())) continue;
    const std::string& in_name = target->inputs[idx].name;
    const std::string& in_type = td->InputType(in_name);
    const std::string& out_type = od->OutputType(link.origin_slot);
    if (link.origin_slot >= static_cast<int>(od->output_types.size())) {
      problems->push_back(ErrorAt(ErrorCode::kValidation,
                                  "link " + std::to_string(id) + " leaves output slot " +
                                      std::to_string(link.origin_slot) + " of " + origin->type +
                                      ", which has " + std::to_string(od->output_types.size()) +
                                      " outputs",
                                  wf.source, origin->id, origin->type, origin->json_pointer));
    } else if (!in_type.empty() && !TypesCompatible(out_type, in_type)) {
      Status st = ErrorAt(ErrorCode::kTypeMismatch,
                          "input '" + in_name + "' expects " + in_type + " but is linked to " +
                              out_type + " output " + std::to_string(link.origin_slot) +
                              " of node " + origin->id + " (" + origin->type + ")",
                          wf.source, target->id, target->type, target->json_pointer);
      st.where().input_name = in_name;
      problems->push_back(std::move(st));
    }
  }
  for (const UiNode& node : graph.nodes) {
    for (size_t s = 0; s < node.inputs.size(); ++s) {
      const UiInput& in = node.inputs[s];
      if (in.link && graph.FindLink(*in.link) == nullptr) {
        Status st = ErrorAt(ErrorCode::kNotFound,
                            "input refers to link " + std::to_string(*in.link) +
                                ", which is not in the links array",
                            wf.source, node.id, node.type,
                            node.json_pointer + "/inputs/" + std::to_string(s));
        st.where().input_name = in.name;
        problems->push_back(std::move(st));
      }
    }
    if (defs != nullptr && !node.is_virtual && !wf.IsSubgraphType(node.type) &&
        !wf.GroupNodeName(node.type) && !defs->Has(node.type) && node.mode != kModeNever &&
        node.mode != kModeBypass) {
      problems->push_back(
          ErrorAt(ErrorCode::kNotFound,
                  "unknown node type '" + node.type + "': not in the node definitions", wf.source,
                  node.id, node.type, node.json_pointer));
    }
  }
}

// V3 Autogrow / dynamic groups send their members as "<name>.<member>" keys, never "<name>".
bool HasDottedMember(const json& inputs, const InputSpec& spec) {
  if (spec.type.rfind("COMFY_", 0) != 0) return false;
  const std::string prefix = spec.name + ".";
  const auto& members = inputs.get_ref<const json::object_t&>();
  auto it = members.lower_bound(prefix);
  return it != members.end() && it->first.rfind(prefix, 0) == 0;
}

// One node's checks. Returns false when the node or one of its links is malformed (then the
// order and the ports are not computed).
bool ValidatePromptNode(const json& prompt, const std::string& id, const json& node,
                        const NodeDefinitions* defs, const std::string& source,
                        std::vector<Status>* problems) {
  bool structural_ok = true;
  const json& class_type = JsonMember(node, "class_type", JsonNull());
  if (!class_type.is_string()) {
    problems->push_back(ErrorAt(ErrorCode::kParse,
                                "node must be an object with a string class_type", source, id, "",
                                "/" + id));
    return false;
  }
  const std::string& cls = class_type.get_ref<const std::string&>();
  if (cls.empty()) {
    problems->push_back(ErrorAt(ErrorCode::kParse, "node has no string 'class_type'", source, id,
                                "", "/" + id + "/class_type"));
    return false;
  }
  const json& inputs = JsonMember(node, "inputs", JsonEmptyObject());
  if (!inputs.is_object()) {
    problems->push_back(ErrorAt(ErrorCode::kParse, "'inputs' must be an object", source, id, cls,
                                "/" + id + "/inputs"));
    return false;
  }
  const NodeDef* def = defs ? defs->Find(cls) : nullptr;
  if (defs != nullptr && def == nullptr) {
    problems->push_back(ErrorAt(ErrorCode::kNotFound,
                                "unknown node type '" + cls + "': not in the node definitions",
                                source, id, cls, "/" + id));
  }
  for (const auto& [name, value] : inputs.items()) {
    auto link = AsLinkView(value);
    if (!link) continue;
    // Init-captures for the structured bindings: clang < 16 cannot capture them.
    auto report = [&, &name = name](ErrorCode code, std::string message) {
      Status st = ErrorAt(code, std::move(message), source, id, cls, "/" + id + "/inputs/" + name);
      st.where().input_name = name;
      problems->push_back(std::move(st));
    };
    const std::string& origin_id = *link->node_id;
    auto origin_it = prompt.find(origin_id);
    if (origin_it == prompt.end()) {
      report(ErrorCode::kNotFound, "links to node '" + origin_id + "', which is not in the prompt");
      structural_ok = false;
      continue;
    }
    if (link->slot < 0) {
      report(ErrorCode::kParse, "link has a negative output slot");
      structural_ok = false;
      continue;
    }
    if (def == nullptr) continue;
    const json& origin_class = JsonMember(*origin_it, "class_type", JsonNull());
    if (!origin_class.is_string()) continue;
    const NodeDef* od = defs->Find(origin_class.get_ref<const std::string&>());
    if (od == nullptr) continue;
    if (link->slot < 0 || link->slot >= static_cast<int>(od->output_types.size())) {
      report(ErrorCode::kValidation,
             "links to output slot " + std::to_string(link->slot) + " of node " + origin_id + " (" +
                 od->name + "), which has " + std::to_string(od->output_types.size()) + " outputs");
      continue;
    }
    const InputSpec* in_spec = def->FindInput(name);
    const std::string& out_type = od->output_types[link->slot];
    if (in_spec != nullptr && !in_spec->type.empty() && !TypesCompatible(out_type, in_spec->type)) {
      report(ErrorCode::kTypeMismatch, "expects " + in_spec->type + " but is linked to " +
                                           out_type + " output " + std::to_string(link->slot) +
                                           " of node " + origin_id + " (" + od->name + ")");
    }
  }
  if (def != nullptr) {
    for (const InputSpec& spec : def->inputs) {
      if (spec.required && !inputs.contains(spec.name) && !HasDottedMember(inputs, spec)) {
        Status st = ErrorAt(ErrorCode::kValidation, "required input '" + spec.name + "' is missing",
                            source, id, cls, "/" + id + "/inputs");
        st.where().input_name = spec.name;
        problems->push_back(std::move(st));
      }
    }
  }
  return structural_ok;
}

void ValidatePrompt(const json& prompt, const NodeDefinitions* defs, const std::string& source,
                    std::vector<Status>* problems) {
  if (!prompt.is_object() || prompt.empty()) {
    problems->push_back(
        ErrorAt(ErrorCode::kParse, "an API prompt must be a non-empty object of nodes", source));
    return;
  }
  // Nodes are checked independently (in parallel for large prompts); problems are reported in
  // the prompt's order.
  std::vector<std::pair<const std::string*, const json*>> nodes;
  nodes.reserve(prompt.size());
  for (auto it = prompt.begin(); it != prompt.end(); ++it) nodes.emplace_back(&it.key(), &*it);
  std::vector<std::vector<Status>> node_problems(nodes.size());
  std::vector<char> node_ok(nodes.size(), 1);
  Status crashed = ForEachIndex(nodes.size(), [&](size_t i) {
    node_ok[i] = ValidatePromptNode(prompt, *nodes[i].first, *nodes[i].second, defs, source,
                                    &node_problems[i]);
    return Status::Ok();
  });
  if (!crashed.ok()) {
    problems->push_back(std::move(crashed));
    return;
  }
  bool structural_ok = true;
  for (size_t i = 0; i < nodes.size(); ++i) {
    structural_ok &= node_ok[i] != 0;
    for (Status& st : node_problems[i]) problems->push_back(std::move(st));
  }
  // The loop above made ValidateApiPrompt's checks: the order and the ports skip them.
  if (!structural_ok) return;
  auto order = TopologicalOrderOfCheckedPrompt(prompt);
  if (!order.ok()) {
    Status st = order.TakeStatus();
    st.where().workflow = source;
    problems->push_back(std::move(st));
  }
  auto ports = DiscoverPortsOfCheckedPrompt(prompt, ObjectInfoOf(defs));
  if (!ports.ok()) {
    Status st = ports.TakeStatus();
    st.where().workflow = source;
    problems->push_back(std::move(st));
  }
}

}  // namespace

std::vector<Status> ValidateWorkflow(const json& doc, const NodeDefinitions* defs,
                                     const std::string& source_name) {
  std::vector<Status> problems;
  try {
    const WorkflowFormat format = DetectFormat(doc);
    if (format == WorkflowFormat::kApi) {
      const bool body = doc.contains("prompt") && doc["prompt"].is_object() &&
                        !doc["prompt"].contains("class_type");
      ValidatePrompt(body ? doc["prompt"] : doc, defs, source_name, &problems);
      return problems;
    }
    if (format == WorkflowFormat::kUnknown) {
      problems.push_back(
          ErrorAt(ErrorCode::kParse,
                  "not a ComfyUI workflow: expected a UI workflow (with 'nodes') or an "
                  "API prompt",
                  source_name));
      return problems;
    }
    auto parsed = ParseUiWorkflow(doc, source_name);
    if (!parsed.ok()) {
      problems.push_back(parsed.TakeStatus());
      return problems;
    }
    ValidateUiGraph(*parsed, parsed->root, defs, &problems);
    for (const auto& [id, graph] : parsed->subgraphs) {
      ValidateUiGraph(*parsed, graph, defs, &problems);
    }
    auto order = TopologicalOrder(parsed->root);
    if (!order.ok()) {
      Status st = order.TakeStatus();
      st.where().workflow = source_name;
      problems.push_back(std::move(st));
    }
    auto ports = DiscoverUiPorts(*parsed);
    if (!ports.ok()) problems.push_back(ports.TakeStatus());
    if (defs != nullptr && problems.empty()) {
      ConvertOptions options;
      options.source_name = source_name;
      auto prompt = ConvertUiToApi(*parsed, *defs, options);
      if (!prompt.ok()) {
        problems.push_back(prompt.TakeStatus());
      } else {
        ValidatePrompt(*prompt, defs, source_name, &problems);
      }
    }
  } catch (const std::exception& e) {
    problems.push_back(
        ErrorAt(ErrorCode::kInternal, std::string("validation failed: ") + e.what(), source_name));
  }
  return problems;
}

}  // namespace discomfort::graph
