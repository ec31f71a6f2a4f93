// The context store: where a run's state lives between iterations and between runs.
//
// Values are held by reference (a tensor costs a refcount, never a copy). Tensors beyond the RAM
// budget spill, least recently used first, to one safetensors file each in the context's own
// temporary folder, and come back on Get (read in full, or memory-mapped: ReloadMode). Models
// (host objects that report their weights: ComfyUI's ModelPatcher, CLIP, VAE) count under the
// same budget and leave RAM the same way, least recently used first: dropped in favour of their
// recipe when rebuilding it is cheaper than writing them, else their weights written once and
// swapped in place for file-backed tensors whose pages the kernel drops and faults back on use
// (storage/context_models.cc). A PinnedValue keeps a value in memory while an iteration uses it.
// Snapshots persist the whole context for resume.
//
// Thread safety: every method may be called from any thread concurrently. Spill writes, full
// reads and GPU reloads run outside the store's lock, so a slow disk blocks only the thread that
// waits for it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "discomfort/status.h"
#include "storage/filesystem.h"
#include "storage/value.h"

namespace discomfort::storage {

// How a spilled tensor comes back on Get. Measured on this project's VM (benchmarks/handoff, cold
// page cache, 1 and 8 GiB): both reach the disk's sequential read() bandwidth or better; kMap was
// as fast at 1 GiB and faster at 8 GiB, and needs no copy, so it is the default.
enum class ReloadMode {
  // Map the spill file: copy-free and lazy, only the pages touched are ever read (kernel
  // readahead). The file's disk space returns when the tensor dies; a file truncated behind the
  // store's back faults (SIGBUS) on touch. Device tensors are copied from the mapping.
  kMap,
  // Read the file into fresh memory with large parallel reads, direct I/O where it is not in
  // the page cache: no page-cache copy, the disk space is freed at once, and a damaged file is an
  // error at Get, never a fault later.
  kRead,
};

// How a model beyond the RAM budget leaves RAM.
enum class ModelSpill {
  // Per model by cost: dropped when its recipe rebuilds it faster than its new bytes can be
  // written (the rebuild time measured when the recipe ran, the write bandwidth measured by the
  // last model write), else written.
  kAuto,
  kWrite,  // always written (file-backed)
  kDrop,   // dropped whenever it has a recipe and dropping frees it (tests, benchmarks)
};

struct ContextOptions {
  // RAM budget for the tensors (and JSON values) the context holds in CPU memory. Set at most
  // one; neither means unlimited. The percentage is of MemAvailable in /proc/meminfo at open.
  std::optional<double> max_ram_gb;
  std::optional<double> max_ram_percent;
  // Budget for tensors held on accelerators (CUDA); unset means unlimited.
  std::optional<double> max_device_gb;
  // Spill every unpinned tensor as soon as the store lets go of it (test mode). Also turned on by
  // the environment variable DISCOMFORT_FORCE_SPILL=1.
  bool force_spill = false;
  // Parent of the context's own temporary folder; "" = $TMPDIR, else /tmp.
  std::string temp_root;
  // Not owned; must outlive the context. Null = the real POSIX file system.
  FileSystem* fs = nullptr;
  // Spill files die with the process, so they are not fsynced unless asked. Snapshots always are.
  bool sync_spill_files = false;
  size_t io_chunk_bytes = size_t{64} << 20;
  // DISCOMFORT_RELOAD=read|map in the environment overrides `reload`.
  ReloadMode reload = ReloadMode::kMap;
  int reload_threads = 4;                        // reads in flight (kRead)
  size_t reload_chunk_bytes = size_t{16} << 20;  // bytes per read (kRead)
  // DISCOMFORT_MODEL_SPILL=auto|write|drop in the environment overrides `model_spill`.
  ModelSpill model_spill = ModelSpill::kAuto;
  // The write bandwidth kAuto assumes until a model write measures it.
  double assumed_write_bytes_per_second = 500e6;

  // Optional pickle hook for host objects in snapshots, given only when the user allows pickle
  // (storage/ has no Python; bridge/ supplies these). Without it, host objects are listed as not
  // persisted.
  std::function<Result<std::string>(const HostObject&)> serialize_host;
  std::function<Result<std::shared_ptr<HostObject>>(const std::string& type_name,
                                                    const std::string& bytes)>
      deserialize_host;
};

struct ValueInfo {
  ValueKind kind = ValueKind::kNone;
  uint64_t bytes = 0;    // storage bytes (tensors), serialized size (JSON), host estimate
  std::string device;    // "cpu", "cuda:0", "" for non-tensors
  bool on_disk = false;  // spilled: the data lives only in spill_path
  uint64_t version = 0;
  int pins = 0;
  std::string dtype;           // tensors: "float32", ...
  std::vector<int64_t> shape;  // tensors
  std::string spill_path;      // when on_disk

