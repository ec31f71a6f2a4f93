#include "cli/workflow_loading.h"

#include <fstream>
#include <sstream>

#include "graph/api_prompt.h"
#include "graph/ui_to_api.h"
#include "graph/workflow.h"

namespace discomfort::cli {

Result<const graph::NodeDefinitions*> ObjectInfoCache::Get() {
  if (!cached_) {
    DISCOMFORT_ASSIGN_OR_RETURN(nlohmann::json info, provider_());
    DISCOMFORT_ASSIGN_OR_RETURN(graph::NodeDefinitions defs, graph::NodeDefinitions::FromJson(std::move(info)));
    cached_ = std::move(defs);
  }
  return &*cached_;
}

Result<nlohmann::json> ReadJsonFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  ErrorLocation where;
  where.workflow = path;
  if (!in) return Status(ErrorCode::kNotFound, "cannot open workflow file " + path, where);
  std::stringstream buffer;
  buffer << in.rdbuf();
  try {
    return nlohmann::json::parse(buffer.str());
  } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for 1e400
    return Status(ErrorCode::kParse, std::string("malformed JSON: ") + e.what(), where);
  }
}

Result<nlohmann::json> LoadWorkflowAsApi(const std::string& path, ObjectInfoCache& object_info) {
  DISCOMFORT_ASSIGN_OR_RETURN(nlohmann::json doc, ReadJsonFile(path));
  const graph::WorkflowFormat format = graph::DetectFormat(doc);
  const graph::NodeDefinitions* defs = nullptr;
  if (format == graph::WorkflowFormat::kUiV04 || format == graph::WorkflowFormat::kUiV1) {
    auto loaded = object_info.Get();  // UI workflows need node definitions
    if (!loaded.ok()) return loaded.TakeStatus();
    defs = *loaded;
  }
  auto prompt = graph::ToApiPrompt(doc, defs);
  if (!prompt.ok()) {
    Status st = prompt.TakeStatus();
    if (st.where().workflow.empty()) st.where().workflow = path;
    return st;
  }
  return prompt;
}

}  // namespace discomfort::cli
