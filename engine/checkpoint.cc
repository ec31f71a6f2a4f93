#include "engine/checkpoint.h"

namespace discomfort::engine {
namespace {

using nlohmann::json;

constexpr char kManifestName[] = "run.json";

bool IsGeneration(const json& name) { return name == "context-a" || name == "context-b"; }

}  // namespace

Status SaveCheckpoint(const storage::Context& context, const std::string& dir, json manifest,
                      int next_iteration, storage::FileSystem* fs) {
  if (fs == nullptr) fs = storage::FileSystem::Default();
  if (Status st = fs->CreateDir(dir); !st.ok()) {
    return Status(st.code(), "cannot create checkpoint folder " + dir + ": " + st.message());
  }
  const std::string manifest_path = dir + "/" + kManifestName;
  // The snapshot goes to the generation run.json does NOT name; "context" is the folder of
  // checkpoints written before generations existed.
  std::string current = "context";
  if (auto old_text = fs->ReadFile(manifest_path); old_text.ok()) {
    json old = json::parse(*old_text, nullptr, false);
    if (old.is_object() && old.contains("context") && IsGeneration(old["context"]))
      current = old["context"];
  }
  const std::string generation = current == "context-a" ? "context-b" : "context-a";
  auto report = context.SaveSnapshot(dir + "/" + generation);
  if (!report.ok()) return report.TakeStatus();
  manifest["next_iteration"] = next_iteration;
  manifest["context"] = generation;
  manifest["not_persisted"] = report->not_persisted;
  DISCOMFORT_RETURN_IF_ERROR(
      storage::WriteFileAtomically(*fs, manifest_path, manifest.dump(2) + "\n"));
  // The previous generation is garbage now; if removing it fails the next save overwrites it.
  fs->RemoveAll(dir + "/" + current).IgnoreError();
  return Status::Ok();
}

Result<Checkpoint> LoadCheckpoint(const std::string& dir, storage::Context& context,
                                  storage::FileSystem* fs) {
  if (fs == nullptr) fs = storage::FileSystem::Default();
  const std::string manifest_path = dir + "/" + kManifestName;
  auto text = fs->ReadFile(manifest_path);
  if (!text.ok())
    return Status(ErrorCode::kNotFound, "no checkpoint at " + dir + " (run.json missing)");
  json manifest = json::parse(*text, nullptr, false);
  if (manifest.is_discarded() || !manifest.is_object() || !manifest.contains("next_iteration") ||
      !manifest["next_iteration"].is_number_integer()) {
    return Status(ErrorCode::kParse, manifest_path + " is not a Discomfort checkpoint manifest");
  }
  std::string generation = "context";
  if (manifest.contains("context")) {
    if (!IsGeneration(manifest["context"]) && manifest["context"] != "context") {
      return Status(ErrorCode::kParse, manifest_path + " names no context folder of its own");
    }
    generation = manifest["context"].get<std::string>();
  }
  if (fs->IsSymlink(dir + "/" + generation)) {
    return Status(ErrorCode::kParse, manifest_path +
                                         ": the context folder is a symbolic link; a checkpoint's "
                                         "snapshot must be a folder inside the checkpoint");
  }
  auto report = context.LoadSnapshot(dir + "/" + generation);
  if (!report.ok()) return report.TakeStatus();
  Checkpoint cp;
  cp.next_iteration = manifest["next_iteration"].get<int>();
  cp.manifest = std::move(manifest);
  return cp;
}

}  // namespace discomfort::engine
