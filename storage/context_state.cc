// The context store's state and its machinery: accounting, LRU spill to safetensors files and
// reload (storage/context_state.h). storage/context.cc is the public Context on top of it.
#include "storage/context_state.h"

#include <unistd.h>

#include <ATen/core/Tensor.h>
#include <c10/core/DeviceGuard.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <exception>
#include <sstream>

#include <spdlog/spdlog.h>

#include "storage/safetensors.h"

namespace discomfort::storage {
namespace detail {

namespace {
std::atomic<uint64_t> g_next_version{1};
}  // namespace

// Process-wide: two contexts never give out the same version, so a loader's cache key (the
// version) identifies a value across contexts.
uint64_t NextVersion() { return g_next_version.fetch_add(1); }

Status NoValue(const std::string& key) {
  ErrorLocation where;
  where.port = key;
  return Status(ErrorCode::kNotFound, "the context has no value for '" + key + "'", where);
}

std::string HumanBytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  std::ostringstream out;
  out.precision(unit == 0 ? 0 : 1);
  out << std::fixed << value << " " << units[unit];
  return out.str();
}

std::string ShapeText(const Entry& entry) {
  std::string text = std::string(c10::toString(entry.dtype)) + "[";
  for (size_t i = 0; i < entry.shape.size(); ++i) {
    text += (i ? "," : "") + std::to_string(entry.shape[i]);
  }
  return text + "]";
}

std::optional<uint64_t> GiBToBytes(double gib) {
  if (!(gib >= 0)) return std::nullopt;  // NaN or negative: unlimited
  return static_cast<uint64_t>(std::llround(gib * 1024.0 * 1024.0 * 1024.0));
}

std::string DefaultTempRoot() {
  const char* tmpdir = std::getenv("TMPDIR");
  return tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp";
}

void ModelSpillFromEnvironment(ModelSpill* mode) {
  const char* value = std::getenv("DISCOMFORT_MODEL_SPILL");
  if (value == nullptr || *value == '\0') return;
  const std::string text = value;
  if (text == "auto") {
    *mode = ModelSpill::kAuto;
  } else if (text == "write") {
    *mode = ModelSpill::kWrite;
  } else if (text == "drop") {
    *mode = ModelSpill::kDrop;
  } else {
    spdlog::warn("[discomfort] DISCOMFORT_MODEL_SPILL={} is not auto, write or drop; ignored",
                 text);
  }
}

bool ForceSpillFromEnvironment() {
  const char* value = std::getenv("DISCOMFORT_FORCE_SPILL");
  return value != nullptr && *value != '\0' && std::string(value) != "0";
}

// DISCOMFORT_RELOAD=read|map, for comparing the two without rebuilding (benchmarks/handoff).
void ReloadModeFromEnvironment(ReloadMode* mode) {
  const char* value = std::getenv("DISCOMFORT_RELOAD");
  if (value == nullptr || *value == '\0') return;
  const std::string text = value;
  if (text == "read") {
    *mode = ReloadMode::kRead;
  } else if (text == "map") {
    *mode = ReloadMode::kMap;
  } else {
    spdlog::warn("[discomfort] DISCOMFORT_RELOAD={} is neither 'read' nor 'map'; ignored", text);
  }
}

std::string NewTempDirName(const std::string& root) {
  static std::atomic<uint64_t> sequence{0};
  return root + "/" + kTempDirPrefix + std::to_string(::getpid()) + "-" +
         std::to_string(sequence.fetch_add(1));
}

Entry ContextState::MakeEntry(Value value) {
  Entry entry;
  entry.kind = value.kind();
  switch (value.kind()) {
    case ValueKind::kTensor: {
      const at::Tensor& tensor = value.tensor();
      if (!tensor.defined()) {
        entry.unspillable = "the tensor is undefined";
        break;
      }
      try {
        entry.dtype = tensor.scalar_type();
        entry.shape = tensor.sizes().vec();
        entry.device = tensor.device().str();
        entry.on_device = !tensor.is_cpu();
        entry.requires_grad = tensor.requires_grad();
        if (tensor.has_storage()) {
          entry.storage = tensor.storage().unsafeGetStorageImpl();
          entry.bytes = tensor.storage().nbytes();
        } else {  // sparse and other storage-less layouts: account the tensor itself
          entry.storage = tensor.unsafeGetTensorImpl();
          entry.bytes = static_cast<uint64_t>(tensor.numel()) * tensor.element_size();
          entry.unspillable = "the tensor has no storage";
        }
        if (entry.unspillable.empty()) CanWriteSafetensors(tensor, &entry.unspillable);
      } catch (const std::exception& error) {
        entry.unspillable = error.what();
      }
      break;
    }
    case ValueKind::kJson:
    case ValueKind::kRecipe:
      entry.bytes = value.ApproxBytes();
      break;
    case ValueKind::kHostObject:
      entry.value = value;
      MeasureHost(entry);
      break;
    case ValueKind::kNone:
      break;
  }
  entry.value = std::move(value);
  return entry;
}

// Called outside the lock: a host object may take the GIL to measure itself.
void ContextState::MeasureHost(Entry& entry) {
  const std::shared_ptr<HostObject>& host = entry.value.host();
  if (!host) return;
  entry.parts = host->MeasureMemory();
  entry.model = host->CanSpillTensors();
  if (entry.parts.empty()) {
    entry.bytes = host->ApproxBytes();
    return;
  }
  entry.bytes = 0;
  for (const HostMemoryPart& part : entry.parts) entry.bytes += part.bytes;
}

void ContextState::AddResident(Entry& entry) {
  switch (entry.kind) {
    case ValueKind::kTensor: {
      if (entry.storage == nullptr) return;
      StorageUse& use = storages[entry.storage];
      if (use.refs++ == 0) {
        use.bytes = entry.bytes;
        use.on_device = entry.on_device;
        (use.on_device ? device_bytes : ram_bytes) += use.bytes;
      }
      return;
    }
    case ValueKind::kJson:
    case ValueKind::kRecipe:
      ram_bytes += entry.bytes;
      return;
    case ValueKind::kHostObject:
      host_bytes += entry.bytes;
      for (const HostMemoryPart& part : entry.parts) {
        HostPartUse& use = host_parts[{part.id, part.device}];
        if (use.refs++ > 0) continue;  // counted by the entry that brought it
        use.bytes = part.bytes;
        use.spillable = part.spillable;
        use.resident = true;
        if (part.device == "cpu") {
          ram_bytes += use.bytes;
          host_ram_bytes += use.bytes;
        } else {
          host_device_bytes += use.bytes;
        }
      }
      return;
    case ValueKind::kNone:
      return;
  }
}

void ContextState::RemoveResident(Entry& entry) {
  switch (entry.kind) {
    case ValueKind::kTensor: {
      if (entry.storage == nullptr) return;
      auto it = storages.find(entry.storage);
      if (it == storages.end()) return;
      if (--it->second.refs == 0) {
        (it->second.on_device ? device_bytes : ram_bytes) -= it->second.bytes;
        storages.erase(it);
      }
      entry.storage = nullptr;
      return;
    }
    case ValueKind::kJson:
    case ValueKind::kRecipe:
      ram_bytes -= entry.bytes;
      return;
    case ValueKind::kHostObject:
      host_bytes -= entry.bytes;
      for (const HostMemoryPart& part : entry.parts) {
        auto it = host_parts.find({part.id, part.device});
        if (it == host_parts.end() || --it->second.refs > 0) continue;
        const HostPartUse& use = it->second;
        if (part.device != "cpu") {
          host_device_bytes -= use.bytes;
        } else if (use.resident) {
          ram_bytes -= use.bytes;
          host_ram_bytes -= use.bytes;
        } else {
          host_spilled_bytes -= use.bytes;
        }
        host_parts.erase(it);
      }
      return;
    case ValueKind::kNone:
      return;
  }
}

void ContextState::Retire(Entry& entry) {
  // The object may live on elsewhere (a ComfyUI cache) and keep mapping these files: an
  // unlinked file stays readable through its mapping, and its space returns when that goes.
  for (const std::string& file : entry.model_files) {
    Status removed = fs->RemoveFile(file);
    if (!removed.ok()) spdlog::warn("[discomfort] {}", removed.ToString());
  }
  disk_bytes -= entry.model_file_bytes;
  entry.model_files.clear();
  entry.model_file_bytes = 0;
  if (entry.where == Residence::kDisk) {
    disk_bytes -= entry.spill_file_bytes;
    Status removed = fs->RemoveFile(entry.spill_path);
    if (!removed.ok()) spdlog::warn("[discomfort] {}", removed.ToString());
  } else {
    RemoveResident(entry);  // an in-flight spill finds the entry gone and removes its file
  }
}

Status ContextState::EnsureTempDir() {
  if (temp_dir_ready) return Status::Ok();
  // Our pid in the name: a folder already there was left by a dead process with our pid.
  if (fs->Exists(temp_dir)) DISCOMFORT_RETURN_IF_ERROR(fs->RemoveAll(temp_dir));
  DISCOMFORT_RETURN_IF_ERROR(fs->CreateDir(temp_dir));
  temp_dir_ready = true;
  return Status::Ok();
}

Result<at::Tensor> TensorFromFile(FileSystem& fs, const std::string& path, const std::string& key,
                                  const SafetensorsReadOptions& read) {
  auto contents = ReadSafetensors(fs, path, read);
  if (!contents.ok()) return contents.TakeStatus();
  auto& tensors = contents->tensors;
  for (auto& [name, tensor] : tensors) {
    if (name == key) return tensor;
  }
  if (tensors.size() == 1) return tensors.front().second;
  return Status(ErrorCode::kNotFound, path + " holds " + std::to_string(tensors.size()) +
                                          " tensors and none is named '" + key + "'");
}

Result<Value> ContextState::PeekLocked(const std::string& key, const Entry& entry) const {
  if (entry.where != Residence::kDisk) return entry.value;
  auto tensor = TensorFromFile(*fs, entry.spill_path, key);
  if (!tensor.ok()) return tensor.TakeStatus();
  return Value::Tensor(std::move(tensor).value());
}

bool ContextState::BeginSpill(const std::string& key, Entry& victim, SpillJob* job, Status* error) {
  Status ready = EnsureTempDir();
  if (!ready.ok()) {
    *error = Status(ready.code(), "cannot create the spill folder: " + ready.message());
    return false;
  }
  victim.where = Residence::kSpilling;
  job->key = key;
  job->version = victim.version;
  job->tensor = victim.value.tensor();
  // A fresh name per attempt: a file an aborted attempt still has to delete (outside the lock)
  // must never be the file of a later attempt for the same version.
  job->path = temp_dir + "/" + std::to_string(victim.version) + "-" +
              std::to_string(++spill_files) + ".safetensors";
  job->on_device = victim.on_device;
  auto use = storages.find(victim.storage);
  job->freed_estimate = use != storages.end() && use->second.refs == 1 ? use->second.bytes : 0;
  (job->on_device ? device_spilling : ram_spilling) += job->freed_estimate;
  return true;
}

void ContextState::Observe(std::string_view what, const std::string& key, uint64_t bytes,
                           std::chrono::steady_clock::time_point start) const {
  std::shared_ptr<const Context::IoObserver> fn;
  {
    MutexLock lock(observer_mu);
    fn = observer;
  }
  if (fn && *fn) (*fn)(what, key, bytes, start, std::chrono::steady_clock::now());
}

void ContextState::EmitEvent(const nlohmann::json& event) const {
  std::vector<std::shared_ptr<const Context::EventObserver>> observers;
  {
    MutexLock lock(observer_mu);
    for (const auto& [_, fn] : event_observers) observers.push_back(fn);
  }
  for (const auto& fn : observers) {
    if (fn && *fn) (*fn)(event);
  }
}

Status ContextState::FinishSpill(SpillJob& job) {
  const auto started = std::chrono::steady_clock::now();
  SafetensorsWriteOptions write_options;
  write_options.sync = options.sync_spill_files;
  write_options.chunk_bytes = options.io_chunk_bytes;
  write_options.metadata = {{"discomfort.key", job.key},
                            {"discomfort.device", job.tensor.device().str()},
                            {"discomfort.requires_grad", job.tensor.requires_grad() ? "1" : "0"}};
  Status written = WriteSafetensors(*fs, job.path, {{job.key, job.tensor}}, write_options);
  if (written.ok()) Observe("spill", job.key, static_cast<uint64_t>(job.tensor.nbytes()), started);
  uint64_t file_bytes = 0;
  if (written.ok()) {
    auto size = fs->FileSize(job.path);
    if (size.ok()) {
      file_bytes = *size;
    } else {
      written = size.TakeStatus();
    }
  }
  // A partial file is garbage; if removing it fails too, the context's folder goes with the
  // context.
  if (!written.ok()) fs->RemoveFile(job.path).IgnoreError();

  bool remove_file = false;
  {
    MutexLock lock(mu);
    (job.on_device ? device_spilling : ram_spilling) -= job.freed_estimate;
    auto it = entries.find(job.key);
    const bool unchanged = it != entries.end() && it->second.version == job.version &&
                           it->second.where == Residence::kSpilling;
    if (!unchanged) {
      remove_file = written.ok();  // replaced or erased meanwhile
    } else if (!written.ok() || it->second.pins > 0) {
      it->second.where = Residence::kMemory;
      remove_file = written.ok();  // pinned meanwhile: it stays in memory
    } else {
      Entry& entry = it->second;
      RemoveResident(entry);
      entry.value = Value();
      entry.where = Residence::kDisk;
      entry.spill_path = job.path;
      entry.spill_file_bytes = file_bytes;
      disk_bytes += file_bytes;
      ++spills;
    }
  }
  // The value was replaced or pinned meanwhile; a file left behind goes with the context's folder.
  if (remove_file) fs->RemoveFile(job.path).IgnoreError();
  if (written.ok()) return written;
  spdlog::warn("[discomfort] spilling '{}' failed, it stays in memory: {}", job.key,
               written.ToString());
  ErrorLocation where;
  where.port = job.key;
  return Status(
      written.code(),
      "spilling '" + job.key + "' (" + job.tensor.device().str() + ", " +
          HumanBytes(static_cast<uint64_t>(job.tensor.numel()) * job.tensor.element_size()) +
          ") to " + job.path + " failed; the value stays in memory: " + written.message(),
      where);
  // job.tensor is released by the caller, outside the lock.
}

Status ContextState::Enforce(const std::string* exclude) {
  Status first_error;
  std::set<uint64_t> failed_versions;  // not retried in this pass
  while (true) {
    SpillJob job;
    ModelSpillJob model_job;
    bool model = false;
    {
      MutexLock lock(mu);
      // In-flight spills will free their estimate; written without subtraction because an
      // erase during a spill can leave the estimate above the bytes still counted.
      const bool ram_over = ram_budget && ram_bytes > *ram_budget + ram_spilling;
      const bool device_over = device_budget && device_bytes > *device_budget + device_spilling;
      if (!options.force_spill && !ram_over && !device_over) break;
      Entry* victim = nullptr;
      const std::string* victim_key = nullptr;
      // Models leave RAM for the RAM budget only (ComfyUI manages their accelerator memory), and
      // never in the force-spill test mode, which is about tensors.
      const std::set<HostPartKey> pinned_parts = ram_over ? PinnedParts() : std::set<HostPartKey>();
      for (auto& [key, entry] : entries) {
        if (ram_over && entry.kind == ValueKind::kHostObject && entry.model &&
            entry.where == Residence::kMemory && entry.pins == 0 &&
            failed_versions.count(entry.version) == 0 && (exclude == nullptr || key != *exclude) &&
            ModelCanLeave(entry, pinned_parts)) {
          if (victim == nullptr || entry.last_use < victim->last_use) {
            victim = &entry;
            victim_key = &key;
          }
          continue;
        }
        if (entry.kind != ValueKind::kTensor || entry.where != Residence::kMemory ||
            entry.pins > 0 || !entry.unspillable.empty() ||
            failed_versions.count(entry.version) > 0 || (exclude != nullptr && key == *exclude)) {
          continue;
        }
        if (!options.force_spill && !(entry.on_device ? device_over : ram_over)) continue;
        if (victim == nullptr || entry.last_use < victim->last_use) {
          victim = &entry;
          victim_key = &key;
        }
      }
      if (victim == nullptr) break;
      model = victim->kind == ValueKind::kHostObject;
      if (model) {
        BeginModelSpill(*victim_key, *victim, &model_job);
      } else {
        Status error;
        if (!BeginSpill(*victim_key, *victim, &job, &error)) {
          if (first_error.ok()) first_error = error;
          break;
        }
      }
    }
    Status spilled = model ? FinishModelSpill(model_job) : FinishSpill(job);
    if (!spilled.ok()) {
      failed_versions.insert(model ? model_job.version : job.version);
      if (first_error.ok()) first_error = spilled;
    }
  }
  return first_error;
}

Result<at::Tensor> ContextState::LoadSpilled(const std::string& key, const std::string& path,
                                             bool on_device, const std::string& device_name,
                                             bool requires_grad) const {
  SafetensorsReadOptions read;
  read.load = options.reload == ReloadMode::kMap ? SafetensorsLoad::kMap : SafetensorsLoad::kRead;
  read.threads = options.reload_threads;
  read.chunk_bytes = options.reload_chunk_bytes;
  auto loaded = TensorFromFile(*fs, path, key, read);
  if (!loaded.ok()) {
    ErrorLocation where;
    where.port = key;
    // kIO also for a vanished file: the key exists, its data is what is lost.
    const ErrorCode code =
        loaded.status().code() == ErrorCode::kNotFound ? ErrorCode::kIO : loaded.status().code();
    return Status(code,
                  "reloading '" + key + "' from " + path + " failed: " + loaded.status().message(),
                  where);
  }
  at::Tensor tensor = std::move(loaded).value();
  try {
    if (on_device) {
      c10::Device device(device_name);
      c10::DeviceGuard guard(device);
      tensor = tensor.to(device);
    }
    if (requires_grad && tensor.is_floating_point()) tensor.requires_grad_(true);
  } catch (const std::exception& error) {
    ErrorLocation where;
    where.port = key;
    return Status(ErrorCode::kIO,
                  "reloading '" + key + "' to " + device_name + " failed: " + error.what(), where);
  }
  return tensor;
}

Result<Value> ContextState::Acquire(const std::string& key, bool pin, uint64_t* version) {
  for (int attempt = 0; attempt < 8; ++attempt) {
    MutexLock lock(mu);
    auto it = entries.find(key);
    if (it == entries.end()) return NoValue(key);
    Entry& entry = it->second;
    entry.last_use = ++clock;
    if (entry.where != Residence::kDisk) {
      if (pin) ++entry.pins;
      if (version != nullptr) *version = entry.version;
      Value value = entry.value;
      const uint64_t restored = entry.model ? RestoreModelParts(entry) : 0;
      if (restored == 0) return value;
      lock.Unlock();
      EmitEvent(
          {{"event", "model_restore"}, {"key", key}, {"bytes", restored}, {"how", "page_in"}});
      // Room for the model coming back; its own key is the most recent use and is kept.
      Status enforced = Enforce(&key);
      if (!enforced.ok()) spdlog::warn("[discomfort] {}", enforced.ToString());
      return value;
    }

    // Spilled. A map is cheap and happens under the lock; a full read or a device copy happens
    // outside it and is committed only if the entry did not change meanwhile.
    const std::string path = entry.spill_path;
    const std::string device_name = entry.device;
    const uint64_t loaded_version = entry.version;
    const bool on_device = entry.on_device;
    const bool requires_grad = entry.requires_grad;
    const bool outside = on_device || options.reload == ReloadMode::kRead;
    std::optional<Result<at::Tensor>> read;
    const auto started = std::chrono::steady_clock::now();
    if (outside) {
      lock.Unlock();  // `entry` may go away from here on
      read.emplace(LoadSpilled(key, path, on_device, device_name, requires_grad));
      lock.Lock();
    } else {
      read.emplace(LoadSpilled(key, path, on_device, device_name, requires_grad));
    }
    Result<at::Tensor>& loaded = *read;
    if (loaded.ok()) Observe("reload", key, static_cast<uint64_t>(loaded->nbytes()), started);
    if (outside) {
      it = entries.find(key);
      const bool same_version = it != entries.end() && it->second.version == loaded_version;
      if (!same_version || it->second.where != Residence::kDisk) {
        // Replaced, erased, or reloaded by another thread: its value (or absence) wins, except
        // that a plain Get may return what it read before a replacement.
        if (!same_version && loaded.ok() && !pin) {
          if (version != nullptr) *version = loaded_version;
          return Value::Tensor(std::move(loaded).value());
        }
        lock.Unlock();  // the unused copy is freed outside the lock
        continue;
      }
    }
    if (!loaded.ok()) return loaded.TakeStatus();  // still spilled: a later Get tries again
    Entry& current = it->second;
    disk_bytes -= current.spill_file_bytes;
    // A mapping outlives the file: removing it now frees disk space once the tensor dies.
    Status removed = fs->RemoveFile(current.spill_path);
    if (!removed.ok()) spdlog::warn("[discomfort] {}", removed.ToString());
    current.spill_path.clear();
    current.spill_file_bytes = 0;
    current.value = Value::Tensor(std::move(loaded).value());
    current.storage = current.value.tensor().storage().unsafeGetStorageImpl();
    current.bytes = current.value.tensor().storage().nbytes();
    current.where = Residence::kMemory;
    AddResident(current);
    ++reloads;
    if (pin) ++current.pins;
    if (version != nullptr) *version = current.version;
    Value value = current.value;
    lock.Unlock();
    // Room for the reloaded value; its own key is the most recent use and is kept.
    Status enforced = Enforce(&key);
    if (!enforced.ok()) spdlog::warn("[discomfort] {}", enforced.ToString());
    return value;
  }
  return Status(ErrorCode::kInternal, "'" + key + "' kept changing while it was being pinned");
}

void ContextState::Unpin(const std::string& key, uint64_t version) {
  bool model = false;
  {
    MutexLock lock(mu);
    auto it = entries.find(key);
    if (it != entries.end() && it->second.version == version && it->second.pins > 0) {
      --it->second.pins;
      model = it->second.model;
    }
  }
  if (model) Remeasure(key, version);
}

}  // namespace detail

}  // namespace discomfort::storage
