// The widget values a subgraph instance gives the nodes inside it (§5.1): promoted widgets of the
// io-widget era (one value per instance input that feeds an inner widget) and of the proxyWidgets
// era (values positional over properties.proxyWidgets).
#pragma once

#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "graph/node_definitions.h"
#include "graph/widget_values.h"
#include "graph/workflow.h"

namespace discomfort::graph {

// Reads `instance`'s widgets_values against its subgraph `definition`. proxyWidgets-era values
// land in `overrides`; io-widget-era values in `promoted` (resized to one slot per instance
// input, empty where the input feeds no widget or no value is saved).
void ReadSubgraphWidgetValues(const UiGraph& definition, const UiNode& instance,
                              const NodeDefinitions& defs,
                              std::vector<std::optional<nlohmann::json>>* promoted,
                              InnerWidgetValues* overrides);

}  // namespace discomfort::graph
