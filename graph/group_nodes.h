// Legacy group nodes (§5.2): a node of type "workflow>NAME" (or "workflow/NAME") whose inner graph
// is saved in extra.groupNodes[NAME]. Its definition is turned into a subgraph-like graph that the
// converter expands as it expands subgraphs, inner nodes getting ids "<group>:<index>".
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "discomfort/status.h"
#include "graph/node_definitions.h"
#include "graph/widget_values.h"
#include "graph/workflow.h"

namespace discomfort::graph {

// One widget the group node shows: widget `widget` of inner node `inner_id`.
struct GroupNodeWidget {
  std::string inner_id;
  std::string widget;
  int control_slots = 0;
};

// A group node definition as a graph (inner node ids = their index in the definition's nodes).
struct GroupNodeDef {
  // The nodes' JSON, which graph's nodes borrow from. A moved json keeps its heap contents where
  // they are, so the vector may grow.
  std::vector<nlohmann::json> documents;
  UiGraph graph;
  std::vector<GroupNodeWidget> widgets;  // in the order of the group node's widgets_values
};

// Builds the graph of extra.groupNodes[`name`] = `def`: inner links, boundary inputs (every inner
// socket not fed from inside, GroupNodeConfig's order), outputs (not consumed inside, or listed as
// external) and widgets (not fed from inside, not hidden by the config). A malformed definition
// is a kParse error at its JSON pointer; `source` names the workflow.
Result<GroupNodeDef> BuildGroupNodeDef(const std::string& name, const nlohmann::json& def,
                                       const NodeDefinitions& defs, const std::string& source);

// A group node instance's positional widgets_values spread over the inner widgets they belong to
// (null values keep the inner node's own).
void ReadGroupWidgetValues(const GroupNodeDef& group, const nlohmann::json& widgets_values,
                           InnerWidgetValues* values);

}  // namespace discomfort::graph
