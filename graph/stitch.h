// Stitching: several workflows joined into one, an OUTPUT port of an earlier one feeding the INPUT
// port with the same unique_id of every later one.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "discomfort/status.h"
#include "graph/api_prompt.h"
#include "graph/node_definitions.h"

namespace discomfort::graph {

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

}  // namespace discomfort::graph
