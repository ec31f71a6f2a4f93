#include "storage/value.h"

#include <sstream>

namespace discomfort::storage {

const char* ValueKindName(ValueKind kind) {
  switch (kind) {
    case ValueKind::kNone:
      return "none";
    case ValueKind::kTensor:
      return "tensor";
    case ValueKind::kJson:
      return "json";
    case ValueKind::kHostObject:
      return "object";
    case ValueKind::kRecipe:
      return "recipe";
  }
  return "?";
}

// torch's names ("float32"), as Python users know them.
std::string TorchDtypeName(c10::ScalarType t) {
  switch (t) {
    case c10::ScalarType::Float:
      return "float32";
    case c10::ScalarType::Double:
      return "float64";
    case c10::ScalarType::Half:
      return "float16";
    case c10::ScalarType::BFloat16:
      return "bfloat16";
    case c10::ScalarType::Long:
      return "int64";
    case c10::ScalarType::Int:
      return "int32";
    case c10::ScalarType::Short:
      return "int16";
    case c10::ScalarType::Char:
      return "int8";
    case c10::ScalarType::Byte:
      return "uint8";
    case c10::ScalarType::Bool:
      return "bool";
    case c10::ScalarType::ComplexFloat:
      return "complex64";
    case c10::ScalarType::ComplexDouble:
      return "complex128";
    default:
      return c10::toString(t);
  }
}

Value Value::Tensor(at::Tensor tensor) {
  Value v;
  v.kind_ = ValueKind::kTensor;
  v.tensor_ = std::move(tensor);
  return v;
}

Value Value::Json(nlohmann::json json) {
  Value v;
  v.kind_ = ValueKind::kJson;
  v.json_ = std::move(json);
  return v;
}

Value Value::Host(std::shared_ptr<HostObject> object) {
  Value v;
  v.kind_ = ValueKind::kHostObject;
  v.host_ = std::move(object);
  return v;
}

Value Value::Recipe(nlohmann::json api_subworkflow, double rebuild_seconds) {
  Value v;
  v.kind_ = ValueKind::kRecipe;
  v.json_ = std::move(api_subworkflow);
  v.rebuild_seconds_ = rebuild_seconds;
  return v;
}

Value Value::WithRecipe(std::shared_ptr<const nlohmann::json> recipe,
                        double rebuild_seconds) const {
  Value v = *this;
  if (v.kind_ != ValueKind::kHostObject) return v;
  v.recipe_ = std::move(recipe);
  v.rebuild_seconds_ = rebuild_seconds;
  return v;
}

const nlohmann::json& Value::recipe() const {
  static const nlohmann::json kNull;
  if (kind_ == ValueKind::kRecipe) return json_;
  return recipe_ != nullptr ? *recipe_ : kNull;
}

Result<NamedTensors> HostObject::TensorsToSpill() {
  return Status(ErrorCode::kInvalidArgument, "a " + TypeName() + " cannot leave RAM");
}

Status HostObject::ReplaceTensors(const NamedTensors&) {
  return Status(ErrorCode::kInvalidArgument,
                "a " + TypeName() + " cannot take file-backed weights");
}

uint64_t Value::ApproxBytes() const {
  switch (kind_) {
    case ValueKind::kTensor:
      if (!tensor_.defined()) return 0;
      // Sparse and other storage-less layouts would throw on storage().
      return tensor_.has_storage()
                 ? tensor_.storage().nbytes()
                 : static_cast<uint64_t>(tensor_.numel()) * tensor_.element_size();
    case ValueKind::kJson:
    case ValueKind::kRecipe:
      return json_.dump().size();
    case ValueKind::kHostObject:
      return host_ ? host_->ApproxBytes() : 0;
    case ValueKind::kNone:
      return 0;
  }
  return 0;
}

std::string Value::Describe() const {
  std::ostringstream out;
  switch (kind_) {
    case ValueKind::kTensor: {
      out << "tensor " << c10::toString(tensor_.scalar_type()) << "[";
      for (int64_t i = 0; i < tensor_.dim(); ++i) out << (i ? "," : "") << tensor_.size(i);
      out << "] " << tensor_.device().str();
      break;
    }
    case ValueKind::kJson: {
      std::string text = json_.dump();
      if (text.size() > 60) text = text.substr(0, 57) + "...";
      out << "json " << text;
      break;
    }
    case ValueKind::kHostObject:
      out << "object " << (host_ ? host_->TypeName() : "null");
      break;
    case ValueKind::kRecipe:
      out << "recipe (" << json_.size() << " nodes)";
      break;
    case ValueKind::kNone:
      out << "none";
      break;
  }
  return out.str();
}

}  // namespace discomfort::storage
