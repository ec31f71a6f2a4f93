// API prompts on arbitrary bytes: parsing (bare or /prompt body), DiscomfortPort discovery with
// and without node definitions, the execution rewrite (loaders, savers, passthrough), and pruning
// to each OUTPUT port.
#include <cstddef>
#include <cstdint>
#include <string>

#include "graph/api_prompt.h"
#include "graph/workflow_ops.h"
#include "tests/fuzz/fuzz_util.h"

using namespace discomfort;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const graph::NodeDefinitions& defs = fuzz::Definitions();
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto prompt = graph::ParseApiPrompt(text, "fuzz.json");
  if (!prompt.ok()) return 0;

  for (const nlohmann::json* info : {static_cast<const nlohmann::json*>(nullptr), &defs.raw()}) {
    auto ports = graph::DiscoverPorts(*prompt, info);
    if (!ports.ok()) continue;
    (void)ports->ToJson();
    auto rewritten = graph::RewritePortsForExecution(*prompt, *ports);
    if (rewritten.ok()) {
      (void)graph::ValidateApiPrompt(*rewritten);
      (void)graph::TopologicalOrderOfPrompt(*rewritten);
    }
    for (const auto& out : ports->outputs)
      (void)graph::PruneToOutput(*prompt, out.unique_id, &defs);
  }
  (void)graph::DiscoverWorkflowPorts(*prompt, &defs, "fuzz.json");
  return 0;
}
