#include "storage/context.h"

#include <unistd.h>

#include <ATen/core/Tensor.h>
#include <c10/core/DeviceGuard.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <exception>
#include <sstream>

#include <spdlog/spdlog.h>

#include "storage/context_state.h"
#include "storage/safetensors.h"

namespace discomfort::storage {
namespace detail {

namespace {
std::atomic<uint64_t> g_next_version{1};
uint64_t NextVersion() { return g_next_version.fetch_add(1); }

}  // namespace

namespace {

constexpr char kTempDirPrefix[] = "discomfort-ctx-";

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

}  // namespace

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
    case ValueKind::kHostObject:
      entry.bytes = value.ApproxBytes();
      break;
    case ValueKind::kNone:
      break;
  }
  entry.value = std::move(value);
  return entry;
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
      return;
    case ValueKind::kNone:
      return;
  }
}

void ContextState::Retire(Entry& entry) {
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

Status ContextState::FinishSpill(SpillJob& job) {
  SafetensorsWriteOptions write_options;
  write_options.sync = options.sync_spill_files;
  write_options.chunk_bytes = options.io_chunk_bytes;
  write_options.metadata = {{"discomfort.key", job.key},
                            {"discomfort.device", job.tensor.device().str()},
                            {"discomfort.requires_grad", job.tensor.requires_grad() ? "1" : "0"}};
  Status written = WriteSafetensors(*fs, job.path, {{job.key, job.tensor}}, write_options);
  uint64_t file_bytes = 0;
  if (written.ok()) {
    auto size = fs->FileSize(job.path);
    if (size.ok()) {
      file_bytes = *size;
    } else {
      written = size.TakeStatus();
    }
  }
  if (!written.ok()) fs->RemoveFile(job.path);  // best effort: a partial file is garbage

  bool remove_file = false;
  {
    std::lock_guard<std::mutex> lock(mu);
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
  if (remove_file) fs->RemoveFile(job.path);
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
    {
      std::lock_guard<std::mutex> lock(mu);
      // In-flight spills will free their estimate; written without subtraction because an
      // erase during a spill can leave the estimate above the bytes still counted.
      const bool ram_over = ram_budget && ram_bytes > *ram_budget + ram_spilling;
      const bool device_over = device_budget && device_bytes > *device_budget + device_spilling;
      if (!options.force_spill && !ram_over && !device_over) break;
      Entry* victim = nullptr;
      const std::string* victim_key = nullptr;
      for (auto& [key, entry] : entries) {
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
      Status error;
      if (!BeginSpill(*victim_key, *victim, &job, &error)) {
        if (first_error.ok()) first_error = error;
        break;
      }
    }
    Status spilled = FinishSpill(job);
    if (!spilled.ok()) {
      failed_versions.insert(job.version);
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
    std::unique_lock<std::mutex> lock(mu);
    auto it = entries.find(key);
    if (it == entries.end()) return NoValue(key);
    Entry& entry = it->second;
    entry.last_use = ++clock;
    if (entry.where != Residence::kDisk) {
      if (pin) ++entry.pins;
      if (version != nullptr) *version = entry.version;
      return entry.value;
    }

    // Spilled. A map is cheap and happens under the lock; a full read or a device copy happens
    // outside it and is committed only if the entry did not change meanwhile.
    const std::string path = entry.spill_path;
    const std::string device_name = entry.device;
    const uint64_t loaded_version = entry.version;
    const bool on_device = entry.on_device;
    const bool requires_grad = entry.requires_grad;
    const bool outside = on_device || options.reload == ReloadMode::kRead;
    if (outside) lock.unlock();  // `entry` may go away from here on
    Result<at::Tensor> loaded = LoadSpilled(key, path, on_device, device_name, requires_grad);
    if (outside) {
      lock.lock();
      it = entries.find(key);
      const bool same_version = it != entries.end() && it->second.version == loaded_version;
      if (!same_version || it->second.where != Residence::kDisk) {
        // Replaced, erased, or reloaded by another thread: its value (or absence) wins, except
        // that a plain Get may return what it read before a replacement.
        if (!same_version && loaded.ok() && !pin) {
          if (version != nullptr) *version = loaded_version;
          return Value::Tensor(std::move(loaded).value());
        }
        lock.unlock();  // the unused copy is freed outside the lock
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
    lock.unlock();
    // Room for the reloaded value; its own key is the most recent use and is kept.
    Status enforced = Enforce(&key);
    if (!enforced.ok()) spdlog::warn("[discomfort] {}", enforced.ToString());
    return value;
  }
  return Status(ErrorCode::kInternal, "'" + key + "' kept changing while it was being pinned");
}

void ContextState::Unpin(const std::string& key, uint64_t version) {
  std::lock_guard<std::mutex> lock(mu);
  auto it = entries.find(key);
  if (it != entries.end() && it->second.version == version && it->second.pins > 0) {
    --it->second.pins;
  }
}

}  // namespace detail

using detail::ContextState;
using detail::Entry;
using detail::Residence;

// ---- PinnedValue ----

PinnedValue::PinnedValue(std::weak_ptr<detail::ContextState> store, std::string key,
                         uint64_t version, Value value)
    : store_(std::move(store)), key_(std::move(key)), version_(version), value_(std::move(value)) {}

PinnedValue::PinnedValue(PinnedValue&& other) noexcept
    : store_(std::move(other.store_)),
      key_(std::move(other.key_)),
      version_(other.version_),
      value_(std::move(other.value_)) {
  other.store_.reset();
}

PinnedValue& PinnedValue::operator=(PinnedValue&& other) noexcept {
  if (this != &other) {
    Release();
    store_ = std::move(other.store_);
    key_ = std::move(other.key_);
    version_ = other.version_;
    value_ = std::move(other.value_);
    other.store_.reset();
  }
  return *this;
}

PinnedValue::~PinnedValue() { Release(); }

void PinnedValue::Release() {
  if (auto state = store_.lock()) state->Unpin(key_, version_);
  store_.reset();
}

// ---- Context ----

Context::Context() : Context(ContextOptions()) {}

Context::Context(ContextOptions options) : state_(std::make_shared<ContextState>()) {
  ContextState& state = *state_;
  if (detail::ForceSpillFromEnvironment()) options.force_spill = true;
  detail::ReloadModeFromEnvironment(&options.reload);
  state.fs = options.fs != nullptr ? options.fs : FileSystem::Default();
  if (options.temp_root.empty()) options.temp_root = detail::DefaultTempRoot();
  if (options.max_ram_gb) {
    state.ram_budget = detail::GiBToBytes(*options.max_ram_gb);
  } else if (options.max_ram_percent) {
    auto meminfo = state.fs->ReadFile("/proc/meminfo");
    auto available =
        meminfo.ok() ? ParseMemAvailable(*meminfo) : Result<uint64_t>(meminfo.status());
    if (available.ok()) {
      state.ram_budget =
          static_cast<uint64_t>(static_cast<double>(*available) * *options.max_ram_percent / 100.0);
    } else {
      spdlog::warn("[discomfort] no RAM budget (max_ram_percent needs MemAvailable): {}",
                   available.status().ToString());
    }
  }
  if (options.max_device_gb) state.device_budget = detail::GiBToBytes(*options.max_device_gb);
  state.temp_dir = detail::NewTempDirName(options.temp_root);
  int reclaimed = ReclaimStaleTempDirs(*state.fs, options.temp_root);
  if (reclaimed > 0) {
    spdlog::info("[discomfort] removed {} spill folder(s) left by dead processes in {}", reclaimed,
                 options.temp_root);
  }
  state.options = std::move(options);
}

Context::~Context() {
  std::lock_guard<std::mutex> lock(state_->mu);
  if (state_->temp_dir_ready) {
    Status removed = state_->fs->RemoveAll(state_->temp_dir);
    if (!removed.ok()) spdlog::warn("[discomfort] {}", removed.ToString());
  }
}

Status Context::Put(const std::string& key, Value value) {
  if (key.empty()) return Status(ErrorCode::kInvalidArgument, "context keys must not be empty");
  Entry fresh = ContextState::MakeEntry(std::move(value));
  Entry old;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    // Process-wide, so a version is never reused by another context: ComfyUI's cache keys a
    // loader node by it, and two contexts must not look alike to that cache.
    fresh.version = detail::NextVersion();
    fresh.last_use = ++state_->clock;
    auto it = state_->entries.find(key);
    if (it != state_->entries.end()) {
      state_->Retire(it->second);
      old = std::move(it->second);
      it->second = std::move(fresh);
      state_->AddResident(it->second);
    } else {
      auto inserted = state_->entries.emplace(key, std::move(fresh)).first;
      state_->AddResident(inserted->second);
    }
  }
  old = Entry();  // the replaced value is released outside the lock
  return state_->Enforce(nullptr);
}

Result<Value> Context::Get(const std::string& key) const {
  return state_->Acquire(key, /*pin=*/false, nullptr);
}

Result<PinnedValue> Context::Pin(const std::string& key) {
  uint64_t version = 0;
  auto value = state_->Acquire(key, /*pin=*/true, &version);
  if (!value.ok()) return value.TakeStatus();
  return PinnedValue(state_, key, version, std::move(value).value());
}

bool Context::Contains(const std::string& key) const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->entries.count(key) > 0;
}

Status Context::Erase(const std::string& key) {
  Entry old;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    auto it = state_->entries.find(key);
    if (it == state_->entries.end()) return detail::NoValue(key);
    state_->Retire(it->second);
    old = std::move(it->second);
    state_->entries.erase(it);
  }
  return Status::Ok();  // `old` is released here, outside the lock
}

std::vector<std::string> Context::Keys() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  std::vector<std::string> keys;
  keys.reserve(state_->entries.size());
  for (const auto& [key, _] : state_->entries) keys.push_back(key);
  return keys;
}

