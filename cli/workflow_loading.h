// Reading workflow files for the CLI: API or UI format, transparently.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "graph/node_definitions.h"
#include "graph/status.h"

namespace discomfort::cli {

// Node definitions fetched at most once, and only when a command needs them (a UI workflow).
class ObjectInfoCache {
 public:
  using Provider = std::function<Result<nlohmann::json>()>;
  explicit ObjectInfoCache(Provider provider) : provider_(std::move(provider)) {}
  Result<const graph::NodeDefinitions*> Get();

 private:
  Provider provider_;
  std::optional<graph::NodeDefinitions> cached_;
};

Result<nlohmann::json> ReadJsonFile(const std::string& path);
// The API prompt of a workflow file in either format (UI workflows are converted natively).
Result<nlohmann::json> LoadWorkflowAsApi(const std::string& path, ObjectInfoCache& object_info);

}  // namespace discomfort::cli
