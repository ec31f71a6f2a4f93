#include "bridge/value_convert.h"

#include <cmath>

#include <spdlog/spdlog.h>

#include <pybind11/stl.h>
#include <torch/csrc/autograd/python_variable.h>

#include "bridge/python_errors.h"

namespace py = pybind11;

namespace discomfort::bridge {
namespace {

constexpr int kMaxJsonDepth = 64;

// Tensor bytes reachable from a dict/list (a LATENT {"samples": t}); counts each storage once.
uint64_t TensorBytesInside(py::handle object, int depth = 0) {
  if (depth > 8) return 0;
  if (THPVariable_Check(object.ptr())) {
    return THPVariable_Unpack(object.ptr()).storage().nbytes();
  }
  uint64_t total = 0;
  if (py::isinstance<py::dict>(object)) {
    for (auto item : py::reinterpret_borrow<py::dict>(object))
      total += TensorBytesInside(item.second, depth + 1);
  } else if (py::isinstance<py::list>(object) || py::isinstance<py::tuple>(object)) {
    for (py::handle item : object) total += TensorBytesInside(item, depth + 1);
  }
  return total;
}

// discomfort_bridge.model_memory once ComfyUI's model classes are imported (before that no
// object can be a model), or none where the bridge's Python side is not importable. Called with
// the GIL held; the module is kept for the life of the process.
py::object ModelMemory() {
  static PyObject* module = nullptr;
  if (module == nullptr) {
    py::dict modules = py::module_::import("sys").attr("modules");
    if (!modules.contains("comfy.model_patcher")) return py::object();
    try {
      module = py::module_::import("discomfort_bridge.model_memory").release().ptr();
    } catch (py::error_already_set&) {
      return py::object();
    }
  }
  return py::reinterpret_borrow<py::object>(module);
}

}  // namespace

PyObjectHandle::PyObjectHandle(py::object object) : object_(std::move(object)) {
  type_name_ = py::str(py::type::of(object_).attr("__name__")).cast<std::string>();
  py::object memory = ModelMemory();
  if (memory && memory.attr("is_model")(object_).cast<bool>()) {
    model_ = true;
    for (const storage::HostMemoryPart& part : MeasureMemory()) approx_bytes_ += part.bytes;
  } else {
    approx_bytes_ = TensorBytesInside(object_);
  }
}

std::vector<storage::HostMemoryPart> PyObjectHandle::MeasureMemory() const {
  if (!model_) return {};
  py::gil_scoped_acquire gil;
  std::vector<storage::HostMemoryPart> parts;
  try {
    for (py::handle item : ModelMemory().attr("measure")(object_)) {
      auto fields = item.cast<py::tuple>();
      parts.push_back({fields[0].cast<uint64_t>(), fields[1].cast<std::string>(),
                       fields[2].cast<uint64_t>(), fields[3].cast<bool>()});
    }
  } catch (py::error_already_set& e) {
    // A model that cannot be measured keeps its last accounting; the budget must not fail a run.
    spdlog::warn("[discomfort] measuring a {} failed: {}", type_name_,
                 StatusFromPythonError(e, ErrorCode::kPython).message());
  }
  return parts;
}

Result<storage::NamedTensors> PyObjectHandle::TensorsToSpill() {
  if (!model_) return HostObject::TensorsToSpill();
  py::gil_scoped_acquire gil;
  try {
    storage::NamedTensors out;
    for (py::handle item : ModelMemory().attr("tensors_to_spill")(object_)) {
      auto pair = item.cast<py::tuple>();
      py::handle tensor = pair[1];
      if (!THPVariable_Check(tensor.ptr())) continue;
      out.emplace_back(pair[0].cast<std::string>(), THPVariable_Unpack(tensor.ptr()));
    }
    return out;
  } catch (py::error_already_set& e) {
    return StatusFromPythonError(e, ErrorCode::kPython);
  }
}

Status PyObjectHandle::ReplaceTensors(const storage::NamedTensors& replacements) {
  if (!model_) return HostObject::ReplaceTensors(replacements);
  py::gil_scoped_acquire gil;
  try {
    py::dict mapping;
    for (const auto& [name, tensor] : replacements) {
      mapping[py::str(name)] = py::reinterpret_steal<py::object>(THPVariable_Wrap(tensor));
    }
    ModelMemory().attr("replace_tensors")(object_, mapping);
    return Status::Ok();
  } catch (py::error_already_set& e) {
    return StatusFromPythonError(e, ErrorCode::kPython);
  }
}

std::string PyObjectHandle::ReleaseForDrop(const std::string& key) {
  if (!model_) return HostObject::ReleaseForDrop(key);
  py::gil_scoped_acquire gil;
  try {
    return ModelMemory().attr("release_for_drop")(object_, key).cast<std::string>();
  } catch (py::error_already_set& e) {
    return StatusFromPythonError(e, ErrorCode::kPython).message();
  }
}

PyObjectHandle::~PyObjectHandle() {
  if (!Py_IsInitialized()) {
    object_.release();  // interpreter gone at exit: nothing to release into
    return;
  }
  py::gil_scoped_acquire gil;
  object_ = py::object();
}

bool PythonToJson(py::handle object, nlohmann::json* out, int depth) {
  if (depth > kMaxJsonDepth) return false;
  if (object.is_none()) {
    *out = nullptr;
  } else if (py::isinstance<py::bool_>(object)) {
    *out = object.cast<bool>();
  } else if (py::isinstance<py::int_>(object)) {
    try {
      *out = object.cast<int64_t>();
    } catch (const py::cast_error&) {
      return false;  // beyond 64 bits
    }
  } else if (py::isinstance<py::float_>(object)) {
    const double v = object.cast<double>();
    if (!std::isfinite(v)) return false;  // JSON has no NaN / inf
    *out = v;
  } else if (py::isinstance<py::str>(object)) {
    *out = object.cast<std::string>();
  } else if (py::isinstance<py::list>(object) || py::isinstance<py::tuple>(object)) {
    nlohmann::json arr = nlohmann::json::array();
    for (py::handle item : object) {
      nlohmann::json element;
      if (!PythonToJson(item, &element, depth + 1)) return false;
      arr.push_back(std::move(element));
    }
    *out = std::move(arr);
  } else if (py::isinstance<py::dict>(object)) {
    nlohmann::json obj = nlohmann::json::object();
    for (auto item : py::reinterpret_borrow<py::dict>(object)) {
      if (!py::isinstance<py::str>(item.first)) return false;
      nlohmann::json element;
      if (!PythonToJson(item.second, &element, depth + 1)) return false;
      obj[item.first.cast<std::string>()] = std::move(element);
    }
    *out = std::move(obj);
  } else {
    return false;
  }
  return true;
}

namespace {

py::object JsonToPythonAt(const nlohmann::json& json, int depth);

}  // namespace

// Bounded like PythonToJson: a workflow's input value nested 50,000 deep overflowed the stack
// (SIGSEGV) here. Deeper than kMaxJsonDepth is a Python RecursionError, which every caller
// already turns into a typed error.
py::object JsonToPython(const nlohmann::json& json) { return JsonToPythonAt(json, 0); }

namespace {

py::object JsonToPythonAt(const nlohmann::json& json, int depth) {
  if (depth > kMaxJsonDepth) {
    PyErr_SetString(PyExc_RecursionError,
                    ("a JSON value nested deeper than " + std::to_string(kMaxJsonDepth) +
                     " levels cannot be handed to Python")
                        .c_str());
    throw py::error_already_set();
  }
  switch (json.type()) {
    case nlohmann::json::value_t::null:
      return py::none();
    case nlohmann::json::value_t::boolean:
      return py::bool_(json.get<bool>());
    case nlohmann::json::value_t::number_integer:
      return py::int_(json.get<int64_t>());
    case nlohmann::json::value_t::number_unsigned:
      return py::int_(json.get<uint64_t>());
    case nlohmann::json::value_t::number_float:
      return py::float_(json.get<double>());
    case nlohmann::json::value_t::string:
      return py::str(json.get_ref<const std::string&>());
    case nlohmann::json::value_t::array: {
      py::list list;
      for (const auto& item : json) list.append(JsonToPythonAt(item, depth + 1));
      return list;
    }
    case nlohmann::json::value_t::object: {
      py::dict dict;
      for (const auto& [key, item] : json.items())
        dict[py::str(key)] = JsonToPythonAt(item, depth + 1);
      return dict;
    }
    default:
      return py::none();
  }
}

}  // namespace

storage::Value ValueFromPython(py::handle object) {
  if (THPVariable_Check(object.ptr())) {
    return storage::Value::Tensor(THPVariable_Unpack(object.ptr()));  // same TensorImpl
  }
  nlohmann::json json;
  if (PythonToJson(object, &json)) return storage::Value::Json(std::move(json));
  return storage::Value::Host(
      std::make_shared<PyObjectHandle>(py::reinterpret_borrow<py::object>(object)));
}

Result<py::object> ValueToPython(const storage::Value& value) {
  switch (value.kind()) {
    case storage::ValueKind::kTensor:
      return py::reinterpret_steal<py::object>(THPVariable_Wrap(value.tensor()));
    case storage::ValueKind::kJson:
      return JsonToPython(value.json());
    case storage::ValueKind::kHostObject: {
      auto handle = std::dynamic_pointer_cast<PyObjectHandle>(value.host());
      if (!handle) {
        return Status(ErrorCode::kTypeMismatch, "the context holds a host object of type " +
                                                    value.host()->TypeName() +
                                                    " that is not a Python object");
      }
      return handle->object();
    }
    case storage::ValueKind::kRecipe:
      return Status(
          ErrorCode::kTypeMismatch,
          "a recipe must be executed to recreate its object before it can be passed to a node");
    case storage::ValueKind::kNone:
      return py::object(py::none());
  }
  return Status(ErrorCode::kInternal, "unknown value kind");
}

}  // namespace discomfort::bridge
