#include "graph/ui_to_api.h"

#include <algorithm>
#include <ctime>
#include <map>
#include <memory>
#include <set>
#include <string_view>

#include "graph/api_prompt.h"
#include "graph/parallel.h"
#include "graph/prompt_text.h"

namespace discomfort::graph {
namespace {

using nlohmann::json;
using namespace std::string_view_literals;

// Deeper than any sane chain of reroutes/bypasses/subgraph boundaries: a loop in the links.
// Link hops followed before a chain counts as a loop. 4096 overflowed an 8 MiB stack under
// AddressSanitizer (scripts/check), and TBB workers get 4 MiB; no real chain comes near 1024.
constexpr int kMaxResolveDepth = 1024;
constexpr int kMaxSubgraphNesting = 64;

bool IsControlValue(const json& v) {
  if (v.is_boolean()) return true;  // 2023 saves: the old "randomize" checkbox
  if (!v.is_string()) return false;
  const std::string s = v.get<std::string>();
  return s == "fixed"sv || s == "increment"sv || s == "decrement"sv || s == "randomize"sv ||
         s == "increment-wrap"sv;
}

json WrapForPrompt(const json& v, bool curve = false) {
  if (!v.is_array()) return v;
  json wrapped(json::value_t::object);
  // executionUtil.ts: curve widgets tell the backend the list's type.
  if (curve) wrapped.get_ref<json::object_t&>().emplace("__type__", "CURVE");
  wrapped.get_ref<json::object_t&>().emplace("__value__", v);
  return wrapped;
}

// {"inputs": ..., "class_type": ...} built member by member: nlohmann's initializer-list
// constructor builds a temporary two-element array per member, which cost an eighth of a
// conversion.
json PromptEntry(json inputs, const std::string& class_type) {
  json entry(json::value_t::object);
  auto& members = entry.get_ref<json::object_t&>();
  members.emplace("inputs", std::move(inputs));
  members.emplace("class_type", class_type);
  return entry;
}

// A widget's value as a reference into the definitions or the workflow (copied once, into the
// prompt); `owned` holds values made here (load fix-ups).
struct WidgetValue {
  const WidgetSpec* spec = nullptr;
  const json* value = nullptr;
  json owned = nullptr;
  bool replace_text = false;  // pushed by a PrimitiveNode with "Run widget replace on values"
};

// What an input resolves to: nothing (dropped), a link to a real node, or a promoted widget value.
struct Resolved {
  enum class Kind { kNone, kLink, kValue } kind = Kind::kNone;
  std::string node_id;
  int slot = 0;
  json value;
};

// Points into the definitions or the workflow, which outlive the conversion.
struct EffectiveInput {
  const std::string* name;
  const std::string* type;
  std::optional<int64_t> link;
};

// A legacy group node's definition turned into a subgraph-like graph (ids = index in nodes[]).
struct GroupWidget {
  std::string inner_id;
  std::string widget;
  int control_slots = 0;
};
struct GroupDef {
  // The nodes' JSON, which graph's nodes borrow from. A moved json keeps its heap contents where
  // they are, so the vector may grow.
  std::vector<json> documents;
  UiGraph graph;
  std::vector<GroupWidget> widgets;
};

class Converter {
 public:
  Converter(const UiWorkflow& wf, const NodeDefinitions& defs, const ConvertOptions& options)
      : wf_(wf), defs_(defs), options_(options) {}

  Result<json> Run() {
    for (const auto& [name, def] : wf_.group_nodes->items()) {
      auto group = BuildGroupDef(name, def);
      if (!group.ok()) return group.TakeStatus();
      groups_.emplace(name, std::move(group).value());
    }
    DISCOMFORT_RETURN_IF_ERROR(Expand(wf_.root, nullptr, 0));
    emitted_.reserve(order_.size());
    for (const Dto& dto : order_) emitted_.push_back(dto.exec_id);
    std::sort(emitted_.begin(), emitted_.end(), ShorterFirst);
    std::vector<json> entries(order_.size());
    std::vector<std::vector<std::string>> template_inputs(order_.size());
    DISCOMFORT_RETURN_IF_ERROR(ForEachIndex(order_.size(), [&](size_t i) -> Status {
      DISCOMFORT_ASSIGN_OR_RETURN(entries[i], Emit(i, &template_inputs[i]));
      return Status::Ok();
    }));
    json output(json::value_t::object);
    auto& members = output.get_ref<json::object_t&>();
    for (size_t i = 0; i < order_.size(); ++i) {
      members.insert_or_assign(order_[i].exec_id, std::move(entries[i]));
      for (std::string& input : template_inputs[i]) templates_.push_back({i, std::move(input)});
    }
    DISCOMFORT_RETURN_IF_ERROR(ApplyTemplates(&output));
    return output;
  }

