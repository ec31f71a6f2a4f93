#include "graph/group_nodes.h"

#include <optional>
#include <utility>

#include "graph/widget_values.h"

namespace discomfort::graph {

using nlohmann::json;

Result<GroupNodeDef> BuildGroupNodeDef(const std::string& name, const json& def,
                                       const NodeDefinitions& defs, const std::string& source) {
  const std::string pointer = "/extra/groupNodes/" + name;
  ErrorLocation where;
  where.workflow = source;
  where.json_pointer = pointer;
  where.class_type = "workflow>" + name;
  if (!def.is_object() || !def.contains("nodes") || !def["nodes"].is_array()) {
    return Status(ErrorCode::kParse, "a group node definition needs a 'nodes' array", where);
  }
  GroupNodeDef group;
  UiGraph& g = group.graph;
  g.id = "workflow>" + name;
  g.name = name;
  g.json_pointer = pointer;
  const json& nodes = def["nodes"];
  for (size_t i = 0; i < nodes.size(); ++i) {
    json node_json = nodes[i];
    if (node_json.is_object()) node_json["id"] = static_cast<int64_t>(i);
    // ParseUiWorkflow's node parser is internal; reuse it through a one-node workflow.
    json one = {{"nodes", json::array({node_json})}, {"links", json::array()}};
    auto parsed = ParseUiWorkflow(one, source);
    if (!parsed.ok()) {
      Status st = parsed.TakeStatus();
      st.where().json_pointer = pointer + "/nodes/" + std::to_string(i);
      return st;
    }
    UiNode node = parsed->root.nodes[0];
    group.documents.push_back(std::move(one));  // `node` borrows its values from it
    node.json_pointer = pointer + "/nodes/" + std::to_string(i);
    for (UiInput& in : node.inputs) in.link.reset();
    for (UiOutput& out : node.outputs) out.links.clear();
    g.node_index[node.id] = g.nodes.size();
    g.nodes.push_back(std::move(node));
  }
  struct GroupLink {
    std::optional<int> origin;
    int origin_slot = 0, target = 0, target_slot = 0;
    std::string type;
  };
  std::vector<GroupLink> links;
  const json& raw_links = JsonMember(def, "links", JsonEmptyArray());
  for (const json& l : raw_links) {
    if (!l.is_array() || l.size() < 4 || !l[2].is_number_integer() || !l[3].is_number_integer()) {
      continue;
    }
    GroupLink link;
    if (l[0].is_number_integer()) link.origin = l[0].get<int>();
    link.origin_slot = l[1].is_number_integer() ? l[1].get<int>() : 0;
    link.target = l[2].get<int>();
    link.target_slot = l[3].get<int>();
    if (l.size() > 5 && l[5].is_string()) link.type = l[5].get<std::string>();
    links.push_back(link);
  }
  int64_t next_link = 1;
  auto add_link = [&](const std::string& origin, int origin_slot, const std::string& target,
                      int target_slot, const std::string& type) {
    UiLink link{next_link++, origin, origin_slot, target, target_slot, type};
    if (auto it = g.node_index.find(target); it != g.node_index.end()) {
      UiNode& t = g.nodes[it->second];
      if (target_slot >= 0 && target_slot < static_cast<int>(t.inputs.size())) {
        t.inputs[target_slot].link = link.id;
      }
    }
    if (auto it = g.node_index.find(origin); it != g.node_index.end()) {
      UiNode& o = g.nodes[it->second];
      if (origin_slot >= 0 && origin_slot < static_cast<int>(o.outputs.size())) {
        o.outputs[origin_slot].links.push_back(link.id);
      }
    }
    g.links.emplace(link.id, link);
    return link.id;
  };
  // Links inside the group.
  for (const GroupLink& l : links) {
    if (l.origin) {
      add_link(std::to_string(*l.origin), l.origin_slot, std::to_string(l.target), l.target_slot,
               l.type);
    }
  }
  auto internally_linked = [&](int node, int slot) {
    for (const GroupLink& l : links) {
      if (l.origin && l.target == node && l.target_slot == slot) return true;
    }
    return false;
  };
  // Group inputs: every inner socket not fed from inside, in node order (GroupNodeConfig).
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    UiNode& node = g.nodes[i];
    for (size_t s = 0; s < node.inputs.size(); ++s) {
      if (internally_linked(static_cast<int>(i), static_cast<int>(s))) continue;
      const GroupLink* external = nullptr;
      for (const GroupLink& l : links) {
        if (!l.origin && l.target == static_cast<int>(i) && l.target_slot == static_cast<int>(s)) {
          external = &l;
        }
      }
      if (external == nullptr && !node.inputs[s].widget_name.empty()) continue;
      UiSubgraphSlot slot;
      slot.name = node.inputs[s].name;
      slot.type = external && !external->type.empty() ? external->type : node.inputs[s].type;
      const int k = static_cast<int>(g.inputs.size());
      slot.link_ids.push_back(
          add_link(kSubgraphInputId, k, node.id, static_cast<int>(s), slot.type));
      g.inputs.push_back(std::move(slot));
    }
  }
  // Group outputs: outputs not consumed inside, or consumed inside and listed as external.
  const json& external = JsonMember(def, "external", JsonEmptyArray());
  auto listed_external = [&](int node, int slot) {
    if (!external.is_array()) return false;
    for (const json& e : external) {
      if (!e.is_array() || e.size() < 2 || !e[1].is_number_integer()) continue;
      int idx = -1;
      if (e[0].is_number_integer()) idx = e[0].get<int>();
      if (e[0].is_object() && e[0].contains("index") && e[0]["index"].is_number_integer()) {
        idx = e[0]["index"].get<int>();
      }
      if (idx == node && e[1].get<int>() == slot) return true;
    }
    return false;
  };
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const UiNode& node = g.nodes[i];
    if (node.is_virtual) continue;
    for (size_t o = 0; o < node.outputs.size(); ++o) {
      bool consumed = false;
      for (const GroupLink& l : links) {
        consumed |=
            l.origin && *l.origin == static_cast<int>(i) && l.origin_slot == static_cast<int>(o);
      }
      if (consumed && !listed_external(static_cast<int>(i), static_cast<int>(o))) continue;
      UiSubgraphSlot slot;
      slot.name = node.outputs[o].name;
      slot.type = node.outputs[o].type;
      const int k = static_cast<int>(g.outputs.size());
      slot.link_ids.push_back(
          add_link(node.id, static_cast<int>(o), kSubgraphOutputId, k, slot.type));
      g.outputs.push_back(std::move(slot));
    }
  }
  // Group widgets: every inner widget not fed from inside and not hidden by the config.
  const json& config = JsonMember(def, "config", JsonEmptyObject());
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const UiNode& node = g.nodes[i];
    if (node.is_virtual) continue;
    const NodeDef* nd = defs.Find(node.type);
    if (nd == nullptr) continue;  // reported as an unknown type when expanded
    const json node_config =
        config.is_object() ? config.value(std::to_string(i), json::object()) : json::object();
    for (const WidgetSpec& w : nd->widgets) {
      if (!w.to_prompt) continue;
      bool hidden = false;
      for (size_t s = 0; s < node.inputs.size(); ++s) {
        const UiInput& in = node.inputs[s];
        if ((in.widget_name == w.name || in.name == w.name) &&
            internally_linked(static_cast<int>(i), static_cast<int>(s))) {
          hidden = true;
        }
      }
      if (node_config.is_object() && node_config.contains("input") &&
          node_config["input"].is_object() && node_config["input"].contains(w.name) &&
          node_config["input"][w.name].is_object() &&
          node_config["input"][w.name].value("visible", true) == false) {
        hidden = true;
      }
      if (!hidden) group.widgets.push_back({node.id, w.name, w.control_slots});
    }
  }
  return group;
}

void ReadGroupWidgetValues(const GroupNodeDef& group, const json& wv, InnerWidgetValues* values) {
  if (!wv.is_array()) return;
  size_t i = 0;
  for (const GroupNodeWidget& w : group.widgets) {
    if (i >= wv.size()) break;
    const json& v = wv[i++];
    if (!v.is_null()) (*values)[w.inner_id][w.widget] = v;
    if (w.control_slots > 0 && i < wv.size() && IsControlValue(wv[i])) {
      ++i;
      if (w.control_slots > 1 && i < wv.size() && wv[i].is_string()) ++i;
    }
  }
}

}  // namespace discomfort::graph