uint64_t Context::Version(const std::string& key) const {
  std::lock_guard<std::mutex> lock(state_->mu);
  auto it = state_->entries.find(key);
  return it == state_->entries.end() ? 0 : it->second.version;
}

Result<ValueInfo> Context::Info(const std::string& key) const {
  std::lock_guard<std::mutex> lock(state_->mu);
  auto it = state_->entries.find(key);
  if (it == state_->entries.end()) return detail::NoValue(key);
  const Entry& entry = it->second;
  ValueInfo info;
  info.kind = entry.kind;
  info.bytes = entry.bytes;
  info.version = entry.version;
  info.pins = entry.pins;
  info.on_disk = entry.where == Residence::kDisk;
  if (entry.kind == ValueKind::kTensor) {
    info.device = entry.device;
    info.dtype = TorchDtypeName(entry.dtype);
    info.shape = entry.shape;
    info.spill_path = entry.spill_path;
  }
  return info;
}

Usage Context::GetUsage() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  const ContextState& state = *state_;
  Usage usage;
  usage.ram_bytes = state.ram_bytes;
  usage.ram_budget_bytes = state.ram_budget.value_or(0);
  usage.device_bytes = state.device_bytes;
  usage.device_budget_bytes = state.device_budget.value_or(0);
  usage.disk_bytes = state.disk_bytes;
  usage.host_object_bytes = state.host_bytes;
  usage.count = state.entries.size();
  for (const auto& [_, entry] : state.entries) {
    if (entry.where == Residence::kDisk) ++usage.spilled_count;
    if (entry.pins > 0) ++usage.pinned_count;
  }
  usage.spills = state.spills;
  usage.reloads = state.reloads;
  return usage;
}