 private:
  struct Instance;
  struct Dto {
    const UiGraph* graph = nullptr;
    const UiNode* node = nullptr;
    const Instance* parent = nullptr;  // the subgraph / group instance this node sits in
    std::string exec_id;
  };
  struct Instance {
    Dto dto;
    const UiGraph* definition = nullptr;
    std::vector<std::optional<json>> promoted;  // per instance input: promoted widget value
    std::map<std::string, std::map<std::string, json>> overrides;  // inner node -> widget -> value
  };

  // ---- errors -------------------------------------------------------------------------------
  Status NodeStatus(ErrorCode code, const Dto& dto, std::string message, std::string input = {},
                    std::string pointer = {}) const {
    ErrorLocation where;
    where.workflow = options_.source_name;
    where.node_id = dto.exec_id;
    where.class_type = dto.node->type;
    where.input_name = std::move(input);
    where.json_pointer = pointer.empty() ? dto.node->json_pointer : std::move(pointer);
    return Status(code, std::move(message), std::move(where));
  }

  // ---- classification -----------------------------------------------------------------------
  const UiGraph* InstanceDefinition(const UiNode& node) const {
    auto sg = wf_.subgraphs.find(node.type);
    if (sg != wf_.subgraphs.end()) return &sg->second;
    if (auto name = wf_.GroupNodeName(node.type)) {
      auto it = groups_.find(*name);
      if (it != groups_.end()) return &it->second.graph;
    }
    return nullptr;
  }

  static std::string Prefix(const Instance* parent) {
    return parent == nullptr ? std::string() : parent->dto.exec_id + ":";
  }

  // ---- widgets ------------------------------------------------------------------------------
  Status AssignWidget(const Dto& dto, const WidgetSpec& spec, const json& v, size_t index,
                      WidgetValue* out) const {
    if (v.is_null()) {
      if (spec.IsNumeric()) return Status::Ok();        // null numbers keep their default
      if (spec.type == "COMBO"sv) return Status::Ok();  // a null combo becomes options[0]
      out->value = &v;
      return Status::Ok();
    }
    auto mismatch = [&](const char* expected) {
      const std::string pointer =
          dto.node->json_pointer + "/widgets_values/" + std::to_string(index);
      return NodeStatus(ErrorCode::kTypeMismatch, dto,
                        "widget '" + spec.name + "' expects " + expected + ", got " + v.dump() +
                            " (widgets_values does not match the node definition)",
                        spec.name, pointer);
    };
    if (spec.IsNumeric() && !v.is_number())
      return mismatch(spec.type == "INT"sv ? "an integer" : "a number");
    if (spec.type == "BOOLEAN"sv && !v.is_boolean()) return mismatch("a boolean");
    if ((spec.type == "STRING"sv || spec.type == "MARKDOWN"sv || spec.type == "TEXTAREA"sv) &&
        (v.is_object() || v.is_array())) {
      return mismatch("a string");
    }
    if (spec.type == "COMBO"sv && v.is_object()) return mismatch("one of the combo's options");
    out->value = &v;
    return Status::Ok();
  }

