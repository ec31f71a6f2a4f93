// Edits of a UI workflow's JSON that stitching, pruning and Reroute removal share: links as
// arrays, node link fields kept in step with them, node filtering.
#pragma once

#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "discomfort/status.h"
#include "graph/workflow.h"

namespace discomfort::graph {

// The root links as [id, origin, origin_slot, target, target_slot, type] arrays (v1 objects are
// converted), in saved order.
nlohmann::json LinksAsArrays(const UiGraph& graph);

// A node id as the UI writes it: a number when it is one, else the string.
nlohmann::json NodeIdJson(const std::string& id);

// Makes every node's inputs[].link / outputs[].links agree with `links` (arrays).
void SyncNodeLinkFields(nlohmann::json* workflow);

// Keeps the nodes whose ids are in `keep` and the links between them.
void FilterUiNodes(nlohmann::json* workflow, const std::set<std::string>& keep);

// A copy of `doc` with its links as arrays; `parsed` receives the model of `doc`.
Result<nlohmann::json> NormalizedUi(const nlohmann::json& doc, const std::string& source,
                                    UiWorkflow* parsed);

}  // namespace discomfort::graph