  // Host objects that report their memory (models).
  std::map<std::string, uint64_t> bytes_by_device;  // "cpu", "cuda:0" -> bytes
  bool model = false;                               // its weights can leave RAM
  uint64_t spilled_bytes = 0;                       // weights out of RAM (file-backed)
  std::vector<std::string> spill_files;             // the files backing its weights
  // A recipe, or a host object carrying one; how long it took to run (< 0: unknown).
  bool has_recipe = false;
  double rebuild_seconds = -1;
};

struct Usage {
  // Tensors in CPU memory (each storage once) + JSON values + models' CPU memory (host_ram_bytes).
  uint64_t ram_bytes = 0;
  uint64_t ram_budget_bytes = 0;     // 0 = unlimited (or max_ram_gb = 0: spill everything)
  uint64_t device_bytes = 0;         // tensors on accelerators (each storage once)
  uint64_t device_budget_bytes = 0;  // 0 = unlimited
  uint64_t disk_bytes = 0;           // spill files
  uint64_t host_object_bytes = 0;    // every host object's bytes, all devices, as it estimates them
  uint64_t host_ram_bytes = 0;       // models' weights in RAM (each shared block once)
  uint64_t host_device_bytes = 0;   // models' accelerator memory (ComfyUI manages it; not budgeted)
  uint64_t host_spilled_bytes = 0;  // models' weights out of RAM (file-backed)
  size_t count = 0;
  size_t spilled_count = 0;
  size_t pinned_count = 0;
  uint64_t spills = 0;          // spills done since the context opened
  uint64_t reloads = 0;         // spilled tensors brought back
  uint64_t model_spills = 0;    // models whose weights left RAM (written or paged out)
  uint64_t model_drops = 0;     // models dropped in favour of their recipe
  uint64_t model_restores = 0;  // spilled models read again (their pages come back on use)
  double model_write_bytes_per_second = 0;  // measured by the last model write; 0: none yet
};

struct SnapshotReport {
  std::vector<std::string> keys;           // saved / loaded
  std::vector<std::string> not_persisted;  // host objects without a recipe or serializer
  uint64_t bytes = 0;                      // tensor bytes written / mapped
};

class Context;
namespace detail {
struct ContextState;  // storage/context_state.h
}

// Keeps one value in memory (never spilled) while it lives. Move-only. Safe to outlive the
// context (it then holds only its Value). The pin is tied to the value's version: a Put that
// replaces the value leaves the new one unpinned.
class PinnedValue {
 public:
  PinnedValue() = default;
  PinnedValue(PinnedValue&& other) noexcept;
  PinnedValue& operator=(PinnedValue&& other) noexcept;
  PinnedValue(const PinnedValue&) = delete;
  PinnedValue& operator=(const PinnedValue&) = delete;
  ~PinnedValue();

  const Value& value() const { return value_; }
  const at::Tensor& tensor() const { return value_.tensor(); }
  uint64_t version() const { return version_; }
  const std::string& key() const { return key_; }
  // Unpins now (the destructor does the same).
  void Release();

 private:
  friend class Context;
  PinnedValue(std::weak_ptr<detail::ContextState> store, std::string key, uint64_t version,
              Value value);

