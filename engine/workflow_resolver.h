// Turns workflow files and documents (UI or API format) into API prompts with the node definitions
// of the running ComfyUI, fetched at most once. The CLI, the Python module and the C++ SDK all
// read workflows through this class, so a UI workflow converts the same way everywhere.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "base/thread_annotations.h"
#include "discomfort/status.h"
#include "graph/node_definitions.h"
#include "storage/filesystem.h"

namespace discomfort::engine {

// Whatever knows the node classes of the running ComfyUI (bridge::ComfyBridge; tests use a fixed
// table). ObjectInfo is the /object_info shape.
class NodeDefinitionSource {
 public:
  virtual ~NodeDefinitionSource() = default;
  virtual Result<nlohmann::json> ObjectInfo() = 0;
};

// Thread-safe: several threads may resolve workflows at once; definitions are fetched once.
class WorkflowResolver {
 public:
  // `source` may be null (structure only: UI workflows then fail with a clear error). `fs` null:
  // the real file system. Neither is owned; both must outlive the resolver.
  explicit WorkflowResolver(NodeDefinitionSource* source, storage::FileSystem* fs = nullptr);

  // Reads and parses a JSON file; errors name the file.
  Result<nlohmann::json> ReadJson(const std::string& path) const;
  // The API prompt of a document in either format (UI workflows converted natively).
  Result<nlohmann::json> ToApi(const nlohmann::json& document, const std::string& name);
  // ReadJson + ToApi.
  Result<nlohmann::json> LoadApi(const std::string& path);

  // The node definitions (fetched on first use).
  Result<std::shared_ptr<const graph::NodeDefinitions>> Definitions() EXCLUDES(mu_);
  // The raw /object_info document, for port types; null when no source can give it.
  Result<std::shared_ptr<const nlohmann::json>> ObjectInfo() EXCLUDES(mu_);
  // Drops the cached definitions (after more custom nodes were loaded).
  void Forget() EXCLUDES(mu_);

  storage::FileSystem& fs() const { return *fs_; }

 private:
  Status FetchLocked() REQUIRES(mu_);

  NodeDefinitionSource* const source_;
  storage::FileSystem* const fs_;
  Mutex mu_;
  std::shared_ptr<const nlohmann::json> object_info_ GUARDED_BY(mu_);
  std::shared_ptr<const graph::NodeDefinitions> definitions_ GUARDED_BY(mu_);
};

}  // namespace discomfort::engine
