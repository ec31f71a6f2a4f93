#include "cli/workflow_loading.h"

#include <fstream>
#include <sstream>

#include "graph/api_prompt.h"

namespace discomfort::cli {

Result<const nlohmann::json*> ObjectInfoCache::Get() {
  if (!cached_) {
    DISCOMFORT_ASSIGN_OR_RETURN(nlohmann::json info, provider_());
    cached_ = std::move(info);
  }
  return &*cached_;
}

Result<nlohmann::json> ReadJsonFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ErrorLocation where;
    where.workflow = path;
    return Status(ErrorCode::kNotFound, "cannot open workflow file " + path, where);
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  nlohmann::json doc = nlohmann::json::parse(buffer.str(), nullptr, false);
  if (doc.is_discarded()) {
    try {
      (void)nlohmann::json::parse(buffer.str());
    } catch (const nlohmann::json::parse_error& e) {
      ErrorLocation where;
      where.workflow = path;
      return Status(ErrorCode::kParse, std::string("malformed JSON: ") + e.what(), where);
    }
  }
  return doc;
}

Result<nlohmann::json> LoadWorkflowAsApi(const std::string& path, ObjectInfoCache& object_info) {
  DISCOMFORT_ASSIGN_OR_RETURN(nlohmann::json doc, ReadJsonFile(path));
  if (doc.is_object() && doc.contains("nodes") && doc.contains("links")) {
    ErrorLocation where;
    where.workflow = path;
    return Status(ErrorCode::kInvalidArgument,
                  "UI-format workflows need the converter (graph/convert); save with 'Export (API)' meanwhile",
                  where);
  }
  if (doc.is_object() && doc.contains("prompt") && doc["prompt"].is_object()) doc = doc["prompt"];
  Status st = graph::ValidateApiPrompt(doc);
  if (!st.ok()) {
    st.where().workflow = path;
    return st;
  }
  return doc;
}

}  // namespace discomfort::cli
