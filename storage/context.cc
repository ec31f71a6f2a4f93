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
  detail::ModelSpillFromEnvironment(&options.model_spill);
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
  if (options.max_device_gb) {
    MutexLock lock(state.mu);  // not shared yet; the lock is for the analysis
    state.device_budget = detail::GiBToBytes(*options.max_device_gb);
  }
  state.temp_dir = detail::NewTempDirName(options.temp_root);
  int reclaimed = ReclaimStaleTempDirs(*state.fs, options.temp_root);
  if (reclaimed > 0) {
    spdlog::info("[discomfort] removed {} spill folder(s) left by dead processes in {}", reclaimed,
                 options.temp_root);
  }
  state.options = std::move(options);
}

Context::~Context() {
  MutexLock lock(state_->mu);
  if (state_->temp_dir_ready) {
    Status removed = state_->fs->RemoveAll(state_->temp_dir);
    if (!removed.ok()) spdlog::warn("[discomfort] {}", removed.ToString());
  }
}

namespace {

// Stores `fresh` under `key`, retiring the entry it replaces, and returns its version. The replaced
// value is released after the lock is let go (its destructor may take the GIL).
uint64_t InstallEntry(ContextState& state, const std::string& key, Entry fresh) {
  Entry old;
  uint64_t version = 0;
  {
    MutexLock lock(state.mu);
    // Process-wide, so a version is never reused by another context: ComfyUI's cache keys a
    // loader node by it, and two contexts must not look alike to that cache.
    fresh.version = version = detail::NextVersion();
    fresh.last_use = ++state.clock;
    auto it = state.entries.find(key);
    if (it != state.entries.end()) {
      state.Retire(it->second);
      old = std::move(it->second);
      it->second = std::move(fresh);
      state.AddResident(it->second);
    } else {
      auto inserted = state.entries.emplace(key, std::move(fresh)).first;
      state.AddResident(inserted->second);
    }
  }
  return version;
}

}  // namespace

Status Context::Put(const std::string& key, Value value) {
  if (key.empty()) return Status(ErrorCode::kInvalidArgument, "context keys must not be empty");
  InstallEntry(*state_, key, ContextState::MakeEntry(std::move(value)));
  return state_->Enforce(nullptr);
}

Result<PinnedValue> Context::PutPinned(const std::string& key, Value value) {
  if (key.empty()) return Status(ErrorCode::kInvalidArgument, "context keys must not be empty");
  Entry fresh = ContextState::MakeEntry(value);
  fresh.pins = 1;  // pinned before the budget is enforced
  const uint64_t version = InstallEntry(*state_, key, std::move(fresh));
  Status enforced = state_->Enforce(nullptr);
  if (!enforced.ok()) spdlog::warn("[discomfort] {}", enforced.ToString());
  return PinnedValue(state_, key, version, std::move(value));
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
  MutexLock lock(state_->mu);
  return state_->entries.count(key) > 0;
}

Status Context::Erase(const std::string& key) {
  Entry old;
  {
    MutexLock lock(state_->mu);
    auto it = state_->entries.find(key);
    if (it == state_->entries.end()) return detail::NoValue(key);
    state_->Retire(it->second);
    old = std::move(it->second);
    state_->entries.erase(it);
  }
  return Status::Ok();  // `old` is released here, outside the lock
}

std::vector<std::string> Context::Keys() const {
  MutexLock lock(state_->mu);
  std::vector<std::string> keys;
  keys.reserve(state_->entries.size());
  for (const auto& [key, _] : state_->entries) keys.push_back(key);
  return keys;
}

uint64_t Context::Version(const std::string& key) const {
  MutexLock lock(state_->mu);
  auto it = state_->entries.find(key);
  return it == state_->entries.end() ? 0 : it->second.version;
}

Result<ValueInfo> Context::Info(const std::string& key) const {
  MutexLock lock(state_->mu);
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
  info.has_recipe = entry.value.has_recipe();
  info.rebuild_seconds = entry.value.rebuild_seconds();
  if (entry.kind == ValueKind::kHostObject) {
    info.model = entry.model;
    info.spill_files = entry.model_files;
    bool spilled = false;
    for (const HostMemoryPart& part : entry.parts) {
      info.bytes_by_device[part.device] += part.bytes;
      auto use = state_->host_parts.find({part.id, part.device});
      if (use != state_->host_parts.end() && !use->second.resident) {
        info.spilled_bytes += part.bytes;
        spilled = true;
      }
    }
    info.on_disk = spilled;
    if (!entry.parts.empty()) info.device = entry.parts.front().device;
  }
  return info;
}

