// Persistence of the context: Export/Import of one value, SaveSnapshot/LoadSnapshot of all. A host
// object that carries its recipe is saved as that recipe, and comes back as a recipe that a run's
// INPUT port executes when it reads it.
#include <unistd.h>

#include <ATen/core/Tensor.h>
#include <c10/core/DeviceGuard.h>

#include <atomic>
#include <cstdlib>
#include <exception>
#include <stdexcept>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "storage/context.h"
#include "storage/context_state.h"
#include "storage/safetensors.h"

namespace discomfort::storage {
namespace {

constexpr char kSnapshotFormat[] = "discomfort-snapshot";
constexpr int kSnapshotFormatVersion = 1;
constexpr char kManifestName[] = "manifest.json";

std::string UniqueSuffix() {
  static std::atomic<uint64_t> sequence{0};
  return std::to_string(::getpid()) + "-" + std::to_string(sequence.fetch_add(1));
}

std::string ParentDir(const std::string& path) {
  size_t slash = path.find_last_not_of('/');
  if (slash == std::string::npos) return "/";
  slash = path.rfind('/', slash);
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// Removes the staging folders ("<dir>.tmp-<pid>-<n>") that writers killed mid-snapshot (SIGKILL,
// power loss) left beside `dir`: each holds up to a whole snapshot. Found by
// tests/reliability/faults.py (kill9).
void RemoveDeadStaging(FileSystem& fs, const std::string& dir) {
  std::string path = dir;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  const std::string prefix = path.substr(path.find_last_of('/') + 1) + ".tmp-";
  const std::string parent = ParentDir(path);
  auto names = fs.ListDir(parent);
  if (!names.ok()) return;
  for (const std::string& name : *names) {
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const int pid = std::atoi(name.c_str() + prefix.size());
    if (pid <= 0 || pid == ::getpid() || fs.ProcessAlive(pid)) continue;
    fs.RemoveAll(parent + "/" + name).IgnoreError();  // best effort: the next snapshot retries
  }
}

bool EndsWith(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::map<std::string, std::string> TensorMetadata(const std::string& key,
                                                  const at::Tensor& tensor) {
  return {{"discomfort.key", key},
          {"discomfort.device", tensor.device().str()},
          {"discomfort.requires_grad", tensor.requires_grad() ? "1" : "0"}};
}

// A tensor read from a file, moved to the device it was saved from when that device exists.
at::Tensor RestoreDevice(at::Tensor tensor, const std::string& device_name, bool requires_grad) {
  if (!device_name.empty() && device_name != "cpu") {
    try {
      c10::Device device(device_name);
      c10::DeviceGuard guard(device);
      tensor = tensor.to(device);
    } catch (const std::exception& error) {
      spdlog::warn("[discomfort] keeping a tensor saved on {} on the CPU: {}", device_name,
                   error.what());
    }
  }
  if (requires_grad && tensor.is_floating_point()) tensor.requires_grad_(true);
  return tensor;
}

struct Item {
  std::string key;
  uint64_t version = 0;
  Value value;
};

}  // namespace

Status Context::Export(const std::string& key, const std::string& path) const {
  Value value;
  {
    MutexLock lock(state_->mu);
    auto it = state_->entries.find(key);
    if (it == state_->entries.end()) {
      return Status(ErrorCode::kNotFound, "the context has no value for '" + key + "'");
    }
    auto peeked = state_->PeekLocked(key, it->second);
    if (!peeked.ok()) return peeked.TakeStatus();
    value = std::move(peeked).value();
  }
  FileSystem& fs = *state_->fs;
  const std::string temporary = path + ".tmp-" + UniqueSuffix();
  Status written;
  switch (value.kind()) {
    case ValueKind::kTensor: {
      SafetensorsWriteOptions options;
      options.metadata = TensorMetadata(key, value.tensor());
      options.chunk_bytes = state_->options.io_chunk_bytes;
      written = WriteSafetensors(fs, temporary, {{key, value.tensor()}}, options);
      break;
    }
    case ValueKind::kJson:
    case ValueKind::kRecipe:
      written = WriteWholeFile(fs, temporary, value.json().dump(2) + "\n");
      break;
    default:
      return Status(ErrorCode::kTypeMismatch,
                    "cannot export '" + key + "': " + value.Describe() + " has no file form");
  }
  if (written.ok()) written = fs.Rename(temporary, path);
  if (!written.ok()) {
    fs.RemoveFile(temporary).IgnoreError();  // the export's own error is the one to report
    return Status(written.code(), "exporting '" + key + "' to " + path + ": " + written.message());
  }
  return Status::Ok();
}

Status Context::Import(const std::string& key, const std::string& path, ValueKind kind) {
  FileSystem& fs = *state_->fs;
  const bool as_tensor =
      kind == ValueKind::kTensor || (kind == ValueKind::kNone && EndsWith(path, ".safetensors"));
  if (as_tensor) {
    auto contents = ReadSafetensors(fs, path);
    if (!contents.ok()) return contents.TakeStatus();
    at::Tensor chosen;
    for (auto& [name, tensor] : contents->tensors) {
      if (name == key) chosen = tensor;
    }
    if (!chosen.defined() && contents->tensors.size() == 1) {
      chosen = contents->tensors.front().second;
    }
    if (!chosen.defined()) {
      return Status(ErrorCode::kNotFound, path + " holds " +
                                              std::to_string(contents->tensors.size()) +
                                              " tensors and none is named '" + key + "'");
    }
    const auto& meta = contents->metadata;
    auto device = meta.find("discomfort.device");
    auto grad = meta.find("discomfort.requires_grad");
    try {
      chosen = RestoreDevice(chosen, device == meta.end() ? "" : device->second,
                             grad != meta.end() && grad->second == "1");
    } catch (const std::exception& error) {
      return Status(ErrorCode::kIO, "importing " + path + ": " + error.what());
    }
    return Put(key, Value::Tensor(std::move(chosen)));
  }
  if (kind != ValueKind::kNone && kind != ValueKind::kJson && kind != ValueKind::kRecipe) {
    return Status(ErrorCode::kInvalidArgument,
                  std::string("cannot import a ") + ValueKindName(kind) + " from a file");
  }
  auto text = fs.ReadFile(path);
  if (!text.ok()) return text.TakeStatus();
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(*text);
  } catch (const std::exception& error) {
    return Status(ErrorCode::kParse, "importing " + path + ": " + error.what());
  }
  return Put(key, kind == ValueKind::kRecipe ? Value::Recipe(std::move(json))
                                             : Value::Json(std::move(json)));
}

Result<SnapshotReport> Context::SaveSnapshot(const std::string& dir) const {
  // A consistent cut: every value as of one moment (spilled tensors mapped, not reloaded).
  std::vector<Item> items;
  {
    MutexLock lock(state_->mu);
    items.reserve(state_->entries.size());
    for (const auto& [key, entry] : state_->entries) {
      auto value = state_->PeekLocked(key, entry);
      if (!value.ok()) return value.TakeStatus();
      items.push_back({key, entry.version, std::move(value).value()});
    }
  }

  FileSystem& fs = *state_->fs;
  const ContextOptions& options = state_->options;
  const std::string staging = dir + ".tmp-" + UniqueSuffix();
  SnapshotReport report;
  auto attempt = [&]() -> Status {
    DISCOMFORT_RETURN_IF_ERROR(fs.CreateDir(ParentDir(dir)));
    RemoveDeadStaging(fs, dir);
    DISCOMFORT_RETURN_IF_ERROR(fs.RemoveAll(staging));
    DISCOMFORT_RETURN_IF_ERROR(fs.CreateDir(staging + "/tensors"));
    nlohmann::json entries = nlohmann::json::array();
    nlohmann::json not_persisted = nlohmann::json::array();
    for (size_t index = 0; index < items.size(); ++index) {
      const Item& item = items[index];
      const Value& value = item.value;
      nlohmann::json entry = {
          {"key", item.key}, {"kind", ValueKindName(value.kind())}, {"version", item.version}};
      switch (value.kind()) {
        case ValueKind::kTensor: {
          const at::Tensor& tensor = value.tensor();
          std::string why;
          if (!CanWriteSafetensors(tensor, &why)) {
            not_persisted.push_back({{"key", item.key}, {"kind", "tensor"}, {"reason", why}});
            report.not_persisted.push_back(item.key);
            continue;
          }
          const std::string file = "tensors/" + std::to_string(index) + ".safetensors";
          SafetensorsWriteOptions write_options;
          write_options.metadata = TensorMetadata(item.key, tensor);
          write_options.chunk_bytes = options.io_chunk_bytes;
          DISCOMFORT_RETURN_IF_ERROR(
              WriteSafetensors(fs, staging + "/" + file, {{item.key, tensor}}, write_options));
          entry["file"] = file;
          entry["dtype"] = SafetensorsDtypeName(tensor.scalar_type());
          entry["shape"] = tensor.sizes().vec();
          entry["device"] = tensor.device().str();
          entry["requires_grad"] = tensor.requires_grad();
          report.bytes += static_cast<uint64_t>(tensor.numel()) * tensor.element_size();
          break;
        }
        case ValueKind::kJson:
          entry["value"] = value.json();
          break;
        case ValueKind::kRecipe:
          entry["value"] = value.json();
          if (value.rebuild_seconds() >= 0) entry["rebuild_seconds"] = value.rebuild_seconds();
          break;
        case ValueKind::kHostObject: {
          const std::string type_name = value.host() ? value.host()->TypeName() : "null";
          if (value.has_recipe()) {
            // The object is recreated by running its recipe: nothing to pickle, nothing lost.
            entry["kind"] = ValueKindName(ValueKind::kRecipe);
            entry["value"] = value.recipe();
            entry["type"] = type_name;
            if (value.rebuild_seconds() >= 0) entry["rebuild_seconds"] = value.rebuild_seconds();
            break;
          }
          if (!options.serialize_host || !value.host()) {
            not_persisted.push_back({{"key", item.key},
                                     {"kind", "object"},
                                     {"type", type_name},
                                     {"reason", "no recipe, and pickling was not allowed"}});
            report.not_persisted.push_back(item.key);
            continue;
          }
          auto bytes = options.serialize_host(*value.host());
          if (!bytes.ok()) {
            not_persisted.push_back({{"key", item.key},
                                     {"kind", "object"},
                                     {"type", type_name},
                                     {"reason", bytes.status().message()}});
            report.not_persisted.push_back(item.key);
            continue;
          }
          DISCOMFORT_RETURN_IF_ERROR(fs.CreateDir(staging + "/objects"));
          const std::string file = "objects/" + std::to_string(index) + ".bin";
          DISCOMFORT_RETURN_IF_ERROR(WriteWholeFile(fs, staging + "/" + file, *bytes));
          entry["file"] = file;
          entry["type"] = type_name;
          break;
        }
        case ValueKind::kNone:
          break;
      }
      entries.push_back(std::move(entry));
      report.keys.push_back(item.key);
    }
    nlohmann::json manifest = {{"format", kSnapshotFormat},
                               {"format_version", kSnapshotFormatVersion},
                               {"entries", std::move(entries)},
                               {"not_persisted", std::move(not_persisted)}};
    DISCOMFORT_RETURN_IF_ERROR(
        WriteWholeFile(fs, staging + "/" + kManifestName, manifest.dump(2) + "\n"));
    DISCOMFORT_RETURN_IF_ERROR(fs.SyncDir(staging + "/tensors"));
    DISCOMFORT_RETURN_IF_ERROR(fs.SyncDir(staging));
    DISCOMFORT_RETURN_IF_ERROR(fs.ReplaceDir(staging, dir));
    return fs.SyncDir(ParentDir(dir));
  };
  Status saved;
  try {
    saved = attempt();
  } catch (const std::exception& error) {
    saved = Status(ErrorCode::kInternal, error.what());
  }
  if (!saved.ok()) {
    Status cleaned = fs.RemoveAll(staging);
    if (!cleaned.ok()) spdlog::warn("[discomfort] {}", cleaned.ToString());
    return Status(saved.code(),
                  "saving the snapshot " + dir +
                      " failed (the previous snapshot, if any, is untouched): " + saved.message());
  }
  return report;
}

Result<SnapshotReport> Context::LoadSnapshot(const std::string& dir) {
  FileSystem& fs = *state_->fs;
  const ContextOptions& options = state_->options;
  auto fail = [&dir](ErrorCode code, const std::string& why) {
    return Status(code, "loading the snapshot " + dir + ": " + why);
  };
  auto text = fs.ReadFile(dir + "/" + kManifestName);
  if (!text.ok()) return fail(text.status().code(), text.status().message());
  nlohmann::json manifest;
  try {
    manifest = nlohmann::json::parse(*text);
  } catch (const std::exception& error) {
    return fail(ErrorCode::kParse, error.what());
  }
  // json::value() throws on a present key of another type: check the types first.
  if (!manifest.is_object() || !manifest.contains("format") ||
      manifest["format"] != kSnapshotFormat || !manifest.contains("entries") ||
      !manifest["entries"].is_array() ||
      (manifest.contains("format_version") && !manifest["format_version"].is_number_integer())) {
    return fail(ErrorCode::kParse, "manifest.json is not a discomfort snapshot manifest");
  }
  if (manifest.value("format_version", 0) > kSnapshotFormatVersion) {
    return fail(ErrorCode::kParse,
                "written by a newer version (format " + manifest["format_version"].dump() + ")");
  }

  // A file named by the manifest must lie inside the snapshot folder (a relative path without
  // ".."): a snapshot from elsewhere must not make us read, or unpickle, any other file.
  auto inside = [&](const nlohmann::json& entry) -> std::string {
    const std::string file = entry.at("file").get<std::string>();
    bool ok = !file.empty() && file[0] != '/';
    for (size_t start = 0; ok && start <= file.size();) {
      size_t slash = file.find('/', start);
      if (slash == std::string::npos) slash = file.size();
      if (file.compare(start, slash - start, "..") == 0 && slash - start == 2) ok = false;
      start = slash + 1;
    }
    if (!ok) throw std::runtime_error("file '" + file + "' lies outside the snapshot folder");
    // A symbolic link anywhere below the snapshot folder could point at any file of the machine.
    for (size_t slash = file.find('/');; slash = file.find('/', slash + 1)) {
      const std::string part = dir + "/" + file.substr(0, slash);
      if (fs.IsSymlink(part)) {
        throw std::runtime_error("'" + file.substr(0, slash) +
                                 "' is a symbolic link; snapshot files must be plain files "
                                 "inside the snapshot folder");
      }
      if (slash == std::string::npos) break;
    }
    return dir + "/" + file;
  };

  // Read everything first: either all values are put or none.
  SnapshotReport report;
  std::vector<std::pair<std::string, Value>> staged;
  try {
    for (const auto& entry : manifest["entries"]) {
      const std::string key = entry.at("key").get<std::string>();
      const std::string kind = entry.at("kind").get<std::string>();
      if (kind == ValueKindName(ValueKind::kTensor)) {
        auto tensor = detail::TensorFromFile(fs, inside(entry), key);
        if (!tensor.ok()) return fail(tensor.status().code(), tensor.status().message());
        report.bytes += static_cast<uint64_t>(tensor->numel()) * tensor->element_size();
        staged.emplace_back(key, Value::Tensor(RestoreDevice(std::move(tensor).value(),
                                                             entry.value("device", "cpu"),
                                                             entry.value("requires_grad", false))));
      } else if (kind == ValueKindName(ValueKind::kJson)) {
        staged.emplace_back(key, Value::Json(entry.at("value")));
      } else if (kind == ValueKindName(ValueKind::kRecipe)) {
        double rebuild = -1;
        if (entry.contains("rebuild_seconds") && entry["rebuild_seconds"].is_number()) {
          rebuild = entry["rebuild_seconds"].get<double>();
        }
        staged.emplace_back(key, Value::Recipe(entry.at("value"), rebuild));
      } else if (kind == ValueKindName(ValueKind::kHostObject)) {
        if (!options.deserialize_host) {
          report.not_persisted.push_back(key);
          continue;
        }
        auto bytes = fs.ReadFile(inside(entry));
        if (!bytes.ok()) return fail(bytes.status().code(), bytes.status().message());
        auto object = options.deserialize_host(entry.value("type", ""), *bytes);
        if (!object.ok()) return fail(object.status().code(), object.status().message());
        staged.emplace_back(key, Value::Host(std::move(object).value()));
      } else {
        return fail(ErrorCode::kParse, "unknown value kind '" + kind + "' for '" + key + "'");
      }
    }
    if (manifest.contains("not_persisted")) {
      for (const auto& entry : manifest["not_persisted"]) {
        report.not_persisted.push_back(entry.at("key").get<std::string>());
      }
    }
  } catch (const std::exception& error) {
    return fail(ErrorCode::kParse, error.what());
  }

  Status budget;
  for (auto& [key, value] : staged) {
    Status put = Put(key, std::move(value));
    if (!put.ok() && budget.ok()) budget = put;  // stored; only the budget could not be met
    report.keys.push_back(key);
  }
  if (!budget.ok()) spdlog::warn("[discomfort] {}", budget.ToString());
  return report;
}

}  // namespace discomfort::storage
