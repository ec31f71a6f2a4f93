// Internals of the context store, shared by context.cc and snapshot.cc. Not a public header.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "base/thread_annotations.h"
#include "storage/context.h"
#include "storage/safetensors.h"

namespace discomfort::storage::detail {

// Where an entry's data is. kSpilling: a writer is copying it to disk; the entry still holds the
// tensor and readers use it; the writer commits (kDisk) only if the entry is unchanged and
// unpinned when it finishes.
enum class Residence { kMemory, kSpilling, kDisk };

struct Entry {
  Value value;  // none while kDisk
  ValueKind kind = ValueKind::kNone;
  uint64_t version = 0;
  uint64_t last_use = 0;  // LRU clock
  int pins = 0;
  Residence where = Residence::kMemory;
  uint64_t bytes = 0;  // as accounted at Put (tensors: the storage's bytes)

  // Tensors.
  const void* storage = nullptr;  // accounting key (the StorageImpl) while in memory
  bool on_device = false;         // on an accelerator: counts against the device budget
  c10::ScalarType dtype = c10::ScalarType::Undefined;
  std::vector<int64_t> shape;
  std::string device;  // "cpu", "cuda:0"
  bool requires_grad = false;
  std::string unspillable;  // why it cannot spill; empty when it can
  std::string spill_path;   // while kDisk
  uint64_t spill_file_bytes = 0;

  // Host objects. A model stays kMemory while its weights are out of RAM: the object is always
  // there, its spillable CPU parts are what leaves (HostPartUse::resident).
  std::vector<HostMemoryPart> parts;  // as measured at Put and after each use
  bool model = false;                 // HostObject::CanSpillTensors
  // File-backed weights earlier spills gave it, kept so their addresses are never reused: a
  // weight still at one of these addresses needs no new write, only its pages dropped.
  std::vector<at::Tensor> mapped;
  std::unordered_set<const void*> mapped_data;
  std::vector<std::string> model_files;  // the files backing its weights
  uint64_t model_file_bytes = 0;
};

// One block of host-object memory (HostMemoryPart), counted once however many entries hold it.
using HostPartKey = std::pair<uint64_t, std::string>;  // id, device
struct HostPartUse {
  int refs = 0;  // entries whose parts list it
  uint64_t bytes = 0;
  bool spillable = false;
  bool resident = true;  // false: a spillable CPU block whose pages were given back
};

struct StorageUse {
  int refs = 0;  // entries in memory that view this storage
  uint64_t bytes = 0;
  bool on_device = false;
};

// A model leaving RAM, carried outside the lock (storage/context_models.cc).
struct ModelSpillJob {
  std::string key;
  uint64_t version = 0;
  Value value;  // the object (and its recipe)
  std::unordered_set<const void*> mapped_data;
  std::string path;             // for newly written weights
  uint64_t freed_estimate = 0;  // resident spillable CPU bytes
  double write_bytes_per_second = 0;
};

// A spill in progress, carried outside the lock.
struct SpillJob {
  std::string key;
  uint64_t version = 0;
  at::Tensor tensor;
  std::string path;
  bool on_device = false;
  uint64_t freed_estimate = 0;  // bytes the commit will free (0 if other views remain)
};

struct ContextState {
  // Constant after construction.
  ContextOptions options;
  FileSystem* fs = nullptr;
  std::optional<uint64_t> ram_budget;  // bytes; nullopt = unlimited
  std::string temp_dir;

  // Set by Context::SetIoObserver; copied out under its own lock and called outside both.
  mutable Mutex observer_mu;
  std::shared_ptr<const Context::IoObserver> observer GUARDED_BY(observer_mu);
  std::map<uint64_t, std::shared_ptr<const Context::EventObserver>> event_observers
      GUARDED_BY(observer_mu);
  uint64_t next_event_observer GUARDED_BY(observer_mu) = 1;
  void Observe(std::string_view what, const std::string& key, uint64_t bytes,
               std::chrono::steady_clock::time_point start) const EXCLUDES(observer_mu);
  void EmitEvent(const nlohmann::json& event) const EXCLUDES(observer_mu);

  mutable Mutex mu;
  std::map<std::string, Entry> entries GUARDED_BY(mu);
  std::unordered_map<const void*, StorageUse> storages GUARDED_BY(mu);
  // Bytes; nullopt = unlimited. Set at construction or by Context::SetDeviceBudget (a plan's key).
  std::optional<uint64_t> device_budget GUARDED_BY(mu);
  uint64_t ram_bytes GUARDED_BY(mu) = 0;
  uint64_t device_bytes GUARDED_BY(mu) = 0;
  uint64_t disk_bytes GUARDED_BY(mu) = 0;
  uint64_t host_bytes GUARDED_BY(mu) = 0;
  std::map<HostPartKey, HostPartUse> host_parts GUARDED_BY(mu);
  uint64_t host_ram_bytes GUARDED_BY(mu) = 0;  // resident CPU parts (also in ram_bytes)
  uint64_t host_device_bytes GUARDED_BY(mu) = 0;
  uint64_t host_spilled_bytes GUARDED_BY(mu) = 0;  // spillable CPU parts not resident
  uint64_t ram_spilling GUARDED_BY(mu) = 0;        // freed_estimate of in-flight spills, per pool
  uint64_t device_spilling GUARDED_BY(mu) = 0;
  uint64_t clock GUARDED_BY(mu) = 0;
  bool temp_dir_ready GUARDED_BY(mu) = false;
  uint64_t spills GUARDED_BY(mu) = 0;
  uint64_t reloads GUARDED_BY(mu) = 0;
  uint64_t spill_files GUARDED_BY(mu) = 0;  // names spill files uniquely
  uint64_t model_spills GUARDED_BY(mu) = 0;
  uint64_t model_drops GUARDED_BY(mu) = 0;
  uint64_t model_restores GUARDED_BY(mu) = 0;
  double write_bytes_per_second GUARDED_BY(mu) = 0;  // measured by the last model write