Usage Context::GetUsage() const {
  const ContextState& state = *state_;
  MutexLock lock(state.mu);
  Usage usage;
  usage.ram_bytes = state.ram_bytes;
  usage.ram_budget_bytes = state.ram_budget.value_or(0);
  usage.device_bytes = state.device_bytes;
  usage.device_budget_bytes = state.device_budget.value_or(0);
  usage.disk_bytes = state.disk_bytes;
  usage.host_object_bytes = state.host_bytes;
  usage.host_ram_bytes = state.host_ram_bytes;
  usage.host_device_bytes = state.host_device_bytes;
  usage.host_spilled_bytes = state.host_spilled_bytes;
  usage.count = state.entries.size();
  for (const auto& [_, entry] : state.entries) {
    bool model_out = false;
    for (const HostMemoryPart& part : entry.parts) {
      auto use = state.host_parts.find({part.id, part.device});
      if (use != state.host_parts.end() && !use->second.resident) model_out = true;
    }
    if (entry.where == Residence::kDisk || model_out) ++usage.spilled_count;
    if (entry.pins > 0) ++usage.pinned_count;
  }
  usage.spills = state.spills;
  usage.reloads = state.reloads;
  usage.model_spills = state.model_spills;
  usage.model_drops = state.model_drops;
  usage.model_restores = state.model_restores;
  usage.model_write_bytes_per_second = state.write_bytes_per_second;
  return usage;
}

Status Context::Spill(const std::string& key) {
  detail::SpillJob job;
  detail::ModelSpillJob model_job;
  bool model = false;
  {
    MutexLock lock(state_->mu);
    auto it = state_->entries.find(key);
    if (it == state_->entries.end()) return detail::NoValue(key);
    Entry& entry = it->second;
    if (entry.where == Residence::kDisk) return Status::Ok();
    if (entry.kind == ValueKind::kHostObject && entry.model) {
      if (entry.pins > 0) return Status(ErrorCode::kInvalidArgument, "'" + key + "' is pinned");
      if (entry.where == Residence::kSpilling) return Status::Ok();  // another thread's
      if (!state_->ModelCanLeave(entry, state_->PinnedParts())) return Status::Ok();
      state_->BeginModelSpill(key, entry, &model_job);
      model = true;
    }
  }
  if (model) return state_->FinishModelSpill(model_job);
  {
    MutexLock lock(state_->mu);
    auto it = state_->entries.find(key);
    if (it == state_->entries.end()) return detail::NoValue(key);
    Entry& entry = it->second;
    if (entry.where == Residence::kDisk) return Status::Ok();
    if (entry.kind != ValueKind::kTensor) {
      return Status(ErrorCode::kInvalidArgument, std::string("only tensors and models spill; '") +
                                                     key + "' is " + ValueKindName(entry.kind));
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

Status Context::SetDeviceBudget(std::optional<double> gib) {
  if (gib && !(*gib >= 0))
    return Status(ErrorCode::kInvalidArgument, "a device budget is a number of GiB >= 0");
  {
    MutexLock lock(state_->mu);
    state_->device_budget = gib ? detail::GiBToBytes(*gib) : std::nullopt;
  }
  return EnforceBudget();
}

void Context::SetIoObserver(IoObserver observer) {
  auto shared = observer ? std::make_shared<const IoObserver>(std::move(observer)) : nullptr;
  MutexLock lock(state_->observer_mu);
  state_->observer = std::move(shared);
}

uint64_t Context::AddEventObserver(EventObserver observer) {
  auto shared = std::make_shared<const EventObserver>(std::move(observer));
  MutexLock lock(state_->observer_mu);
  const uint64_t token = state_->next_event_observer++;
  state_->event_observers[token] = std::move(shared);
  return token;
}

void Context::RemoveEventObserver(uint64_t token) {
  MutexLock lock(state_->observer_mu);
  state_->event_observers.erase(token);
}

Status Context::EnforceBudget() { return state_->Enforce(nullptr); }

const std::string& Context::temp_dir() const { return state_->temp_dir; }

Status Context::CheckConsistency() const {
  const ContextState& state = *state_;
  MutexLock lock(state.mu);
  std::unordered_map<const void*, uint64_t> storages;
  std::map<detail::HostPartKey, uint64_t> parts;
  uint64_t ram = 0, device = 0, disk = 0, host = 0;
  for (const auto& [key, entry] : state.entries) {
    auto fail = [&key = key](const std::string& what) {  // init-capture: clang < 16
      return Status(ErrorCode::kInternal, "context entry '" + key + "': " + what);
    };
    if (entry.pins < 0) return fail("negative pin count");
    disk += entry.model_file_bytes;
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
      for (const HostMemoryPart& part : entry.parts) {
        const detail::HostPartKey part_key{part.id, part.device};
        auto use = state.host_parts.find(part_key);
        if (use == state.host_parts.end()) return fail("a host block is not accounted");
        if (parts.emplace(part_key, part.bytes).second && part.device == "cpu" &&
            use->second.resident) {
          ram += use->second.bytes;
        }
      }
    } else {
      ram += entry.bytes;
    }
  }
  if (parts.size() != state.host_parts.size()) {
    return Status(ErrorCode::kInternal, "host block table has " +
                                            std::to_string(state.host_parts.size()) +
                                            " entries, expected " + std::to_string(parts.size()));
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
