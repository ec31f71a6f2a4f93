// A context value: a tensor held by pointer, a JSON value, an opaque host object (a ComfyUI MODEL,
// a LATENT dict...) held through a handle that bridge/ implements, or a recipe (a pruned API
// sub-workflow that recreates an opaque object). A host object may carry the recipe that recreates
// it, so a snapshot can persist it and the RAM budget may drop it. Copying a Value copies a
// reference, never data.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include "discomfort/status.h"

namespace discomfort::storage {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// One block of memory a host object holds on one device. Two objects that share a block (a model
// and its LoRA clone share the base weights) report it with the same id, so it is counted once.
struct HostMemoryPart {
  uint64_t id = 0;
  std::string device;  // "cpu", "cuda:0"
  uint64_t bytes = 0;
  // Weights that TensorsToSpill hands over (a model's parameters and buffers); other parts (a
  // LoRA's pending patches, a dict's tensors) stay where they are.
  bool spillable = false;
};

// Implemented outside storage/ (bridge/ wraps a Python object). Destruction may need the GIL;
// the implementation takes care of that. The store never calls a method while holding its lock.
class HostObject {
 public:
  virtual ~HostObject() = default;
  virtual std::string TypeName() const = 0;  // e.g. "ModelPatcher", "dict"
  // The bytes it holds, all devices together (its parts' sum when it reports parts).
  virtual uint64_t ApproxBytes() const { return 0; }
  // What it holds now, block by block; none when the object cannot tell.
  virtual std::vector<HostMemoryPart> MeasureMemory() const { return {}; }

  // Models (weights that may leave RAM and come back without a reload).
  virtual bool CanSpillTensors() const { return false; }
  // Gets the object ready to leave RAM (ComfyUI unloads it: patches come off the weights) and
  // returns its CPU weights by names unique within the object.
  virtual Result<NamedTensors> TensorsToSpill();
  // Swaps those weights, in place, for `replacements` (same names, shapes and dtypes; file-backed
  // tensors): whoever holds the object keeps the very object, its class and its patches.
  virtual Status ReplaceTensors(const NamedTensors& replacements);
  // Prepares a drop in favour of the value's recipe (`key` names the context value): lets go of
  // the references ComfyUI keeps that a rebuild replaces anyway, and says whether the object's
  // memory would then be freed. Empty: it would; otherwise who else holds it.
  virtual std::string ReleaseForDrop(const std::string& key) { return "not supported"; }
};

enum class ValueKind { kNone, kTensor, kJson, kHostObject, kRecipe };
const char* ValueKindName(ValueKind kind);
// torch's dtype names as Python users know them: "float32", "bfloat16", "int64", ...
std::string TorchDtypeName(c10::ScalarType dtype);

class Value {
 public:
  Value() = default;
  static Value Tensor(at::Tensor tensor);
  static Value Json(nlohmann::json json);
  static Value Host(std::shared_ptr<HostObject> object);
  // `rebuild_seconds`: how long running it took when it last ran (< 0: unknown).
  static Value Recipe(nlohmann::json api_subworkflow, double rebuild_seconds = -1);
  // This host object with the recipe that recreates it (other kinds are returned unchanged).
  Value WithRecipe(std::shared_ptr<const nlohmann::json> recipe, double rebuild_seconds = -1) const;

  ValueKind kind() const { return kind_; }
  bool is_none() const { return kind_ == ValueKind::kNone; }
  bool is_tensor() const { return kind_ == ValueKind::kTensor; }
  bool is_json() const { return kind_ == ValueKind::kJson; }
  bool is_host() const { return kind_ == ValueKind::kHostObject; }
  bool is_recipe() const { return kind_ == ValueKind::kRecipe; }

  const at::Tensor& tensor() const { return tensor_; }
  const nlohmann::json& json() const { return json_; }  // JSON value or recipe
  const std::shared_ptr<HostObject>& host() const { return host_; }
  // A recipe, or a host object carrying one.
  bool has_recipe() const { return is_recipe() || (is_host() && recipe_ != nullptr); }
  // The recipe (kRecipe: json()); null JSON when there is none.
  const nlohmann::json& recipe() const;
  double rebuild_seconds() const { return rebuild_seconds_; }

  // Bytes of the underlying storage (tensors), serialized size estimate (JSON), or the host's
  // estimate.
  uint64_t ApproxBytes() const;
  // Short human-readable description: "tensor float32[1,64,64,3] cpu", "json 42", ...
  std::string Describe() const;

 private:
  ValueKind kind_ = ValueKind::kNone;
  at::Tensor tensor_;
  nlohmann::json json_;
  std::shared_ptr<HostObject> host_;
  std::shared_ptr<const nlohmann::json> recipe_;  // host objects
  double rebuild_seconds_ = -1;
};

}  // namespace discomfort::storage
