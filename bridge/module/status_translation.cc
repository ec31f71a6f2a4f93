#include "bridge/module/status_translation.h"

#include <string>

#include "bridge/value_convert.h"

namespace py = pybind11;

namespace discomfort::pymodule {

py::dict StatusToDict(const Status& st) {
  py::dict d = bridge::JsonToPython(st.ToJson());
  d["text"] = st.ToString();
  return d;
}

py::object ExceptionFor(const Status& st) {
  return py::module_::import("discomfort.errors").attr("from_status")(StatusToDict(st));
}

void Raise(const Status& st) {
  py::object exc = ExceptionFor(st);
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
  throw py::error_already_set();
}

nlohmann::json ToJsonOrRaise(py::handle object, const char* what) {
  nlohmann::json out;
  if (!bridge::PythonToJson(object, &out)) {
    throw py::type_error(std::string(what) +
                         " must be JSON-serializable (dicts, lists, str, int, float, bool, None)");
  }
  return out;
}

py::list ErrorCodeTable() {
  py::list table;
  for (ErrorCode code : AllErrorCodes())
    table.append(py::make_tuple(ErrorCodeId(code), ErrorCodeName(code)));
  return table;
}

}  // namespace discomfort::pymodule