  // Positional widgets_values with the tolerant control-slot rule; dict widgets_values by name.
  Result<std::vector<WidgetValue>> ComputeWidgets(const Dto& dto, const NodeDef& def) const {
    // Never grows past max_widgets: `value` may point at `owned` of an element.
    std::vector<WidgetValue> values;
    values.reserve(def.max_widgets);
    const json& wv = *dto.node->widgets_values;
    const json& named = *dto.node->widgets_values_named;
    if (!wv.is_object() && !wv.is_array() && !wv.is_null()) {
      return NodeStatus(ErrorCode::kParse, dto, "widgets_values must be an array or an object", {},
                        dto.node->json_pointer + "/widgets_values");
    }
    // Positions in widgets_values: 0..size-1, or the legacy subset (no vector for the former).
    const bool legacy = wv.is_array() && def.legacy_slot_is_forced.size() == wv.size();
    std::vector<size_t> legacy_slots;
    if (legacy) legacy_slots = LegacySlotIndexes(def);
    const size_t slot_count = !wv.is_array() ? 0 : legacy ? legacy_slots.size() : wv.size();
    auto slot = [&](size_t k) { return legacy ? legacy_slots[k] : k; };
    size_t i = 0;  // next slot
    // Widgets in creation order; a DynamicCombo's chosen option inserts its widgets right after
    // it, and they take the next positional values.
    auto walk = [&](const std::vector<WidgetSpec>& specs, auto& self) -> Status {
      for (const WidgetSpec& w : specs) {
        values.push_back({&w, &w.default_value});
        const size_t k = values.size() - 1;
        // widgets_values_named, when saved, names the value; the position is still consumed.
        const json* by_name = nullptr;
        if (named.is_object()) {
          if (auto it = named.find(w.name); it != named.end()) by_name = &*it;
        }
        if (i < slot_count) {
          const size_t at = slot(i++);
          if (by_name == nullptr) {
            DISCOMFORT_RETURN_IF_ERROR(AssignWidget(dto, w, wv[at], at, &values[k]));
          }
          if (w.control_slots > 0 && i < slot_count && IsControlValue(wv[slot(i)])) {
            ++i;
            if (w.control_slots > 1 && i < slot_count && wv[slot(i)].is_string()) ++i;
          }
        } else if (wv.is_object() && by_name == nullptr) {
          if (auto it = wv.find(w.name); it != wv.end()) {
            DISCOMFORT_RETURN_IF_ERROR(AssignWidget(dto, w, *it, k, &values[k]));
          }
        }
        if (by_name != nullptr) {
          DISCOMFORT_RETURN_IF_ERROR(AssignWidget(dto, w, *by_name, k, &values[k]));
        }
        if (w.dynamic_options.empty()) continue;
        const json* chosen = values[k].value;
        for (const auto& [key, subs] : w.dynamic_options) {
          if (chosen->is_string() && chosen->get_ref<const std::string&>() == key) {
            DISCOMFORT_RETURN_IF_ERROR(self(subs, self));
            break;
          }
        }
      }
      return Status::Ok();
    };
    DISCOMFORT_RETURN_IF_ERROR(walk(def.widgets, walk));
    const bool sampler = def.name == "KSampler"sv || def.name == "KSamplerAdvanced"sv;
    for (WidgetValue& wv_k : values) {
      const WidgetSpec& w = *wv_k.spec;
      if (w.type == "COMBO"sv && wv_k.value->is_null()) {
        const InputSpec* in = def.FindInput(w.name);
        if (in != nullptr && !in->combo_values.empty()) wv_k.value = &in->combo_values[0];
      }
      // app.ts load fix-up for samplers saved as "sample_<name>".
      if (sampler && w.name == "sampler_name"sv && wv_k.value->is_string() &&
          wv_k.value->get_ref<const std::string&>().rfind("sample_", 0) == 0) {
        wv_k.owned = wv_k.value->get_ref<const std::string&>().substr(7);
        wv_k.value = &wv_k.owned;
      }
    }
    return values;
  }

  // Indexes into widgets_values that belong to widgets when a frontend before 1.16 saved a slot
  // for forceInput inputs too (the length says so): those slots are skipped
  // (migrateWidgetsValues).
  static std::vector<size_t> LegacySlotIndexes(const NodeDef& def) {
    std::vector<size_t> kept;
    for (size_t i = 0; i < def.legacy_slot_is_forced.size(); ++i) {
      if (!def.legacy_slot_is_forced[i]) kept.push_back(i);
    }
    return kept;
  }

  // PrimitiveNode.applyToGraph: its value is pushed into the target widgets of its links.
  void ApplyPrimitive(const Dto& dto, std::vector<WidgetValue>* values) const {
    for (const UiInput& input : dto.node->inputs) {
      if (!input.link) continue;
      const UiLink* link = dto.graph->FindLink(*input.link);
      if (link == nullptr) continue;  // reported when the input is resolved
      const UiNode* origin = dto.graph->FindNode(link->origin_id);
      if (origin == nullptr || origin->type != kPrimitiveNodeType) continue;
      if (!origin->widgets_values->is_array() || origin->widgets_values->empty()) continue;
      const json& value = (*origin->widgets_values)[0];
      if (value.is_null()) continue;
      const std::string& widget = input.widget_name.empty() ? input.name : input.widget_name;
      const json& replace =
          JsonMember(*origin->properties, "Run widget replace on values", JsonNull());
      for (WidgetValue& w : *values) {
        if (w.spec->name != widget) continue;
        w.value = &value;
        w.replace_text = replace.is_boolean() && replace.get<bool>() && value.is_string();
      }
    }
  }

  // ---- inputs of a node as the frontend sees them after configure ---------------------------
  std::vector<EffectiveInput> EffectiveInputs(const Dto& dto) const {
    std::vector<EffectiveInput> out;
    const UiNode& node = *dto.node;
    if (const UiGraph* def = InstanceDefinition(node)) {
      for (size_t k = 0; k < def->inputs.size(); ++k) {
        EffectiveInput in{&def->inputs[k].name, &def->inputs[k].type, std::nullopt};
        if (k < node.inputs.size()) in.link = node.inputs[k].link;
        out.push_back(std::move(in));
      }
      return out;
    }
    const NodeDef* def = node.is_virtual ? nullptr : defs_.Find(node.type);
    if (def == nullptr) {
      for (const UiInput& in : node.inputs) out.push_back({&in.name, &in.type, in.link});
      return out;
    }
    out.reserve(def->inputs.size() + node.inputs.size());
    for (const InputSpec& spec : def->inputs) {
      EffectiveInput in{&spec.name, &spec.type, std::nullopt};
      int idx = node.InputIndexByName(spec.name);
      if (idx >= 0) in.link = node.inputs[idx].link;
      out.push_back(in);
    }
    for (const UiInput& in : node.inputs) {
      if (def->FindInput(in.name) == nullptr) out.push_back({&in.name, &in.type, in.link});
    }
    return out;
  }

