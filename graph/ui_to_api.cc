#include "graph/ui_to_api.h"

#include <algorithm>
#include <ctime>
#include <map>
#include <memory>
#include <set>
#include <string_view>

#include "graph/api_prompt.h"
#include "graph/group_nodes.h"
#include "graph/parallel.h"
#include "graph/prompt_text.h"
#include "graph/subgraph_widgets.h"
#include "graph/widget_values.h"

namespace discomfort::graph {
namespace {

using nlohmann::json;
using namespace std::string_view_literals;

// Deeper than any sane chain of reroutes/bypasses/subgraph boundaries: a loop in the links.
// Link hops followed before a chain counts as a loop. 4096 overflowed an 8 MiB stack under
// AddressSanitizer (scripts/check), and TBB workers get 4 MiB; no real chain comes near 1024.
constexpr int kMaxResolveDepth = 1024;
constexpr int kMaxSubgraphNesting = 64;

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

class Converter {
 public:
  Converter(const UiWorkflow& wf, const NodeDefinitions& defs, const ConvertOptions& options)
      : wf_(wf), defs_(defs), options_(options) {}

  Result<json> Run() {
    for (const auto& [name, def] : wf_.group_nodes->items()) {
      auto group = BuildGroupNodeDef(name, def, defs_, options_.source_name);
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
    InnerWidgetValues overrides;                // inner node -> widget -> value
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
        FillInstanceValues(instance.get());
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
  void FillInstanceValues(Instance* instance) const {
    const UiNode& node = *instance->dto.node;
    if (auto group = wf_.GroupNodeName(node.type)) {
      ReadGroupWidgetValues(groups_.at(*group), *node.widgets_values, &instance->overrides);
    } else {
      ReadSubgraphWidgetValues(*instance->definition, node, defs_, &instance->promoted,
                               &instance->overrides);
    }
  }

  // ---- emission -----------------------------------------------------------------------------
  // A node's widget values as the frontend holds them when it queues: saved values, PrimitiveNode
  // pushes, then the subgraph / group instance's values.
  Result<std::vector<WidgetValue>> FinalWidgets(const Dto& dto, const NodeDef& def) const {
    DISCOMFORT_ASSIGN_OR_RETURN(
        std::vector<WidgetValue> widgets,
        ReadWidgetValues(*dto.node, def, dto.exec_id, options_.source_name));
    ApplyPrimitivePushes(*dto.graph, *dto.node, &widgets);
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

  // Ids differ in length more often than not: comparing lengths first skips most memcmp calls.
  static bool ShorterFirst(std::string_view a, std::string_view b) {
    return a.size() != b.size() ? a.size() < b.size() : a < b;
  }

  const UiWorkflow& wf_;
  const NodeDefinitions& defs_;
  const ConvertOptions& options_;
  std::map<std::string, GroupNodeDef> groups_;
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
