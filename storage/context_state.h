// Internals of the context store, shared by context.cc and snapshot.cc. Not a public header.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

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
};

struct StorageUse {
  int refs = 0;  // entries in memory that view this storage
  uint64_t bytes = 0;
  bool on_device = false;
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
  std::optional<uint64_t> ram_budget;     // bytes; nullopt = unlimited
  std::optional<uint64_t> device_budget;  // bytes; nullopt = unlimited
  std::string temp_dir;

  mutable std::mutex mu;
  // Everything below is guarded by mu.
  std::map<std::string, Entry> entries;
  std::unordered_map<const void*, StorageUse> storages;
  uint64_t ram_bytes = 0;
  uint64_t device_bytes = 0;
  uint64_t disk_bytes = 0;
  uint64_t host_bytes = 0;
  uint64_t ram_spilling = 0;  // freed_estimate of in-flight spills, per pool
  uint64_t device_spilling = 0;
  uint64_t clock = 0;
  bool temp_dir_ready = false;
  uint64_t spills = 0;
  uint64_t reloads = 0;
  uint64_t spill_files = 0;  // names spill files uniquely

  // ---- called with mu held ----
  void AddResident(Entry& entry);
  void RemoveResident(Entry& entry);
  // Drops an entry that is being replaced or erased: accounting and its spill file.
  void Retire(Entry& entry);
  Status EnsureTempDir();
  // The value of an entry without changing where it lives (spilled tensors are mapped).
  Result<Value> PeekLocked(const std::string& key, const Entry& entry) const;

  // Marks the entry kSpilling and fills the job; false with `error` when the folder is missing.
  bool BeginSpill(const std::string& key, Entry& victim, SpillJob* job, Status* error);

  // ---- called without mu ----
  // Writes the job's file and commits (or undoes) the spill. The error says which key failed.
  Status FinishSpill(SpillJob& job);
  // Spills LRU tensors until the budgets hold; `exclude` is never spilled.
  Status Enforce(const std::string* exclude);
  // The tensor of a spilled entry, read or mapped per options.reload, on its device.
  Result<at::Tensor> LoadSpilled(const std::string& key, const std::string& path, bool on_device,
                                 const std::string& device_name, bool requires_grad) const;
  // Get (+ pin). Brings a spilled tensor back.
  Result<Value> Acquire(const std::string& key, bool pin, uint64_t* version);
  void Unpin(const std::string& key, uint64_t version);
  // The entry as a fresh, unaccounted Entry for a Put.
  static Entry MakeEntry(Value value);
};

// The tensor a spill or snapshot file holds for `key` (mapped unless `read` says otherwise).
Result<at::Tensor> TensorFromFile(FileSystem& fs, const std::string& path, const std::string& key,
                                  const SafetensorsReadOptions& read = {});

}  // namespace discomfort::storage::detail