  // References into the workflow or the definitions, which outlive the conversion.
  const std::string& OutputType(const Dto& dto, int slot) const {
    static const std::string kNone;
    if (const UiGraph* def = InstanceDefinition(*dto.node)) {
      return slot >= 0 && slot < static_cast<int>(def->outputs.size()) ? def->outputs[slot].type
                                                                       : kNone;
    }
    if (!dto.node->is_virtual) {
      if (const NodeDef* def = defs_.Find(dto.node->type)) return def->OutputType(slot);
    }
    if (slot >= 0 && slot < static_cast<int>(dto.node->outputs.size())) {
      return dto.node->outputs[slot].type;
    }
    return kNone;
  }

  static const std::string& ConsumerType(const NodeDef* def, const UiInput& input) {
    if (def != nullptr) {
      const std::string& type = def->InputType(input.name);
      if (!type.empty()) return type;
    }
    return input.type;
  }

  // ExecutableNodeDTO._getBypassSlotIndex: which input of a bypassed node stands in for `slot`.
  int BypassSlotIndex(const Dto& dto, const std::vector<EffectiveInput>& inputs, int slot,
                      const std::string& type) const {
    const int n = static_cast<int>(inputs.size());
    if (n == 0) return -1;
    if (type.empty() || type == "*"sv) return slot < n ? slot : 0;
    const std::string& out_type = OutputType(dto, slot);
    if (slot >= 0 && slot < n && TypesCompatible(*inputs[slot].type, out_type) &&
        TypesCompatible(*inputs[slot].type, type)) {
      return slot;
    }
    for (int i = 0; i < n; ++i) {
      if (*inputs[i].type == type) return i;
    }
    for (int i = 0; i < n; ++i) {
      if (TypesCompatible(*inputs[i].type, out_type) && TypesCompatible(*inputs[i].type, type)) {
        return i;
      }
    }
    return -1;
  }

  // ---- link resolution ----------------------------------------------------------------------
  Result<Resolved> ResolveLink(const Dto& consumer, int64_t link_id, const std::string& type,
                               int depth) const {
    if (depth > kMaxResolveDepth) {
      return NodeStatus(ErrorCode::kCycle, consumer,
                        "links loop through bypassed, virtual or subgraph nodes");
    }
    const UiLink* link = consumer.graph->FindLink(link_id);
    if (link == nullptr) {
      return NodeStatus(ErrorCode::kNotFound, consumer,
                        "an input refers to link " + std::to_string(link_id) +
                            ", which is not in the graph's links");
    }
    if (link->origin_id == kSubgraphInputId) {
      return ResolveBoundaryInput(consumer, consumer.parent, link->origin_slot, type, depth + 1);
    }
    const UiNode* origin = consumer.graph->FindNode(link->origin_id);
    if (origin == nullptr) {
      return NodeStatus(ErrorCode::kNotFound, consumer,
                        "link " + std::to_string(link_id) + " comes from node " + link->origin_id +
                            ", which does not exist");
    }
    Dto origin_dto{consumer.graph, origin, consumer.parent, Prefix(consumer.parent) + origin->id};
    return ResolveOutput(origin_dto, link->origin_slot, type, depth + 1);
  }

  // Instance input `slot`, reached from inside its definition through the -10 boundary node.
  Result<Resolved> ResolveBoundaryInput(const Dto& consumer, const Instance* instance, int slot,
                                        const std::string& type, int depth) const {
    if (instance == nullptr) {
      return NodeStatus(ErrorCode::kParse, consumer,
                        "a link comes from the subgraph input node (-10) outside a subgraph");
    }
    const UiNode& node = *instance->dto.node;
    if (slot >= 0 && slot < static_cast<int>(node.inputs.size()) && node.inputs[slot].link) {
      return ResolveLink(instance->dto, *node.inputs[slot].link, type, depth + 1);
    }
    if (slot >= 0 && slot < static_cast<int>(instance->promoted.size()) &&
        instance->promoted[slot]) {
      Resolved r;
      r.kind = Resolved::Kind::kValue;
      r.value = *instance->promoted[slot];
      return r;
    }
    return Resolved{};
  }

