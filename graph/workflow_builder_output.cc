// A built workflow as an API prompt, and as a UI workflow laid out for the frontend.
#include <algorithm>
#include <queue>
#include <string_view>

#include "graph/api_prompt.h"
#include "graph/widget_values.h"
#include "graph/workflow.h"
#include "graph/workflow_builder.h"

namespace discomfort::graph {
namespace {

using nlohmann::json;
using namespace std::string_view_literals;

// Litegraph's proportions, roughly: a socket row is 20 px, a widget row 24 px, a multiline text
// box five rows; columns and rows of nodes keep clear gaps (the title bar sits above `pos`).
constexpr int kSlotHeight = 20;
constexpr int kWidgetHeight = 24;
constexpr int kMultilineRows = 5;
constexpr int kNodeWidth = 315;
constexpr int kWideNodeWidth = 400;
constexpr int kColumnGap = 100;
constexpr int kRowGap = 80;
constexpr int kMargin = 100;

bool IsMultiline(const WidgetSpec& w) {
  const json& multiline = JsonMember(w.options, "multiline", JsonNull());
  return multiline.is_boolean() && multiline.get<bool>();
}

// The frontend's inputs list of a node: sockets first, then one socket per widget input (which
// a link can turn into an input), each group in definition order.
std::vector<const InputSpec*> UiInputs(const NodeDef& def) {
  std::vector<const InputSpec*> out;
  for (const InputSpec& in : def.inputs) {
    if (!in.is_widget) out.push_back(&in);
  }
  for (const InputSpec& in : def.inputs) {
    if (in.is_widget) out.push_back(&in);
  }
  return out;
}

}  // namespace

Status WorkflowBuilder::CheckComplete() const {
  PortSet ports;
  PortOwners owners;
  std::vector<char> read(nodes_.size() + 1, 0);
  for (const Node& node : nodes_) {
    for (const auto& [name, link] : node.links) read[link.from] = 1;
  }
  for (const Node& node : nodes_) {
    const std::vector<CurrentWidget> widgets = CurrentWidgets(node);
    for (const InputSpec& in : node.def->inputs) {
      if (!in.required || node.links.count(in.name)) continue;
      bool has_value = false;
      for (const CurrentWidget& w : widgets)
        has_value |= w.spec->name == in.name && !w.value->is_null();
      if (in.is_widget && has_value) continue;
      ErrorLocation where;
      where.node_id = std::to_string(node.id);
      where.class_type = node.def->name;
      where.input_name = in.name;
      return Status(
          ErrorCode::kValidation,
          "required input '" + in.name + "' (" + in.type + ") of node " + where.node_id + " (" +
              node.def->name + ") " +
              (in.is_widget ? "has no value and its definition no default" : "is not linked"),
          where);
    }
    if (node.def->name != kPortClass) continue;
    Port port;
    port.node_id = std::to_string(node.id);
    for (const CurrentWidget& w : widgets) {
      if (w.spec->name == "unique_id"sv && w.value->is_string())
        port.unique_id = w.value->get<std::string>();
    }
    port.mode = ClassifyPort(node.links.count("input_data") > 0, read[node.id] != 0);
    DISCOMFORT_RETURN_IF_ERROR(graph::AddPort(std::move(port), &ports, &owners));
  }
  return Status::Ok();
}

Result<json> WorkflowBuilder::ToApiPrompt() const {
  DISCOMFORT_RETURN_IF_ERROR(CheckComplete());
  json prompt = json::object();
  for (const Node& node : nodes_) {
    json inputs = json::object();
    for (const CurrentWidget& w : CurrentWidgets(node)) {
      if (!w.spec->to_prompt) continue;
      inputs[w.spec->name] = WrapForPrompt(*w.value, w.spec->type == "CURVE"sv);
    }
    for (const auto& [name, link] : node.links) {
      inputs[name] = MakeLink({std::to_string(link.from), link.from_slot});
    }
    prompt[std::to_string(node.id)] = {
        {"inputs", std::move(inputs)},
        {"class_type", node.def->name},
        {"_meta", {{"title", node.title.empty() ? node.def->display_name : node.title}}}};
  }
  return prompt;
}

std::vector<int64_t> WorkflowBuilder::ExecutionOrder() const {
  std::vector<int> indegree(nodes_.size() + 1, 0);
  std::vector<std::vector<int64_t>> readers(nodes_.size() + 1);
  for (const Node& node : nodes_) {
    for (const auto& [name, link] : node.links) {
      ++indegree[node.id];
      readers[link.from].push_back(node.id);
    }
  }
  std::priority_queue<int64_t, std::vector<int64_t>, std::greater<>> ready;
  for (const Node& node : nodes_) {
    if (indegree[node.id] == 0) ready.push(node.id);
  }
  std::vector<int64_t> order;
  while (!ready.empty()) {
    const int64_t id = ready.top();
    ready.pop();
    order.push_back(id);
    for (int64_t reader : readers[id]) {
      if (--indegree[reader] == 0) ready.push(reader);
    }
  }
  return order;  // Connect refuses links that close a loop, so every node is here
}

json WorkflowBuilder::UiNodeJson(const Node& node, int order) const {
  json inputs = json::array();
  for (const InputSpec* in : UiInputs(*node.def)) {
    auto link = node.links.find(in->name);
    json entry = {{"name", in->name},
                  {"type", in->type},
                  {"link", link == node.links.end() ? json() : json(link->second.id)}};
    if (in->is_widget) entry["widget"] = {{"name", in->name}};
    inputs.push_back(std::move(entry));
  }
  json outputs = json::array();
  for (size_t slot = 0; slot < node.def->output_types.size(); ++slot) {
    json links = json::array();
    for (const Node& reader : nodes_) {
      for (const auto& [name, link] : reader.links) {
        if (link.from == node.id && link.from_slot == static_cast<int>(slot)) {
          links.push_back(link.id);
        }
      }
    }
    std::sort(links.begin(), links.end());
    outputs.push_back({{"name", node.def->output_names[slot]},
                       {"type", node.def->output_types[slot]},
                       {"links", std::move(links)},
                       {"slot_index", slot}});
  }
  // Positional values in creation order; a control_after_generate widget saves its mode after
  // the value, a combo's also its (empty) filter.
  json values = json::array();
  for (const CurrentWidget& w : CurrentWidgets(node)) {
    values.push_back(*w.value);
    if (w.spec->control_slots > 0) values.push_back("fixed");
    if (w.spec->control_slots > 1) values.push_back("");
  }
  json out = {{"id", node.id},
              {"type", node.def->name},
              {"flags", json::object()},
              {"order", order},
              {"mode", kModeAlways},
              {"inputs", std::move(inputs)},
              {"outputs", std::move(outputs)},
              {"properties", {{"Node name for S&R", node.def->name}}},
              {"widgets_values", std::move(values)}};
  if (!node.title.empty()) out["title"] = node.title;
  return out;
}

Result<json> WorkflowBuilder::ToUiWorkflow() const {
  const std::vector<int64_t> order = ExecutionOrder();
  // Column = one past the deepest node read from; filled in execution order, so every source
  // already has its column.
  std::vector<int> column(nodes_.size() + 1, 0), position(nodes_.size() + 1, 0);
  int columns = 0;
  for (size_t k = 0; k < order.size(); ++k) {
    const Node& node = nodes_[order[k] - 1];
    position[node.id] = static_cast<int>(k);
    for (const auto& [name, link] : node.links) {
      column[node.id] = std::max(column[node.id], column[link.from] + 1);
    }
    columns = std::max(columns, column[node.id] + 1);
  }
  struct Box {
    int width = kNodeWidth;
    int height = 0;
  };
  std::vector<Box> boxes(nodes_.size() + 1);
  std::vector<int> column_width(columns, 0);
  for (const Node& node : nodes_) {
    Box& box = boxes[node.id];
    int sockets = 0, rows = 0;
    for (const InputSpec& in : node.def->inputs) sockets += in.is_widget ? 0 : 1;
    for (const CurrentWidget& w : CurrentWidgets(node)) {
      rows += (IsMultiline(*w.spec) ? kMultilineRows : 1) + w.spec->control_slots;
      if (IsMultiline(*w.spec)) box.width = kWideNodeWidth;
    }
    const int slots = std::max<int>(sockets, static_cast<int>(node.def->output_types.size()));
    box.height = slots * kSlotHeight + rows * kWidgetHeight + 10;
    column_width[column[node.id]] = std::max(column_width[column[node.id]], box.width);
  }
  std::vector<int> column_x(columns, kMargin), next_y(columns, kMargin);
  for (int c = 1; c < columns; ++c)
    column_x[c] = column_x[c - 1] + column_width[c - 1] + kColumnGap;

  json nodes = json::array();
  json links = json::array();
  for (const Node& node : nodes_) {
    json ui = UiNodeJson(node, position[node.id]);
    const Box& box = boxes[node.id];
    const int c = column[node.id];
    ui["pos"] = {column_x[c], next_y[c]};
    ui["size"] = {box.width, box.height};
    next_y[c] += box.height + kRowGap;
    nodes.push_back(std::move(ui));
    const std::vector<const InputSpec*> slots = UiInputs(*node.def);
    for (size_t s = 0; s < slots.size(); ++s) {
      auto link = node.links.find(slots[s]->name);
      if (link == node.links.end()) continue;
      const Link& l = link->second;
      links.push_back({l.id, l.from, l.from_slot, node.id, s, l.type});
    }
  }
  std::sort(links.begin(), links.end(),
            [](const json& a, const json& b) { return a[0].get<int64_t>() < b[0].get<int64_t>(); });
  return json{{"last_node_id", static_cast<int64_t>(nodes_.size())},
              {"last_link_id", last_link_id_},
              {"nodes", std::move(nodes)},
              {"links", std::move(links)},
              {"groups", json::array()},
              {"config", json::object()},
              {"extra", {{"ds", {{"scale", 1}, {"offset", {0, 0}}}}}},
              {"version", 0.4}};
}

}  // namespace discomfort::graph
