#include "engine/workflow_resolver.h"

#include <filesystem>

#include "graph/ui_to_api.h"
#include "graph/workflow.h"

namespace discomfort::engine {

using nlohmann::json;

WorkflowResolver::WorkflowResolver(NodeDefinitionSource* source, storage::FileSystem* fs)
    : source_(source), fs_(fs != nullptr ? fs : storage::FileSystem::Default()) {}

Result<json> WorkflowResolver::ReadJson(const std::string& path) const {
  ErrorLocation where;
  where.workflow = path;
  auto text = fs_->ReadFile(path);
  if (!text.ok()) {
    Status st = text.TakeStatus();
    return Status(st.code(), "cannot read " + path + ": " + st.message(), where);
  }
  return graph::ParseJsonText(*text, path);
}

Result<json> WorkflowResolver::ToApi(const json& document, const std::string& name) {
  const graph::WorkflowFormat format = graph::DetectFormat(document);
  std::shared_ptr<const graph::NodeDefinitions> defs;
  if (format == graph::WorkflowFormat::kUiV04 || format == graph::WorkflowFormat::kUiV1) {
    auto loaded = Definitions();  // only UI workflows need node definitions
    if (!loaded.ok()) {
      Status st = loaded.TakeStatus();
      if (st.where().workflow.empty()) st.where().workflow = name;
      return st;
    }
    defs = std::move(loaded).value();
  }
  graph::ConvertOptions options;
  options.source_name = name;
  auto prompt = graph::ToApiPrompt(document, defs.get(), options);
  if (!prompt.ok()) {
    Status st = prompt.TakeStatus();
    if (st.where().workflow.empty()) st.where().workflow = name;
    return st;
  }
  return prompt;
}

Result<json> WorkflowResolver::LoadApi(const std::string& path) {
  DISCOMFORT_ASSIGN_OR_RETURN(json document, ReadJson(path));
  return ToApi(document, std::filesystem::path(path).filename().string());
}

Status WorkflowResolver::FetchLocked() {
  if (object_info_) return Status::Ok();
  if (source_ == nullptr) {
    return Status(ErrorCode::kInvalidArgument,
                  "UI-format workflows need the node definitions of a running ComfyUI; none is "
                  "available here "
                  "(convert it with `discomfort convert`, or give an API-format prompt)");
  }
  DISCOMFORT_ASSIGN_OR_RETURN(json info, source_->ObjectInfo());
  object_info_ = std::make_shared<const json>(std::move(info));
  return Status::Ok();
}

Result<std::shared_ptr<const graph::NodeDefinitions>> WorkflowResolver::Definitions() {
  MutexLock lock(mu_);
  if (definitions_) return definitions_;
  DISCOMFORT_RETURN_IF_ERROR(FetchLocked());
  DISCOMFORT_ASSIGN_OR_RETURN(graph::NodeDefinitions defs,
                              graph::NodeDefinitions::FromJson(*object_info_));
  definitions_ = std::make_shared<const graph::NodeDefinitions>(std::move(defs));
  return definitions_;
}

Result<std::shared_ptr<const json>> WorkflowResolver::ObjectInfo() {
  MutexLock lock(mu_);
  DISCOMFORT_RETURN_IF_ERROR(FetchLocked());
  return object_info_;
}

void WorkflowResolver::Forget() {
  MutexLock lock(mu_);
  object_info_.reset();
  definitions_.reset();
}

}  // namespace discomfort::engine
