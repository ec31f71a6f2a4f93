#include "graph/workflow_ports.h"

#include <set>
#include <utility>

#include "graph/error_at.h"
#include "graph/ui_to_api.h"

namespace discomfort::graph {
namespace {

using nlohmann::json;

// `strict` = a unique_id clash among INPUTs or among OUTPUTs is an error.
Result<PortSet> DiscoverUiPortsImpl(const UiWorkflow& workflow, bool strict) {
  const UiGraph& graph = workflow.root;
  PortSet set;
  PortOwners owners;
  for (const UiNode& node : graph.nodes) {
    if (node.type != kPortClass) continue;
    Port port;
    port.node_id = node.id;
    const json& wv = *node.widgets_values;
    json uid, tags;
    if (wv.is_array()) {
      if (!wv.empty()) uid = wv[0];
      if (wv.size() > 1) tags = wv[1];
    } else if (wv.is_object()) {
      uid = wv.value("unique_id", json());
      tags = wv.value("tags", json());
    }
    if (!uid.is_string() || !IsUsablePortUniqueId(uid.get_ref<const std::string&>())) {
      return ErrorAt(ErrorCode::kInvalidArgument,
                     "DiscomfortPort has no unique_id: its widgets_values must start with a "
                     "non-empty string",
                     workflow.source, node.id, kPortClass, node.json_pointer + "/widgets_values");
    }
    port.unique_id = uid.get<std::string>();
    if (tags.is_string()) port.tags = SplitPortTags(tags.get_ref<const std::string&>());

    const UiLink* incoming = nullptr;
    for (int64_t id : graph.link_order) {
      const UiLink& link = graph.links.at(id);
      if (link.target_id == node.id && link.target_slot == 0 && incoming == nullptr) {
        incoming = &link;
      }
      if (link.origin_id == node.id && link.origin_slot == 0) {
        const UiNode* target = graph.FindNode(link.target_id);
        std::string input_name;
        if (target != nullptr) {
          int idx = target->InputIndexOfLink(link.id);
          if (idx < 0) idx = link.target_slot;
          if (idx >= 0 && idx < static_cast<int>(target->inputs.size())) {
            input_name = target->inputs[idx].name;
            if (port.consumers.empty()) {
              port.type = target->inputs[idx].type.empty() ? "*" : target->inputs[idx].type;
            }
          }
        }
        port.consumers.push_back({link.target_id, input_name});
      }
    }
    if (incoming != nullptr) {
      port.source = LinkRef{incoming->origin_id, incoming->origin_slot};
    }
    port.mode = ClassifyPort(incoming != nullptr, !port.consumers.empty());
    if (port.mode == PortMode::kOutput) {  // no consumers: the type is still Port's "*"
      const UiNode* origin = graph.FindNode(incoming->origin_id);
      if (origin != nullptr && incoming->origin_slot >= 0 &&
          incoming->origin_slot < static_cast<int>(origin->outputs.size()) &&
          !origin->outputs[incoming->origin_slot].type.empty()) {
        port.type = origin->outputs[incoming->origin_slot].type;
      }
    }
    DISCOMFORT_RETURN_IF_ERROR(AddPort(std::move(port), &set, &owners, strict, workflow.source));
  }
  return set;
}

}  // namespace

Result<PortSet> DiscoverUiPorts(const UiWorkflow& workflow) {
  return DiscoverUiPortsImpl(workflow, /*strict=*/true);
}

Result<PortSet> DiscoverUiPortsAllowingClashes(const UiWorkflow& workflow) {
  return DiscoverUiPortsImpl(workflow, /*strict=*/false);
}

Result<PortSet> DiscoverWorkflowPorts(const json& doc, const NodeDefinitions* defs,
                                      const std::string& source_name) {
  const WorkflowFormat format = DetectFormat(doc);
  if (format == WorkflowFormat::kApi) {
    DISCOMFORT_ASSIGN_OR_RETURN(json prompt, ToApiPrompt(doc, nullptr, {source_name}));
    auto ports = DiscoverPorts(prompt, ObjectInfoOf(defs));
    if (!ports.ok()) {
      Status st = ports.TakeStatus();
      st.where().workflow = source_name;
      return st;
    }
    return ports;
  }
  DISCOMFORT_ASSIGN_OR_RETURN(UiWorkflow workflow, ParseUiWorkflow(doc, source_name));
  return DiscoverUiPorts(workflow);
}

const char* PassByForType(const std::string& type) {
  static const std::set<std::string> kByReference = {"MODEL", "CLIP", "VAE", "CONDITIONING",
                                                     "CONTROL_NET"};
  return kByReference.count(type) ? "ref" : "val";
}

}  // namespace discomfort::graph
