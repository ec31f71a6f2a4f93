// discomfort::Context: where a run's state lives between iterations and between runs. Values are
// held by reference: an at::Tensor put here is the very tensor a ComfyUI node receives (one
// libtorch in the process), and a ComfyUI object (MODEL, CLIP, LATENT dict ...) is kept as an
// opaque handle. Tensors beyond the RAM budget spill to safetensors files and come back on Get.
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include "discomfort/status.h"

namespace discomfort {

namespace storage {
class Context;
class Value;
}  // namespace storage

// A value of the context: a tensor, JSON (numbers, strings, booleans, lists, objects), an opaque
// ComfyUI object, or a recipe (the sub-workflow that recreates an object). Copying copies a
// reference, never data.
class Value {
 public:
  enum class Kind { kNone, kTensor, kJson, kObject, kRecipe };

  Value();
  static Value Tensor(at::Tensor tensor);
  static Value Json(nlohmann::json json);

  Kind kind() const;
  bool is_tensor() const { return kind() == Kind::kTensor; }
  bool is_json() const { return kind() == Kind::kJson; }
  bool is_object() const { return kind() == Kind::kObject; }
  // The tensor (kTensor), else an undefined tensor.
  at::Tensor tensor() const;
  // The JSON value (kJson) or recipe (kRecipe), else null.
  const nlohmann::json& json() const;
  // "ModelPatcher", "dict", ... for objects; the kind's name otherwise.
  std::string type_name() const;
  // "tensor float32[1,64,64,3] cpu", "json 42", ...
  std::string Describe() const;

 private:
  friend struct ValueAccess;
  std::shared_ptr<const storage::Value> rep_;
};

struct ContextOptions {
  // RAM budget for what the context holds in CPU memory; unset: unlimited. At most one of the two.
  std::optional<double> max_ram_gb;
  std::optional<double> max_ram_percent;  // of MemAvailable when the context opens
  // Budget for tensors on accelerators (CUDA); unset: unlimited.
  std::optional<double> max_device_gb;
  // Parent of the context's own temporary folder (spill files); "": $TMPDIR, else /tmp.
  std::string temp_root;
};

struct ContextUsage {
  uint64_t ram_bytes = 0;
  uint64_t ram_budget_bytes = 0;  // 0: unlimited
  uint64_t device_bytes = 0;
  uint64_t disk_bytes = 0;  // spill files
  size_t count = 0;
  size_t spilled_count = 0;
  uint64_t spills = 0;
  uint64_t reloads = 0;
};

class Context {
 public:
  explicit Context(const ContextOptions& options = {});
  ~Context();
  Context(Context&&) noexcept;
  Context& operator=(Context&&) noexcept;
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  // Stores by reference under `key` with a new version. A failure to enforce the budget (disk
  // full) is kNoSpace / kIO: the value IS stored, only the budget is exceeded until space returns.
  Status Put(const std::string& key, at::Tensor tensor);
  Status Put(const std::string& key, nlohmann::json value);
  Status Put(const std::string& key, const Value& value);
  // kNotFound naming the key when absent; a spilled tensor is brought back first.
  Result<Value> Get(const std::string& key) const;
  bool Contains(const std::string& key) const;
  Status Erase(const std::string& key);
  std::vector<std::string> Keys() const;
  ContextUsage Usage() const;

  // A resumable copy of every tensor and JSON value (objects are listed as not persisted unless
  // they have a recipe), written atomically into `dir`.
  Status SaveSnapshot(const std::string& dir) const;
  // Puts every value of a snapshot (all or nothing).
  Status LoadSnapshot(const std::string& dir);

 private:
  friend struct ContextAccess;
  std::shared_ptr<storage::Context> impl_;
};

}  // namespace discomfort
