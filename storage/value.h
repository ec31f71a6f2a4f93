// A context value: a tensor held by pointer, a JSON value, an opaque host object (a ComfyUI MODEL,
// a LATENT dict...) held through a handle that bridge/ implements, or a recipe (a pruned API
// sub-workflow that recreates an opaque object). Copying a Value copies a reference, never data.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

namespace discomfort::storage {

// Implemented outside storage/ (bridge/ wraps a Python object). Destruction may need the GIL;
// the implementation takes care of that.
class HostObject {
 public:
  virtual ~HostObject() = default;
  virtual std::string TypeName() const = 0;  // e.g. "ModelPatcher", "dict"
  virtual uint64_t ApproxBytes() const { return 0; }
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
  static Value Recipe(nlohmann::json api_subworkflow);

  ValueKind kind() const { return kind_; }
  bool is_none() const { return kind_ == ValueKind::kNone; }
  bool is_tensor() const { return kind_ == ValueKind::kTensor; }
  bool is_json() const { return kind_ == ValueKind::kJson; }
  bool is_host() const { return kind_ == ValueKind::kHostObject; }
  bool is_recipe() const { return kind_ == ValueKind::kRecipe; }

  const at::Tensor& tensor() const { return tensor_; }
  const nlohmann::json& json() const { return json_; }  // JSON value or recipe
  const std::shared_ptr<HostObject>& host() const { return host_; }

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
};

}  // namespace discomfort::storage