Status Context::Spill(const std::string& key) {
  detail::SpillJob job;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    auto it = state_->entries.find(key);
    if (it == state_->entries.end()) return detail::NoValue(key);
    Entry& entry = it->second;
    if (entry.where == Residence::kDisk) return Status::Ok();
    if (entry.kind != ValueKind::kTensor) {
      return Status(ErrorCode::kInvalidArgument, std::string("only tensors spill; '") + key +
                                                     "' is " + ValueKindName(entry.kind));
    }
    if (entry.pins > 0) {
      return Status(ErrorCode::kInvalidArgument, "'" + key + "' is pinned");
    }
    if (!entry.unspillable.empty()) {
      return Status(ErrorCode::kInvalidArgument, "'" + key + "' (" + detail::ShapeText(entry) +
                                                     ") cannot spill: " + entry.unspillable);
    }
    if (entry.where == Residence::kSpilling) return Status::Ok();  // another thread's
    Status error;
    if (!state_->BeginSpill(key, entry, &job, &error)) return error;
  }
  return state_->FinishSpill(job);
}

Status Context::EnforceBudget() { return state_->Enforce(nullptr); }

const std::string& Context::temp_dir() const { return state_->temp_dir; }

Status Context::CheckConsistency() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  const ContextState& state = *state_;
  std::unordered_map<const void*, uint64_t> storages;
  uint64_t ram = 0, device = 0, disk = 0, host = 0;
  for (const auto& [key, entry] : state.entries) {
    auto fail = [&key = key](const std::string& what) {  // init-capture: clang < 16
      return Status(ErrorCode::kInternal, "context entry '" + key + "': " + what);
    };
    if (entry.pins < 0) return fail("negative pin count");
    if (entry.where == Residence::kDisk) {
      if (entry.kind != ValueKind::kTensor) return fail("a non-tensor is on disk");
      if (!entry.value.is_none()) return fail("a spilled entry still holds its value");
      if (!state.fs->Exists(entry.spill_path)) return fail("spill file missing");
      disk += entry.spill_file_bytes;
      continue;
    }
    if (entry.kind != entry.value.kind()) return fail("kind does not match the value");
    if (entry.kind == ValueKind::kTensor) {
      if (entry.storage == nullptr) continue;
      if (entry.value.tensor().has_storage() &&
          entry.storage != entry.value.tensor().storage().unsafeGetStorageImpl()) {
        return fail("accounted storage is not the tensor's storage");
      }
      if (storages.emplace(entry.storage, entry.bytes).second) {
        (entry.on_device ? device : ram) += entry.bytes;
      }
    } else if (entry.kind == ValueKind::kHostObject) {
      host += entry.bytes;
    } else {
      ram += entry.bytes;
    }
  }
  if (storages.size() != state.storages.size()) {
    return Status(ErrorCode::kInternal,
                  "storage table has " + std::to_string(state.storages.size()) +
                      " entries, expected " + std::to_string(storages.size()));
  }
  if (ram != state.ram_bytes || device != state.device_bytes || disk != state.disk_bytes ||
      host != state.host_bytes) {
    return Status(ErrorCode::kInternal,
                  "accounting drifted: ram " + std::to_string(state.ram_bytes) + " vs " +
                      std::to_string(ram) + ", device " + std::to_string(state.device_bytes) +
                      " vs " + std::to_string(device) + ", disk " +
                      std::to_string(state.disk_bytes) + " vs " + std::to_string(disk) + ", host " +
                      std::to_string(state.host_bytes) + " vs " + std::to_string(host));
  }
  return Status::Ok();
}

