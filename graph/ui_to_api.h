// UI-format workflow → API-format prompt, natively: the frontend's graphToPrompt rules (see
// shared/notes/ui_to_api.md) driven by node definitions instead of a browser.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "graph/node_definitions.h"
#include "graph/status.h"
#include "graph/workflow.h"

namespace discomfort::graph {

struct ConvertOptions {
  std::string source_name;   // file name for error locations
  bool include_meta = true;  // emit `_meta: {title}` per node
};

// Converts a UI workflow (schema 0.4 or 1, subgraphs and legacy group nodes included). Errors: an
// unknown node type on a node that would run, a link to a missing node or link id, a widget value
// of the wrong type.
Result<nlohmann::json> ConvertUiToApi(const nlohmann::json& ui, const NodeDefinitions& defs,
                                      const ConvertOptions& options = {});
Result<nlohmann::json> ConvertUiToApi(const UiWorkflow& workflow, const NodeDefinitions& defs,
                                      const ConvertOptions& options = {});

// Accepts either format: an API prompt (or a /prompt body) passes through after ValidateApiPrompt;
// a UI workflow is converted, which needs `defs`.
Result<nlohmann::json> ToApiPrompt(const nlohmann::json& doc, const NodeDefinitions* defs,
                                   const ConvertOptions& options = {});

}  // namespace discomfort::graph
