// Execution order: node ids sorted so that every node follows the nodes it reads from, for UI
// graphs and API prompts.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "discomfort/status.h"
#include "graph/workflow.h"

namespace discomfort::graph {

// Node ids in an order where every node follows the nodes it reads from; ties keep document
// order. A cycle is a kCycle error listing the nodes on it ("3 -> 5 -> 3").
Result<std::vector<std::string>> TopologicalOrder(const UiGraph& graph);
Result<std::vector<std::string>> TopologicalOrderOfPrompt(const nlohmann::json& prompt);
// For a prompt that already passed ValidateApiPrompt's checks.
Result<std::vector<std::string>> TopologicalOrderOfCheckedPrompt(const nlohmann::json& prompt);

// Orders ids numerically when both are integers ("9" before "10"), else as strings: the order
// in which a prompt's nodes are ordered and renumbered.
bool NodeIdLess(const std::string& a, const std::string& b);

}  // namespace discomfort::graph