int Context::ReclaimStaleTempDirs(FileSystem& fs, const std::string& root) {
  auto names = fs.ListDir(root);
  if (!names.ok()) return 0;
  const std::string prefix = detail::kTempDirPrefix;
  int removed = 0;
  for (const std::string& name : *names) {
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    // discomfort-ctx-<pid>-<sequence>
    const std::string rest = name.substr(prefix.size());
    const size_t dash = rest.find('-');
    if (dash == std::string::npos || dash == 0) continue;
    int pid = 0;
    try {
      size_t used = 0;
      pid = std::stoi(rest.substr(0, dash), &used);
      if (used != dash) continue;
    } catch (const std::exception&) {
      continue;
    }
    if (pid == ::getpid() || fs.ProcessAlive(pid)) continue;
    if (fs.RemoveAll(root + "/" + name).ok()) ++removed;
  }
  return removed;
}

Result<uint64_t> Context::ParseMemAvailable(const std::string& meminfo) {
  std::istringstream lines(meminfo);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("MemAvailable:", 0) != 0) continue;
    std::istringstream fields(line.substr(13));
    uint64_t kib = 0;
    std::string unit;
    if (fields >> kib) {
      fields >> unit;
      return kib * 1024;  // /proc/meminfo reports kB (KiB)
    }
  }
  return Status(ErrorCode::kParse, "/proc/meminfo has no MemAvailable line");
}

}  // namespace discomfort::storage
