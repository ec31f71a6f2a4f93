// UI-format workflow → API-format prompt, natively: the frontend's graphToPrompt rules (see
// shared/notes/ui_to_api.md) driven by node definitions instead of a browser.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "discomfort/status.h"
#include "graph/node_definitions.h"
#include "graph/workflow.h"

namespace discomfort::graph {

struct ConvertOptions {
  std::string source_name;   // file name for error locations
  bool include_meta = true;  // emit `_meta: {title}` per node
  // Dynamic prompts in STRING widgets flagged `dynamicPrompts` (CLIPTextEncode.text, ...): comments
  // stripped and `{a|b}` choices made, as the frontend does when it queues. The frontend picks
  // with Math.random(); here each choice is a function of (seed, node id, widget name), so the same
  // seed gives the same prompt and a loop can vary it by changing the seed.
  bool dynamic_prompts = true;
  uint64_t dynamic_prompt_seed = 0;
  // `filename_prefix` templating on save nodes (%date:FORMAT%, %Node.widget%), and on values that
  // PrimitiveNodes with "Run widget replace on values" push.
  bool text_replacements = true;
  // The clock for %date:...% (local time); unset = now.
  std::optional<std::chrono::system_clock::time_point> now = std::nullopt;
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
