// A node's saved widget values read against its definition, as the frontend reads them when it
// loads a workflow: positional `widgets_values` with the tolerant control-slot rule (§2.2–2.3),
// dict-shaped and named values (§2.4), legacy forceInput slots (§2.6), load fix-ups, and the
// values PrimitiveNodes push into the widgets they feed (§4).
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "discomfort/status.h"
#include "graph/node_definitions.h"
#include "graph/workflow.h"

namespace discomfort::graph {

// True for what the frontend saves in a control_after_generate slot ("fixed", "randomize", ...,
// or the boolean of 2023 saves).
bool IsControlValue(const nlohmann::json& v);

// A widget value as a prompt carries it: a list becomes {"__value__": list} (the backend would
// read a bare [string, int] as a link), with "__type__": "CURVE" for curve widgets.
nlohmann::json WrapForPrompt(const nlohmann::json& v, bool curve = false);

// A widget's value as a reference into the definitions or the workflow (copied once, into the
// prompt); `owned` holds values made here (load fix-ups).
struct WidgetValue {
  const WidgetSpec* spec = nullptr;
  const nlohmann::json* value = nullptr;
  nlohmann::json owned = nullptr;
  bool replace_text = false;  // pushed by a PrimitiveNode with "Run widget replace on values"
};

// The widgets of `node` in creation order with their saved values (definition defaults where
// none is saved). A value of the wrong type is a kTypeMismatch naming the widget; errors name the
// node by `exec_id` (its id in the prompt) and `source`. The result is never grown afterwards:
// a value may point at the `owned` member of an element.
Result<std::vector<WidgetValue>> ReadWidgetValues(const UiNode& node, const NodeDef& def,
                                                  const std::string& exec_id,
                                                  const std::string& source);

// Values a subgraph or group node instance gives the widgets inside it: inner node id -> widget
// name -> value.
using InnerWidgetValues = std::map<std::string, std::map<std::string, nlohmann::json>>;

// PrimitiveNode.applyToGraph: a PrimitiveNode's value is pushed into the widget of each input of
// `node` (a node of `graph`) that it feeds.
void ApplyPrimitivePushes(const UiGraph& graph, const UiNode& node,
                          std::vector<WidgetValue>* values);

}  // namespace discomfort::graph
