// Checkpoints for resume: the context snapshot plus run.json (what the run was and the next
// iteration), in one folder. Two snapshot generations alternate ("context-a", "context-b") and the
// atomic rename of run.json commits one, so a crash at any point leaves the previous checkpoint
// usable, never a new context paired with an old iteration count.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "discomfort/status.h"
#include "storage/context.h"
#include "storage/filesystem.h"

namespace discomfort::engine {

// `fs` null: the real file system. `manifest` is stored as given, plus next_iteration, context
// (the generation folder) and not_persisted (keys whose values a snapshot cannot hold).
Status SaveCheckpoint(const storage::Context& context, const std::string& dir,
                      nlohmann::json manifest, int next_iteration,
                      storage::FileSystem* fs = nullptr);

struct Checkpoint {
  nlohmann::json manifest;  // as given to SaveCheckpoint, plus next_iteration
  int next_iteration = 0;
};
// Reads run.json and loads its snapshot into `context`.
Result<Checkpoint> LoadCheckpoint(const std::string& dir, storage::Context& context,
                                  storage::FileSystem* fs = nullptr);

}  // namespace discomfort::engine