  std::weak_ptr<detail::ContextState> store_;
  std::string key_;
  uint64_t version_ = 0;
  Value value_;
};

class Context {
 public:
  Context();  // ContextOptions defaults (+ DISCOMFORT_FORCE_SPILL)
  explicit Context(ContextOptions options);
  // Removes the temporary folder (spill files). Tensors handed out that view a spill file's
  // mapping stay valid: the mapping outlives the file.
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  // Stores the value under `key` with a new version. If enforcing the budget afterwards fails
  // (disk full, write error), returns kNoSpace / kIO — the value IS stored and every value stays
  // in memory; only the budget is exceeded until space returns.
  Status Put(const std::string& key, Value value);
  // The value; a spilled tensor is brought back into memory first (read or mapped from its file
  // for CPU tensors, copied back to its device otherwise). A spill file that cannot be read
  // (gone, truncated, EIO) is kIO naming the key and the file; the value stays spilled.
  Result<Value> Get(const std::string& key) const;
  // Get + pin: the value cannot spill until the handle is released.
  Result<PinnedValue> Pin(const std::string& key);
  // Put + pin as one step: the value is pinned before the budget is enforced, so a value that
  // alone exceeds the budget (a model rebuilt from its recipe) does not leave RAM on its way to
  // the workflow that needs it. A budget that cannot be met is logged, as after Put.
  Result<PinnedValue> PutPinned(const std::string& key, Value value);
  bool Contains(const std::string& key) const;
  Status Erase(const std::string& key);
  std::vector<std::string> Keys() const;
  // 0 when the key is absent; otherwise strictly increasing across puts of this context.
  // Spilling and reloading keep the version.
  uint64_t Version(const std::string& key) const;
  Result<ValueInfo> Info(const std::string& key) const;
  Usage GetUsage() const;

  // Spills one tensor or model now, whatever the budget (a model as the budget would: dropped or
  // written, per ContextOptions::model_spill). kInvalidArgument for other values, a pinned value
  // or a tensor the format cannot hold; Ok when it is already on disk.
  Status Spill(const std::string& key);
  // Spills least recently used unpinned tensors and models until the budgets hold. Put calls it.
  Status EnforceBudget();
  // Replaces the budget for tensors on accelerators (GiB; nullopt: unlimited) and enforces it: a
  // loop plan's max_vram_gb applies to the context the run was given.
  Status SetDeviceBudget(std::optional<double> gib);

  // One value to a file: a tensor as a single-tensor safetensors file (tensor named `key`),
  // JSON values and recipes as JSON. Written to a temporary name and renamed.
  Status Export(const std::string& key, const std::string& path) const;
  // Reads a file written by Export (or any safetensors file holding one tensor, or one named
  // `key`) into `key`. `kind` = kRecipe reads a JSON file as a recipe.
  Status Import(const std::string& key, const std::string& path, ValueKind kind = ValueKind::kNone);

  // Writes manifest.json + tensors/*.safetensors (+ objects/* with the pickle hook) into a
  // temporary folder beside `dir`, fsyncs, then swaps it in: a crash leaves the last good
  // snapshot. Host objects without a serializer are listed in the report and the manifest.
  Result<SnapshotReport> SaveSnapshot(const std::string& dir) const;
  // Puts every persisted value of the snapshot (new versions; other keys are kept). Either all
  // values load or the context is unchanged. Tensors are mapped from the snapshot's files and
  // returned to their saved device when it exists.
  Result<SnapshotReport> LoadSnapshot(const std::string& dir);

  // The context's own temporary folder (created on the first spill).
  const std::string& temp_dir() const;
  // Recomputes the accounting from scratch and compares (tests, debugging).
  Status CheckConsistency() const;

  // Observes spills and reloads as they finish ("spill" / "reload", the key, the bytes moved and
  // when it started and ended), for a run's trace. Called on the thread that did the I/O, possibly
  // with the store's lock held: it must return quickly and never call back into the context. Null
  // removes it.
  using IoObserver = std::function<void(std::string_view what, const std::string& key,
                                        uint64_t bytes, std::chrono::steady_clock::time_point start,
                                        std::chrono::steady_clock::time_point end)>;
  void SetIoObserver(IoObserver observer);
  // JSON events about models leaving RAM and coming back, for a run's event stream:
  //   {"event": "model_spill", "key", "action": "write" | "page_out" | "drop", "bytes",
  //    "written_bytes", "seconds", "rebuild_seconds", "write_seconds_estimate", "reason"}
  //   {"event": "model_restore", "key", "bytes", "how": "page_in"}
  // Called outside the store's lock, on the thread that did the work. Returns a token for
  // RemoveEventObserver.
  using EventObserver = std::function<void(const nlohmann::json& event)>;
  uint64_t AddEventObserver(EventObserver observer);
  void RemoveEventObserver(uint64_t token);

  // Removes `root`/discomfort-ctx-<pid>-* folders whose process is gone. Returns how many.
  // Contexts call it when they open.
  static int ReclaimStaleTempDirs(FileSystem& fs, const std::string& root);
  // MemAvailable from the text of /proc/meminfo, in bytes; kParse when absent.
  static Result<uint64_t> ParseMemAvailable(const std::string& meminfo);

 private:
  std::shared_ptr<detail::ContextState> state_;
};

}  // namespace discomfort::storage
