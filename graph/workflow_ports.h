// DiscomfortPort discovery on UI workflows, and on either format through one call. (API prompts'
// discovery and the port vocabulary live in api_prompt.h.)
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "discomfort/status.h"
#include "graph/api_prompt.h"
#include "graph/node_definitions.h"
#include "graph/workflow.h"

namespace discomfort::graph {

// DiscomfortPorts of a UI workflow's root graph, read as the original Discomfort did: connectivity
// from the links array (a link into slot 0 makes it consume, a link out of slot 0 makes it
// produce); INPUT/PASSTHRU type = the target socket of its first outgoing link, OUTPUT type = the
// source slot of its incoming link, "*" when unknown. `unique_id` is widgets_values[0] and optional
// tags widgets_values[1] ("a,b", split by SplitPortTags). A missing unique_id, or one unique_id on
// two INPUTs or on two OUTPUTs, is an error naming both nodes.
Result<PortSet> DiscoverUiPorts(const UiWorkflow& workflow);
// The same, but a unique_id on several INPUTs or OUTPUTs is kept: stitching reads the merged
// graph this way and resolves the clashes itself.
Result<PortSet> DiscoverUiPortsAllowingClashes(const UiWorkflow& workflow);

// Either format: UI workflows as above, API prompts through DiscoverPorts (types from `defs`).
Result<PortSet> DiscoverWorkflowPorts(const nlohmann::json& doc, const NodeDefinitions* defs,
                                      const std::string& source_name = {});

// The original's pass_by_rules: MODEL, CLIP, VAE, CONDITIONING, CONTROL_NET travel by reference
// (a recipe); everything else by value.
const char* PassByForType(const std::string& type);

}  // namespace discomfort::graph