  Result<Resolved> ResolveOutput(const Dto& dto, int slot, const std::string& type,
                                 int depth) const {
    if (depth > kMaxResolveDepth) {
      return NodeStatus(ErrorCode::kCycle, dto,
                        "links loop through bypassed, virtual or subgraph nodes");
    }
    const UiNode& node = *dto.node;
    if (node.mode == kModeNever) return Resolved{};
    if (node.mode == kModeBypass) {
      const std::vector<EffectiveInput> inputs = EffectiveInputs(dto);
      const int index = BypassSlotIndex(dto, inputs, slot, type);
      if (index < 0) return Resolved{};
      if (!inputs[index].link) return Resolved{};
      return ResolveLink(dto, *inputs[index].link, type, depth + 1);
    }
    if (const UiGraph* def = InstanceDefinition(node)) {
      auto it = instances_.find(dto.exec_id);
      if (it == instances_.end()) return Resolved{};
      const Instance* instance = it->second.get();
      const UiLink* inner = nullptr;
      if (slot >= 0 && slot < static_cast<int>(def->outputs.size())) {
        for (int64_t id : def->outputs[slot].link_ids) {
          if ((inner = def->FindLink(id)) != nullptr) break;
        }
      }
      if (inner == nullptr) {
        for (const auto& [id, link] : def->links) {
          if (link.target_id == kSubgraphOutputId && link.target_slot == slot) {
            inner = &link;
            break;
          }
        }
      }
      if (inner == nullptr) return Resolved{};
      if (inner->origin_id == kSubgraphInputId) {
        return ResolveBoundaryInput(dto, instance, inner->origin_slot, type, depth + 1);
      }
      const UiNode* origin = def->FindNode(inner->origin_id);
      if (origin == nullptr) {
        return NodeStatus(ErrorCode::kNotFound, dto,
                          "subgraph output " + std::to_string(slot) + " comes from node " +
                              inner->origin_id + ", which is not in the subgraph");
      }
      Dto inner_dto{def, origin, instance, Prefix(instance) + origin->id};
      return ResolveOutput(inner_dto, inner->origin_slot, type, depth + 1);
    }
    if (!node.is_virtual) {
      Resolved r;
      r.kind = Resolved::Kind::kLink;
      r.node_id = dto.exec_id;
      r.slot = slot;
      return r;
    }
    if (node.type == kRerouteType) {
      if (slot >= 0 && slot < static_cast<int>(node.inputs.size()) && node.inputs[slot].link) {
        return ResolveLink(dto, *node.inputs[slot].link, type, depth + 1);
      }
      return Resolved{};
    }
    if (node.type == kGetNodeType) return ResolveGetNode(dto, type, depth);
    return Resolved{};  // PrimitiveNode, Note: no inputs
  }

  // KJNodes GetNode: continues at the input of the SetNode with the same name, looked for in the
  // Get's own graph, then in the root graph (getInputLink / resolveVirtualOutput).
  Result<Resolved> ResolveGetNode(const Dto& dto, const std::string& type, int depth) const {
    const json& wv = *dto.node->widgets_values;
    if (!wv.is_array() || wv.empty() || !wv[0].is_string()) return Resolved{};
    const std::string& name = wv[0].get_ref<const std::string&>();
    auto find_set = [&](const UiGraph& graph) -> const UiNode* {
      for (const UiNode& n : graph.nodes) {
        if (n.type != kSetNodeType || !n.widgets_values->is_array() || n.widgets_values->empty())
          continue;
        if ((*n.widgets_values)[0] == name) return &n;
      }
      return nullptr;
    };
    const UiNode* set = find_set(*dto.graph);
    const Instance* parent = dto.parent;
    const UiGraph* graph = dto.graph;
    if (set == nullptr && dto.graph != &wf_.root) {
      set = find_set(wf_.root);
      parent = nullptr;
      graph = &wf_.root;
    }
    if (set == nullptr) {
      return NodeStatus(ErrorCode::kNotFound, dto,
                        "GetNode '" + name + "' has no SetNode with that name");
    }
    if (set->inputs.empty() || !set->inputs[0].link) return Resolved{};
    Dto set_dto{graph, set, parent, Prefix(parent) + set->id};
    return ResolveLink(set_dto, *set->inputs[0].link, type, depth + 1);
  }

