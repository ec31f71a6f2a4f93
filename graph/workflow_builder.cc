// Building: nodes, values and links, each checked against the node definitions when it is added.
// (The two output formats are in workflow_builder_output.cc.)
#include "graph/workflow_builder.h"

#include <algorithm>
#include <cctype>
#include <string_view>
#include <utility>

#include "graph/api_prompt.h"
#include "graph/workflow.h"

namespace discomfort::graph {
namespace {

using nlohmann::json;
using namespace std::string_view_literals;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// The known class closest to `wanted` (case aside: a few edits, or one name containing the
// other), or "" when none is close.
std::string ClosestClass(const NodeDefinitions& defs, const std::string& wanted) {
  const std::string key = Lower(wanted);
  std::string best;
  size_t best_score = std::string::npos;
  for (const auto& [name, entry] : defs.raw().items()) {
    const std::string candidate = Lower(name);
    size_t score = EditDistance(key, candidate);
    const bool contains = !key.empty() && (candidate.find(key) != std::string::npos ||
                                           key.find(candidate) != std::string::npos);
    if (score > std::max<size_t>(2, key.size() / 4) && !contains) continue;
    if (contains)
      score = std::min(score, candidate.size() > key.size() ? candidate.size() - key.size()
                                                            : key.size() - candidate.size());
    if (score < best_score || (score == best_score && name < best)) {
      best = name;
      best_score = score;
    }
  }
  return best;
}

// -1, 0, 1 as a < b, a == b, a > b for two JSON numbers; integers compare exactly (a seed's
// max is 2^64 - 1).
int CompareNumbers(const json& a, const json& b) {
  if (a.is_number_integer() && b.is_number_integer()) {
    auto wide = [](const json& v) -> __int128 {
      return v.is_number_unsigned() ? static_cast<__int128>(v.get<uint64_t>())
                                    : static_cast<__int128>(v.get<int64_t>());
    };
    const __int128 x = wide(a), y = wide(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  const double x = a.get<double>(), y = b.get<double>();
  return x < y ? -1 : x > y ? 1 : 0;
}

const char* KindOf(const json& v) {
  if (v.is_string()) return "a string";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number()) return "a number";
  return v.is_null() ? "null" : v.is_array() ? "a list" : "an object";
}

std::string JoinValues(const json& values, size_t most) {
  std::string text;
  for (size_t i = 0; i < values.size() && i < most; ++i) {
    text +=
        (i ? ", " : "") + (values[i].is_string() ? values[i].get<std::string>() : values[i].dump());
  }
  if (values.size() > most) text += ", ... (" + std::to_string(values.size()) + " values)";
  return text;
}

}  // namespace

Result<NodeRef> WorkflowBuilder::AddNode(const std::string& class_type, const std::string& title) {
  const NodeDef* def = defs_.Find(class_type);
  if (def == nullptr) {
    ErrorLocation where;
    where.class_type = class_type;
    const std::string close = ClosestClass(defs_, class_type);
    return Status(ErrorCode::kNotFound,
                  "unknown node type '" + class_type + "': not in the node definitions" +
                      (close.empty() ? "" : " (did you mean '" + close + "'?)"),
                  where);
  }
  Node node;
  node.id = static_cast<int64_t>(nodes_.size()) + 1;
  node.def = def;
  node.title = title;
  nodes_.push_back(std::move(node));
  return NodeRef{nodes_.back().id};
}

Result<const WorkflowBuilder::Node*> WorkflowBuilder::Find(NodeRef ref) const {
  if (ref.id < 1 || ref.id > static_cast<int64_t>(nodes_.size())) {
    ErrorLocation where;
    where.node_id = std::to_string(ref.id);
    return Status(ErrorCode::kNotFound,
                  "no node " + std::to_string(ref.id) + " in this workflow (it has " +
                      std::to_string(nodes_.size()) + " nodes)",
                  where);
  }
  return &nodes_[ref.id - 1];
}

WorkflowBuilder::Node* WorkflowBuilder::Mutable(NodeRef ref) { return &nodes_[ref.id - 1]; }

std::vector<WorkflowBuilder::CurrentWidget> WorkflowBuilder::CurrentWidgets(
    const Node& node) const {
  std::vector<CurrentWidget> out;
  auto walk = [&](const std::vector<WidgetSpec>& specs, auto& self) -> void {
    for (const WidgetSpec& w : specs) {
      auto set = node.values.find(w.name);
      const json* value = set != node.values.end() ? &set->second : &w.default_value;
      out.push_back({&w, value});
      for (const auto& [key, subs] : w.dynamic_options) {
        if (value->is_string() && value->get_ref<const std::string&>() == key) {
          self(subs, self);
          break;
        }
      }
    }
  };
  walk(node.def->widgets, walk);
  return out;
}

Status WorkflowBuilder::UnknownInput(const Node& node, const std::string& input) const {
  std::string names;
  for (const InputSpec& in : node.def->inputs) names += (names.empty() ? "" : ", ") + in.name;
  for (const CurrentWidget& w : CurrentWidgets(node)) {
    if (w.spec->name.find('.') != std::string::npos) names += ", " + w.spec->name;
  }
  ErrorLocation where;
  where.node_id = std::to_string(node.id);
  where.class_type = node.def->name;
  where.input_name = input;
  return Status(ErrorCode::kNotFound,
                "node " + std::to_string(node.id) + " (" + node.def->name + ") has no input '" +
                    input + "'; its inputs: " + (names.empty() ? "none" : names),
                where);
}

Status WorkflowBuilder::CheckValue(const Node& node, const std::string& input,
                                   const std::string& type, const json& options,
                                   const json& combo_values, const json& value) const {
  ErrorLocation where;
  where.node_id = std::to_string(node.id);
  where.class_type = node.def->name;
  where.input_name = input;
  const std::string subject =
      "input '" + input + "' of node " + where.node_id + " (" + node.def->name + ")";
  auto mismatch = [&](const std::string& expected) {
    return Status(ErrorCode::kTypeMismatch,
                  subject + " is " + type + ": expects " + expected + ", got " + KindOf(value) +
                      " " + value.dump(),
                  where);
  };
  if (type == "INT"sv && !value.is_number_integer()) return mismatch("an integer");
  if (type == "FLOAT"sv && !value.is_number()) return mismatch("a number");
  if (type == "BOOLEAN"sv && !value.is_boolean()) return mismatch("a boolean");
  if ((type == "STRING"sv || type == "MARKDOWN"sv || type == "TEXTAREA"sv) && !value.is_string()) {
    return mismatch("a string");
  }
  if (type == "INT"sv || type == "FLOAT"sv) {
    const json& min = JsonMember(options, "min", JsonNull());
    const json& max = JsonMember(options, "max", JsonNull());
    const bool below = min.is_number() && CompareNumbers(value, min) < 0;
    const bool above = max.is_number() && CompareNumbers(value, max) > 0;
    if (below || above) {
      return Status(ErrorCode::kInvalidArgument,
                    "value " + value.dump() + " for " + subject + " is out of range [" +
                        (min.is_number() ? min.dump() : "-inf") + ", " +
                        (max.is_number() ? max.dump() : "inf") + "]",
                    where);
    }
  }
  if (type == "COMBO"sv || type == "COMFY_DYNAMICCOMBO_V3"sv) {
    if (combo_values.empty()) {
      return value.is_string() ? Status::Ok() : mismatch("one of the combo's names (a string)");
    }
    const bool kind_known =
        std::any_of(combo_values.begin(), combo_values.end(), [&](const json& v) {
          return v.type() == value.type() || (v.is_number() && value.is_number());
        });
    if (!kind_known)
      return mismatch(std::string("one of its values (") + KindOf(combo_values[0]) + ")");
    if (std::find(combo_values.begin(), combo_values.end(), value) == combo_values.end()) {
      return Status(ErrorCode::kInvalidArgument,
                    "value " + value.dump() + " for " + subject +
                        " is not one of the combo's values: " + JoinValues(combo_values, 12),
                    where);
    }
  }
  return Status::Ok();
}

Status WorkflowBuilder::Set(NodeRef ref, const std::string& input, const json& value) {
  DISCOMFORT_ASSIGN_OR_RETURN(const Node* node, Find(ref));
  const InputSpec* spec = node->def->FindInput(input);
  const WidgetSpec* sub = nullptr;  // a DynamicCombo option's widget
  if (spec == nullptr) {
    for (const CurrentWidget& w : CurrentWidgets(*node)) {
      if (w.spec->name == input && input.find('.') != std::string::npos) sub = w.spec;
    }
    if (sub == nullptr) return UnknownInput(*node, input);
  } else if (!spec->is_widget) {
    ErrorLocation where;
    where.node_id = std::to_string(node->id);
    where.class_type = node->def->name;
    where.input_name = input;
    return Status(ErrorCode::kInvalidArgument,
                  "input '" + input + "' of node " + where.node_id + " (" + node->def->name +
                      ") is a " + spec->type +
                      " socket, not a widget: link an output to it (Connect) instead",
                  where);
  }
  if (value.is_null()) {
    Mutable(ref)->values.erase(input);
    return Status::Ok();
  }
  if (spec != nullptr) {
    DISCOMFORT_RETURN_IF_ERROR(
        CheckValue(*node, input, spec->type, spec->options, spec->combo_values, value));
  } else {
    const json& listed = JsonMember(sub->options, "options", JsonEmptyArray());
    DISCOMFORT_RETURN_IF_ERROR(CheckValue(*node, input, sub->type, sub->options,
                                          listed.is_array() ? listed : JsonEmptyArray(), value));
  }
  Mutable(ref)->values[input] = value;
  return Status::Ok();
}

Result<int> WorkflowBuilder::OutputSlot(const Node& node, const OutputRef& output) const {
  const NodeDef& def = *node.def;
  const int count = static_cast<int>(def.output_types.size());
  std::string wanted;
  if (const int* slot = std::get_if<int>(&output.ref())) {
    if (*slot >= 0 && *slot < count) return *slot;
    wanted = "output slot " + std::to_string(*slot);
  } else {
    const std::string& name = std::get<std::string>(output.ref());
    for (int i = 0; i < count; ++i) {
      if (def.output_names[i] == name) return i;
    }
    wanted = "output '" + name + "'";
  }
  std::string outputs;
  for (int i = 0; i < count; ++i) {
    outputs += (i ? ", " : "") + std::to_string(i) + " " + def.output_names[i] + " (" +
               def.output_types[i] + ")";
  }
  ErrorLocation where;
  where.node_id = std::to_string(node.id);
  where.class_type = def.name;
  return Status(ErrorCode::kNotFound,
                "node " + where.node_id + " (" + def.name + ") has no " + wanted +
                    "; its outputs: " + (outputs.empty() ? "none" : outputs),
                where);
}

// Whether `to` is reachable from `from` along links.
bool WorkflowBuilder::Reaches(int64_t from, int64_t to) const {
  std::vector<char> seen(nodes_.size() + 1, 0);
  std::vector<int64_t> todo = {from};
  while (!todo.empty()) {
    const int64_t id = todo.back();
    todo.pop_back();
    if (id == to) return true;
    if (seen[id]) continue;
    seen[id] = 1;
    for (const Node& n : nodes_) {
      for (const auto& [name, link] : n.links) {
        if (link.from == id) todo.push_back(n.id);
      }
    }
  }
  return false;
}

Status WorkflowBuilder::Connect(NodeRef from_ref, const OutputRef& output, NodeRef to_ref,
                                const std::string& input) {
  DISCOMFORT_ASSIGN_OR_RETURN(const Node* from, Find(from_ref));
  DISCOMFORT_ASSIGN_OR_RETURN(const Node* to, Find(to_ref));
  DISCOMFORT_ASSIGN_OR_RETURN(int slot, OutputSlot(*from, output));
  const InputSpec* spec = to->def->FindInput(input);
  if (spec == nullptr) return UnknownInput(*to, input);
  const std::string& out_type = from->def->output_types[slot];
  ErrorLocation where;
  where.node_id = std::to_string(to->id);
  where.class_type = to->def->name;
  where.input_name = input;
  const std::string ends = "output " + std::to_string(slot) + " (" + from->def->output_names[slot] +
                           ") of node " + std::to_string(from->id) + " (" + from->def->name +
                           ") to input '" + input + "' of node " + where.node_id + " (" +
                           to->def->name + ")";
  if (!TypesCompatible(out_type, spec->type)) {
    return Status(ErrorCode::kTypeMismatch,
                  "cannot link " + ends + ": " + out_type + " does not fit " + spec->type, where);
  }
  if (Reaches(to->id, from->id)) {
    return Status(ErrorCode::kCycle, "linking " + ends + " would close a loop", where);
  }
  Link link;
  link.id = ++last_link_id_;
  link.from = from->id;
  link.from_slot = slot;
  link.type = out_type == "*"sv || out_type.empty() ? spec->type : out_type;
  Mutable(to_ref)->links[input] = std::move(link);
  return Status::Ok();
}

Result<NodeRef> WorkflowBuilder::AddPort(const std::string& unique_id,
                                         const std::vector<std::string>& tags, const NodeRef* from,
                                         const OutputRef* output, const NodeRef* to,
                                         const std::string* input) {
  ErrorLocation where;
  where.class_type = kPortClass;
  where.port = unique_id;
  if (!IsUsablePortUniqueId(unique_id)) {
    return Status(ErrorCode::kInvalidArgument, "a DiscomfortPort needs a non-blank unique_id",
                  where);
  }
  std::string joined;
  for (const std::string& tag : tags) {
    if (tag.find(',') != std::string::npos || SplitPortTags(tag).empty()) {
      return Status(ErrorCode::kInvalidArgument,
                    "port '" + unique_id + "': tag '" + tag +
                        "' is blank or holds a comma (tags are saved comma-separated)",
                    where);
    }
    joined += (joined.empty() ? "" : ", ") + tag;
  }
  // The role this port will have, and who already holds its unique_id in that role.
  const bool fed = from != nullptr, read = to != nullptr;
  for (const Node& n : nodes_) {
    if (n.def->name != kPortClass || !(fed ^ read)) continue;
    auto uid = n.values.find("unique_id");
    if (uid == n.values.end() || uid->second != unique_id) continue;
    bool n_read = false;
    for (const Node& m : nodes_) {
      for (const auto& [name, link] : m.links) n_read |= link.from == n.id;
    }
    const bool n_fed = n.links.count("input_data") > 0;
    if (n_fed == fed && n_read == read) {
      where.node_id = std::to_string(n.id);
      return Status(ErrorCode::kAlreadyExists,
                    std::string(fed ? "OUTPUT" : "INPUT") + " port '" + unique_id +
                        "' already exists (node " + where.node_id + ")",
                    where);
    }
  }
  const size_t nodes_before = nodes_.size();
  const int64_t links_before = last_link_id_;
  auto build = [&]() -> Result<NodeRef> {
    DISCOMFORT_ASSIGN_OR_RETURN(NodeRef port, AddNode(kPortClass));
    DISCOMFORT_RETURN_IF_ERROR(Set(port, "unique_id", unique_id));
    if (!joined.empty()) DISCOMFORT_RETURN_IF_ERROR(Set(port, "tags", joined));
    if (fed) DISCOMFORT_RETURN_IF_ERROR(Connect(*from, *output, port, "input_data"));
    if (read) DISCOMFORT_RETURN_IF_ERROR(Connect(port, 0, *to, *input));
    return port;
  };
  auto port = build();
  if (!port.ok()) {  // leave the builder as it was
    nodes_.resize(nodes_before);
    last_link_id_ = links_before;
  }
  return port;
}

Result<NodeRef> WorkflowBuilder::AddInputPort(const std::string& unique_id, NodeRef to,
                                              const std::string& input,
                                              const std::vector<std::string>& tags) {
  return AddPort(unique_id, tags, nullptr, nullptr, &to, &input);
}

Result<NodeRef> WorkflowBuilder::AddOutputPort(const std::string& unique_id, NodeRef from,
                                               const OutputRef& output,
                                               const std::vector<std::string>& tags) {
  return AddPort(unique_id, tags, &from, &output, nullptr, nullptr);
}

Result<NodeRef> WorkflowBuilder::AddPassthroughPort(const std::string& unique_id, NodeRef from,
                                                    const OutputRef& output, NodeRef to,
                                                    const std::string& input,
                                                    const std::vector<std::string>& tags) {
  return AddPort(unique_id, tags, &from, &output, &to, &input);
}

}  // namespace discomfort::graph