  void AddResident(Entry& entry) REQUIRES(mu);
  void RemoveResident(Entry& entry) REQUIRES(mu);
  // Drops an entry that is being replaced or erased: accounting and its spill file.
  void Retire(Entry& entry) REQUIRES(mu);
  Status EnsureTempDir() REQUIRES(mu);
  // The value of an entry without changing where it lives (spilled tensors are mapped).
  Result<Value> PeekLocked(const std::string& key, const Entry& entry) const REQUIRES(mu);

  // Marks the entry kSpilling and fills the job; false with `error` when the folder is missing.
  bool BeginSpill(const std::string& key, Entry& victim, SpillJob* job, Status* error) REQUIRES(mu);

  // Writes the job's file and commits (or undoes) the spill. The error says which key failed.
  Status FinishSpill(SpillJob& job) EXCLUDES(mu);
  // Spills LRU tensors until the budgets hold; `exclude` is never spilled.
  Status Enforce(const std::string* exclude) EXCLUDES(mu);
  // The tensor of a spilled entry, read or mapped per options.reload, on its device. Touches only
  // what is constant after construction, so callers may hold mu or not.
  Result<at::Tensor> LoadSpilled(const std::string& key, const std::string& path, bool on_device,
                                 const std::string& device_name, bool requires_grad) const;
  // Get (+ pin). Brings a spilled tensor back; a spilled model's blocks count as in RAM again.
  Result<Value> Acquire(const std::string& key, bool pin, uint64_t* version) EXCLUDES(mu);
  // Unpins; a model is measured again (a use may have patched or moved it).
  void Unpin(const std::string& key, uint64_t version) EXCLUDES(mu);

  // Models (storage/context_models.cc).
  // Whether the entry has a spillable CPU block in RAM, none of them shared with a pinned entry.
  bool ModelCanLeave(const Entry& entry, const std::set<HostPartKey>& pinned_parts) const
      REQUIRES(mu);
  std::set<HostPartKey> PinnedParts() const REQUIRES(mu);
  void BeginModelSpill(const std::string& key, Entry& victim, ModelSpillJob* job) REQUIRES(mu);
  // Drops the model (in favour of its recipe) or writes / pages out its weights, as the cost
  // and ContextOptions::model_spill decide, and commits if the entry is unchanged and unpinned.
  Status FinishModelSpill(ModelSpillJob& job) EXCLUDES(mu);
  // Counts the entry's spillable CPU blocks as in RAM again; the bytes that came back.
  uint64_t RestoreModelParts(Entry& entry) REQUIRES(mu);
  // Measures a model again after a use and updates its accounting if it is still that version.
  void Remeasure(const std::string& key, uint64_t version) EXCLUDES(mu);
  static void MeasureHost(Entry& entry);
  // The entry as a fresh, unaccounted Entry for a Put.
  static Entry MakeEntry(Value value);
};

// Helpers shared by the state's machinery and the public Context.
inline constexpr char kTempDirPrefix[] = "discomfort-ctx-";
uint64_t NextVersion();
Status NoValue(const std::string& key);  // kNotFound naming the key
std::string HumanBytes(uint64_t bytes);
std::string ShapeText(const Entry& entry);         // "float32[1,64,64,3]"
std::optional<uint64_t> GiBToBytes(double gib);    // nullopt for NaN or negative: unlimited
std::string DefaultTempRoot();                     // $TMPDIR, else /tmp
bool ForceSpillFromEnvironment();                  // DISCOMFORT_FORCE_SPILL
void ModelSpillFromEnvironment(ModelSpill* mode);  // DISCOMFORT_MODEL_SPILL=auto|write|drop
// DISCOMFORT_RELOAD=read|map, for comparing the two without rebuilding (benchmarks/handoff).
void ReloadModeFromEnvironment(ReloadMode* mode);
std::string NewTempDirName(const std::string& root);  // <root>/discomfort-ctx-<pid>-<n>

// The tensor a spill or snapshot file holds for `key` (mapped unless `read` says otherwise).
Result<at::Tensor> TensorFromFile(FileSystem& fs, const std::string& path, const std::string& key,
                                  const SafetensorsReadOptions& read = {});

}  // namespace discomfort::storage::detail
