// Stitching on arbitrary bytes: up to three workflows (UI or API, separated by a "@@@@" line)
// joined in order, with each combination of the port-deletion options; the first byte picks
// the options. Mixed formats convert through the v0.33.0 node definitions.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "graph/ui_to_api.h"
#include "graph/workflow_ops.h"
#include "tests/fuzz/fuzz_util.h"

using namespace discomfort;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const graph::NodeDefinitions& defs = fuzz::Definitions();
  graph::StitchOptions options;
  options.delete_input_ports = data[0] & 1;
  options.delete_output_ports = data[0] & 2;
  const bool with_defs = !(data[0] & 4);
  std::vector<nlohmann::json> docs;
  std::vector<std::string> names;
  for (std::string_view part :
       fuzz::SplitDocuments({reinterpret_cast<const char*>(data) + 1, size - 1}, 3)) {
    nlohmann::json doc = fuzz::ParseOrDiscard(part);
    if (doc.is_discarded()) return 0;
    docs.push_back(std::move(doc));
    names.push_back("part" + std::to_string(names.size()) + ".json");
  }
  auto stitched = graph::StitchWorkflows(docs, options, names, with_defs ? &defs : nullptr);
  if (stitched.ok()) {
    (void)stitched->ports.ToJson();
    (void)graph::ValidateWorkflow(stitched->workflow, &defs);
    (void)graph::ToApiPrompt(stitched->workflow, &defs);
  }
  return 0;
}
