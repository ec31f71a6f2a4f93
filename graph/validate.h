// Validation of a workflow in either format that reports every problem at once, each naming its
// node.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "discomfort/status.h"
#include "graph/node_definitions.h"

namespace discomfort::graph {

// Every problem found (empty when none): links to missing nodes or link ids, unknown node types and
// link type mismatches (with `defs`), missing required inputs (API, with `defs`), cycles, port
// unique_id clashes. Each Status names the node.
std::vector<Status> ValidateWorkflow(const nlohmann::json& doc, const NodeDefinitions* defs,
                                     const std::string& source_name = {});

}  // namespace discomfort::graph