  // ---- flattening ---------------------------------------------------------------------------
  Status Expand(const UiGraph& graph, const Instance* parent, int nesting) {
    if (nesting > kMaxSubgraphNesting) {
      return NodeStatus(ErrorCode::kCycle, parent->dto,
                        "subgraphs nest deeper than " + std::to_string(kMaxSubgraphNesting) +
                            " levels (a subgraph contains itself?)");
    }
    for (const UiNode& node : graph.nodes) {
      Dto dto{&graph, &node, parent, Prefix(parent) + node.id};
      if (const UiGraph* def = InstanceDefinition(node)) {
        // Muted and bypassed instances are not expanded (newest ExecutableNodeDTO).
        if (node.mode == kModeNever || node.mode == kModeBypass) continue;
        auto instance = std::make_unique<Instance>();
        instance->dto = dto;
        instance->definition = def;
        DISCOMFORT_RETURN_IF_ERROR(FillInstanceValues(instance.get()));
        const Instance* raw = instance.get();
        instances_[dto.exec_id] = std::move(instance);
        DISCOMFORT_RETURN_IF_ERROR(Expand(*def, raw, nesting + 1));
        continue;
      }
      if (node.is_virtual) continue;
      if (node.mode == kModeNever || node.mode == kModeBypass) continue;
      if (!defs_.Has(node.type)) {
        std::string hint = node.type.rfind("workflow", 0) == 0
                               ? " (a legacy group node whose definition is missing from "
                                 "extra.groupNodes?)"
                               : " (a custom node that is not installed, or a renamed node?)";
        return NodeStatus(
            ErrorCode::kNotFound, dto,
            "unknown node type '" + node.type + "': not in the node definitions" + hint);
      }
      order_.push_back(dto);
    }
    return Status::Ok();
  }

  // Per-instance widget values: promoted widgets (subgraphs) or group widgets (legacy groups).
  Status FillInstanceValues(Instance* instance) {
    const UiNode& node = *instance->dto.node;
    const UiGraph& def = *instance->definition;
    const json& wv = *node.widgets_values;
    if (auto group = wf_.GroupNodeName(node.type)) {
      const GroupDef& g = groups_.at(*group);
      if (!wv.is_array()) return Status::Ok();
      size_t i = 0;
      for (const GroupWidget& w : g.widgets) {
        if (i >= wv.size()) break;
        const json& v = wv[i++];
        if (!v.is_null()) instance->overrides[w.inner_id][w.widget] = v;
        if (w.control_slots > 0 && i < wv.size() && IsControlValue(wv[i])) {
          ++i;
          if (w.control_slots > 1 && i < wv.size() && wv[i].is_string()) ++i;
        }
      }
      return Status::Ok();
    }
    // proxyWidgets era: values positional over properties.proxyWidgets.
    const json& proxies = JsonMember(*node.properties, "proxyWidgets", JsonNull());
    if (proxies.is_array() && !proxies.empty()) {
      if (!wv.is_array()) return Status::Ok();
      for (size_t i = 0; i < proxies.size() && i < wv.size(); ++i) {
        const json& p = proxies[i];
        if (!p.is_array() || p.size() < 2 || !p[1].is_string()) continue;
        auto inner = NodeIdToString(p[0]);
        if (!inner || *inner == "-1"sv || wv[i].is_null()) continue;
        instance->overrides[*inner][p[1].get<std::string>()] = wv[i];
      }
      return Status::Ok();
    }
    // io-widget era: one value per instance input that feeds an inner widget.
    instance->promoted.assign(def.inputs.size(), std::nullopt);
    size_t next = 0;
    for (size_t k = 0; k < def.inputs.size(); ++k) {
      if (!InputFeedsWidget(def, k, node)) continue;
      const size_t at = next++;
      if (wv.is_array() && at < wv.size()) {
        instance->promoted[k] = wv[at];
      } else if (wv.is_object() && wv.contains(def.inputs[k].name)) {
        instance->promoted[k] = wv[def.inputs[k].name];
      }
    }
    return Status::Ok();
  }

  bool InputFeedsWidget(const UiGraph& def, size_t k, const UiNode& instance) const {
    if (k < instance.inputs.size() && !instance.inputs[k].widget_name.empty()) return true;
    for (int64_t id : def.inputs[k].link_ids) {
      const UiLink* link = def.FindLink(id);
      if (link == nullptr) continue;
      const UiNode* target = def.FindNode(link->target_id);
      if (target == nullptr) continue;
      int idx = target->InputIndexOfLink(id);
      if (idx < 0) idx = link->target_slot;
      if (idx < 0 || idx >= static_cast<int>(target->inputs.size())) continue;
      const UiInput& in = target->inputs[idx];
      if (!in.widget_name.empty()) return true;
      if (const NodeDef* nd = defs_.Find(target->type); nd && nd->FindWidget(in.name)) return true;
    }
    return false;
  }

