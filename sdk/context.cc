#include "discomfort/context.h"

#include "sdk/internal.h"

namespace discomfort {
namespace {

const nlohmann::json& NullJson() {
  static const nlohmann::json kNull;
  return kNull;
}

}  // namespace

Value::Value() : rep_(std::make_shared<const storage::Value>()) {}
Value Value::Tensor(at::Tensor tensor) {
  return ValueAccess::Wrap(storage::Value::Tensor(std::move(tensor)));
}
Value Value::Json(nlohmann::json json) {
  return ValueAccess::Wrap(storage::Value::Json(std::move(json)));
}

Value::Kind Value::kind() const {
  switch (rep_->kind()) {
    case storage::ValueKind::kTensor:
      return Kind::kTensor;
    case storage::ValueKind::kJson:
      return Kind::kJson;
    case storage::ValueKind::kHostObject:
      return Kind::kObject;
    case storage::ValueKind::kRecipe:
      return Kind::kRecipe;
    case storage::ValueKind::kNone:
      break;
  }
  return Kind::kNone;
}

at::Tensor Value::tensor() const { return rep_->is_tensor() ? rep_->tensor() : at::Tensor(); }

const nlohmann::json& Value::json() const {
  return rep_->is_json() || rep_->is_recipe() ? rep_->json() : NullJson();
}

std::string Value::type_name() const {
  if (rep_->is_host()) return rep_->host()->TypeName();
  return storage::ValueKindName(rep_->kind());
}

std::string Value::Describe() const { return rep_->Describe(); }

namespace {

storage::ContextOptions ToStorage(const ContextOptions& options) {
  storage::ContextOptions out;
  out.max_ram_gb = options.max_ram_gb;
  out.max_ram_percent = options.max_ram_percent;
  out.max_device_gb = options.max_device_gb;
  out.temp_root = options.temp_root;
  return out;
}

}  // namespace

Context::Context(const ContextOptions& options)
    : impl_(std::make_shared<storage::Context>(ToStorage(options))) {}
Context::~Context() = default;
Context::Context(Context&&) noexcept = default;
Context& Context::operator=(Context&&) noexcept = default;

Status Context::Put(const std::string& key, at::Tensor tensor) {
  return impl_->Put(key, storage::Value::Tensor(std::move(tensor)));
}
Status Context::Put(const std::string& key, nlohmann::json value) {
  return impl_->Put(key, storage::Value::Json(std::move(value)));
}
Status Context::Put(const std::string& key, const Value& value) {
  return impl_->Put(key, ValueAccess::Unwrap(value));
}

Result<Value> Context::Get(const std::string& key) const {
  DISCOMFORT_ASSIGN_OR_RETURN(storage::Value value, impl_->Get(key));
  return ValueAccess::Wrap(std::move(value));
}

bool Context::Contains(const std::string& key) const { return impl_->Contains(key); }
Status Context::Erase(const std::string& key) { return impl_->Erase(key); }
std::vector<std::string> Context::Keys() const { return impl_->Keys(); }

ContextUsage Context::Usage() const {
  const storage::Usage u = impl_->GetUsage();
  ContextUsage out;
  out.ram_bytes = u.ram_bytes;
  out.ram_budget_bytes = u.ram_budget_bytes;
  out.device_bytes = u.device_bytes;
  out.disk_bytes = u.disk_bytes;
  out.count = u.count;
  out.spilled_count = u.spilled_count;
  out.spills = u.spills;
  out.reloads = u.reloads;
  return out;
}

Status Context::SaveSnapshot(const std::string& dir) const {
  return impl_->SaveSnapshot(dir).TakeStatus();
}
Status Context::LoadSnapshot(const std::string& dir) {
  return impl_->LoadSnapshot(dir).TakeStatus();
}

}  // namespace discomfort
