// Pruning: the minimal sub-workflow that produces one OUTPUT port.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "discomfort/status.h"
#include "graph/node_definitions.h"

namespace discomfort::graph {

// The minimal sub-workflow producing OUTPUT port `unique_id`: the port node and every node it
// depends on. UI workflows keep their metadata; links and node link fields are cleaned.
Result<nlohmann::json> PruneToOutput(const nlohmann::json& doc, const std::string& unique_id,
                                     const NodeDefinitions* defs = nullptr);

}  // namespace discomfort::graph
