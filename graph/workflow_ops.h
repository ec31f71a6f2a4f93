// What users do with workflows as data: DiscomfortPort discovery on UI workflows, execution order,
// stitching several workflows into one, pruning to the producer of one output, Reroute removal and
// validation that reports every problem. Works on UI workflows and API prompts alike.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "graph/api_prompt.h"
#include "graph/node_definitions.h"
#include "graph/status.h"
#include "graph/workflow.h"

namespace discomfort::graph {

// ---- ports --------------------------------------------------------------------------------

// DiscomfortPorts of a UI workflow's root graph, read as the original Discomfort did: connectivity
// from the links array (a link into slot 0 makes it consume, a link out of slot 0 makes it
// produce); INPUT/PASSTHRU type = the target socket of its first outgoing link, OUTPUT type = the
// source slot of its incoming link, "*" when unknown. `unique_id` is widgets_values[0] and optional
// tags widgets_values[1] ("a,b"). A missing unique_id, or one unique_id on two INPUTs or on two
// OUTPUTs, is an error naming both nodes.
Result<PortSet> DiscoverUiPorts(const UiWorkflow& workflow);

// Either format: UI workflows as above, API prompts through DiscoverPorts (types from `defs`).
Result<PortSet> DiscoverWorkflowPorts(const nlohmann::json& doc, const NodeDefinitions* defs,
                                      const std::string& source_name = {});

// The original's pass_by_rules: MODEL, CLIP, VAE, CONDITIONING, CONTROL_NET travel by reference
// (a recipe); everything else by value.
const char* PassByForType(const std::string& type);

// ---- order --------------------------------------------------------------------------------

// Node ids in an order where every node follows the nodes it reads from; ties keep document
// order. A cycle is a kCycle error listing the nodes on it ("3 -> 5 -> 3").
Result<std::vector<std::string>> TopologicalOrder(const UiGraph& graph);
Result<std::vector<std::string>> TopologicalOrderOfPrompt(const nlohmann::json& prompt);
// For a prompt that already passed ValidateApiPrompt's checks.
Result<std::vector<std::string>> TopologicalOrderOfCheckedPrompt(const nlohmann::json& prompt);

// ---- stitching ----------------------------------------------------------------------------

struct StitchOptions {
  bool delete_input_ports = false;   // remove ports that are still INPUTs after stitching
  bool delete_output_ports = false;  // remove ports that are still OUTPUTs after stitching
};

struct StitchResult {
  nlohmann::json workflow;  // UI (schema 0.4) when every part is UI, else an API prompt
  PortSet ports;            // the ports left in the result
  std::vector<std::string> execution_order;
};

// Joins workflows in order: node and link ids renumbered without collisions; an OUTPUT port of an
// earlier workflow feeds the INPUT port with the same unique_id of every later one (both become
// PASSTHRU; a later OUTPUT with the same unique_id shadows it). Incompatible port types are an
// error naming both sides. Parts may be UI or API format; a mix is converted to API with `defs`.
Result<StitchResult> StitchWorkflows(const std::vector<nlohmann::json>& workflows,
                                     const StitchOptions& options = {},
                                     const std::vector<std::string>& names = {},
                                     const NodeDefinitions* defs = nullptr);

// ---- pruning ------------------------------------------------------------------------------

// The minimal sub-workflow producing OUTPUT port `unique_id`: the port node and every node it
// depends on. UI workflows keep their metadata; links and node link fields are cleaned.
Result<nlohmann::json> PruneToOutput(const nlohmann::json& doc, const std::string& unique_id,
                                     const NodeDefinitions* defs = nullptr);

// ---- reroutes -----------------------------------------------------------------------------

// Removes Reroute nodes from a UI workflow's root graph, linking each consumer straight to the
// real source (chains collapse; a chain with no source drops the link).
Result<nlohmann::json> RemoveReroutes(const nlohmann::json& ui);

// ---- validation ---------------------------------------------------------------------------

// Every problem found (empty when none): links to missing nodes or link ids, unknown node types and
// link type mismatches (with `defs`), missing required inputs (API, with `defs`), cycles, port
// unique_id clashes. Each Status names the node.
std::vector<Status> ValidateWorkflow(const nlohmann::json& doc, const NodeDefinitions* defs,
                                     const std::string& source_name = {});

}  // namespace discomfort::graph