  // ---- emission -----------------------------------------------------------------------------
  // A node's widget values as the frontend holds them when it queues: saved values, PrimitiveNode
  // pushes, then the subgraph / group instance's values.
  Result<std::vector<WidgetValue>> FinalWidgets(const Dto& dto, const NodeDef& def) const {
    DISCOMFORT_ASSIGN_OR_RETURN(std::vector<WidgetValue> widgets, ComputeWidgets(dto, def));
    ApplyPrimitive(dto, &widgets);
    if (dto.parent != nullptr) {
      auto it = dto.parent->overrides.find(dto.node->id);
      if (it != dto.parent->overrides.end()) {
        for (WidgetValue& w : widgets) {
          auto v = it->second.find(w.spec->name);
          if (v != it->second.end()) {
            w.value = &v->second;
            w.replace_text = false;
          }
        }
      }
    }
    return widgets;
  }

  // Thread-safe (reads the converter's state only): large workflows emit their nodes in
  // parallel. Inputs whose text goes through the templating are added to `template_inputs`.
  Result<json> Emit(size_t index, std::vector<std::string>* template_inputs) const {
    const Dto& dto = order_[index];
    const UiNode& node = *dto.node;
    const NodeDef& def = *defs_.Find(node.type);
    DISCOMFORT_ASSIGN_OR_RETURN(std::vector<WidgetValue> widgets, FinalWidgets(dto, def));
    const bool save_node = options_.text_replacements && def.save_node;
    json inputs(json::value_t::object);
    auto& members = inputs.get_ref<json::object_t&>();
    for (WidgetValue& w : widgets) {
      if (!w.spec->to_prompt) continue;
      if (w.spec->dynamic_prompts && options_.dynamic_prompts && w.value->is_string()) {
        const std::string& text = w.value->get_ref<const std::string&>();
        // Only text with a comment or a choice changes; most prompts skip the copy.
        if (text.find_first_of("{/") != std::string::npos) {
          SeededChooser chooser(options_.dynamic_prompt_seed, dto.exec_id + "\n" + w.spec->name);
          w.owned = ProcessDynamicPrompt(text, std::ref(chooser));
          w.value = &w.owned;
        }
      }
      if (options_.text_replacements && w.value->is_string() &&
          (w.replace_text || (save_node && w.spec->name == "filename_prefix"sv)) &&
          w.value->get_ref<const std::string&>().find('%') != std::string::npos) {
        template_inputs->push_back(w.spec->name);
      }
      members.insert_or_assign(w.spec->name, WrapForPrompt(*w.value, w.spec->type == "CURVE"sv));
    }
    for (const UiInput& input : node.inputs) {
      if (!input.link || input.name.empty()) continue;
      DISCOMFORT_ASSIGN_OR_RETURN(Resolved r,
                                  ResolveLink(dto, *input.link, ConsumerType(&def, input), 0));
      if (r.kind == Resolved::Kind::kLink) {
        // A link whose origin is not emitted cannot be executed: the key goes, widget value
        // included (graphToPrompt step 5).
        if (!std::binary_search(emitted_.begin(), emitted_.end(), std::string_view(r.node_id),
                                ShorterFirst)) {
          members.erase(input.name);
          continue;
        }
        members.insert_or_assign(input.name, MakeLink({std::move(r.node_id), r.slot}));
      } else if (r.kind == Resolved::Kind::kValue) {
        members.insert_or_assign(input.name, WrapForPrompt(r.value));
      }
    }
    json entry = PromptEntry(std::move(inputs), node.type);
    if (options_.include_meta) {
      json meta(json::value_t::object);
      meta.get_ref<json::object_t&>().emplace("title", node.title ? *node.title : def.display_name);
      entry.get_ref<json::object_t&>().emplace("_meta", std::move(meta));
    }
    return entry;
  }

  // ---- text replacements (saveImageExtraOutput.ts) ------------------------------------------
  // `%Node.widget%` looks a node up by its "Node name for S&R" property (which the frontend sets
  // to the node type on every non-save node it creates), then by title, in graph order; the value
  // is the widget's, before any link replaces it in the prompt.
  Status ApplyTemplates(json* output) const {
    if (templates_.empty()) return Status::Ok();
    std::tm now{};
    const std::time_t t = std::chrono::system_clock::to_time_t(
        options_.now ? *options_.now : std::chrono::system_clock::now());
    localtime_r(&t, &now);
    auto sr_name = [](const Dto& d) {
      const json& p = JsonMember(*d.node->properties, "Node name for S&R", JsonNull());
      if (p.is_string()) return p.get<std::string>();
      return IsSaveNodeType(d.node->type) ? std::string() : d.node->type;
    };
    auto title = [&](const Dto& d) {
      if (d.node->title) return *d.node->title;
      const NodeDef* def = defs_.Find(d.node->type);
      return def ? def->display_name : d.node->type;
    };
    WidgetLookup lookup = [&](const std::string& node_ref,
                              const std::string& widget) -> std::optional<json> {
      const Dto* found = nullptr;
      for (const Dto& d : order_) {
        if (sr_name(d) == node_ref) {
          found = &d;
          break;
        }
      }
      if (found == nullptr) {
        for (const Dto& d : order_) {
          if (title(d) == node_ref) {
            found = &d;
            break;
          }
        }
      }
      if (found == nullptr) return std::nullopt;
      const NodeDef* def = defs_.Find(found->node->type);
      if (def == nullptr) return std::nullopt;
      auto widgets = FinalWidgets(*found, *def);
      if (!widgets.ok()) return std::nullopt;
      for (const WidgetValue& w : *widgets) {
        if (w.spec->name == widget) return *w.value;
      }
      return std::nullopt;
    };
    for (const Template& t : templates_) {
      json& inputs = (*output)[order_[t.dto].exec_id]["inputs"];
      auto it = inputs.find(t.input);
      if (it == inputs.end() || !it->is_string()) continue;  // replaced by a link
      *it = ApplyTextReplacements(it->get<std::string>(), lookup, now);
    }
    return Status::Ok();
  }

