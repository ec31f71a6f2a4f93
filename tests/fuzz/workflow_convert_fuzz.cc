// Workflow parsing and UI→API conversion on arbitrary bytes: format detection, the UI model
// (schema 0.4 / 1, subgraphs, group nodes), conversion with the v0.33.0 node definitions,
// validation, execution order and Reroute removal. Any Status is fine; a crash, a hang or an
// escaped exception is a bug.
#include <cstddef>
#include <cstdint>

#include "graph/ui_to_api.h"
#include "graph/workflow.h"
#include "graph/workflow_ops.h"
#include "tests/fuzz/fuzz_util.h"

using namespace discomfort;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const graph::NodeDefinitions& defs = fuzz::Definitions();
  nlohmann::json doc = fuzz::ParseOrDiscard({reinterpret_cast<const char*>(data), size});
  if (doc.is_discarded()) return 0;

  graph::DetectFormat(doc);
  auto api = graph::ToApiPrompt(doc, &defs, {"fuzz.json", true});
  if (api.ok()) {
    (void)graph::TopologicalOrderOfPrompt(*api);
    (void)api->dump();  // what the engine hands to ComfyUI
  }
  auto ui = graph::ParseUiWorkflow(doc, "fuzz.json");
  if (ui.ok()) {
    (void)graph::ConvertUiToApi(*ui, defs);
    (void)graph::TopologicalOrder(ui->root);
    (void)graph::DiscoverUiPorts(*ui);
    (void)graph::RemoveReroutes(doc);
  }
  (void)graph::ValidateWorkflow(doc, &defs, "fuzz.json");
  (void)graph::ValidateWorkflow(doc, nullptr, "fuzz.json");
  return 0;
}
