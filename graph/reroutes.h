// Reroute removal: consumers linked straight to the real source of a chain of Reroute nodes.
#pragma once

#include <nlohmann/json.hpp>

#include "discomfort/status.h"

namespace discomfort::graph {

// Removes Reroute nodes from a UI workflow's root graph, linking each consumer straight to the
// real source (chains collapse; a chain with no source drops the link).
Result<nlohmann::json> RemoveReroutes(const nlohmann::json& ui);

}  // namespace discomfort::graph