  // ---- legacy group nodes -------------------------------------------------------------------
  Result<GroupDef> BuildGroupDef(const std::string& name, const json& def) const {
    const std::string pointer = "/extra/groupNodes/" + name;
    ErrorLocation where;
    where.workflow = options_.source_name;
    where.json_pointer = pointer;
    where.class_type = "workflow>" + name;
    if (!def.is_object() || !def.contains("nodes") || !def["nodes"].is_array()) {
      return Status(ErrorCode::kParse, "a group node definition needs a 'nodes' array", where);
    }
    GroupDef group;
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
      auto parsed = ParseUiWorkflow(one, options_.source_name);
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
          if (!l.origin && l.target == static_cast<int>(i) &&
              l.target_slot == static_cast<int>(s)) {
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
      const NodeDef* nd = defs_.Find(node.type);
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

  // Ids differ in length more often than not: comparing lengths first skips most memcmp calls.
  static bool ShorterFirst(std::string_view a, std::string_view b) {
    return a.size() != b.size() ? a.size() < b.size() : a < b;
  }

  const UiWorkflow& wf_;
  const NodeDefinitions& defs_;
  const ConvertOptions& options_;
  std::map<std::string, GroupDef> groups_;
  std::map<std::string, std::unique_ptr<Instance>> instances_;
  std::vector<Dto> order_;
  // Exec ids of order_, sorted (views of order_'s strings, which stay put once Expand is done):
  // one allocation where a hash set made one per node.
  std::vector<std::string_view> emitted_;
  struct Template {
    size_t dto;  // index in order_
    std::string input;
  };
  std::vector<Template> templates_;  // widget values that go through applyTextReplacements
};

}  // namespace

Result<json> ConvertUiToApi(const UiWorkflow& workflow, const NodeDefinitions& defs,
                            const ConvertOptions& options) {
  try {
    Converter converter(workflow, defs, options);
    return converter.Run();
  } catch (const std::exception& e) {
    ErrorLocation where;
    where.workflow = options.source_name;
    return Status(ErrorCode::kInternal, std::string("conversion failed: ") + e.what(), where);
  }
}

Result<json> ConvertUiToApi(const json& ui, const NodeDefinitions& defs,
                            const ConvertOptions& options) {
  DISCOMFORT_ASSIGN_OR_RETURN(UiWorkflow workflow, ParseUiWorkflow(ui, options.source_name));
  return ConvertUiToApi(workflow, defs, options);
}

Result<json> ToApiPrompt(const json& doc, const NodeDefinitions* defs,
                         const ConvertOptions& options) {
  const WorkflowFormat format = DetectFormat(doc);
  ErrorLocation where;
  where.workflow = options.source_name;
  switch (format) {
    case WorkflowFormat::kApi: {
      const bool body = doc.contains("prompt") && doc["prompt"].is_object() &&
                        !doc["prompt"].contains("class_type");
      json prompt = body ? doc["prompt"] : doc;
      Status st = ValidateApiPrompt(prompt);
      if (!st.ok()) {
        st.where().workflow = options.source_name;
        return st;
      }
      return prompt;
    }
    case WorkflowFormat::kUiV04:
    case WorkflowFormat::kUiV1:
      if (defs == nullptr) {
        return Status(ErrorCode::kInvalidArgument,
                      "this is a UI-format workflow: converting it to an API prompt needs node "
                      "definitions (pass --object-info FILE, or run with the embedded ComfyUI)",
                      where);
      }
      return ConvertUiToApi(doc, *defs, options);
    case WorkflowFormat::kUnknown:
      break;
  }
  return Status(ErrorCode::kParse,
                "not a ComfyUI workflow: expected a UI workflow (with 'nodes') or an API prompt "
                "(an object of {class_type, inputs} nodes)",
                where);
}

}  // namespace discomfort::graph
