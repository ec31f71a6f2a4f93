#include "bridge/python_errors.h"

namespace py = pybind11;

namespace discomfort::bridge {

Status StatusFromPythonError(py::error_already_set& error, ErrorCode code) {
  std::string type_name = "Exception";
  std::string traceback;
  try {
    type_name = py::str(error.type().attr("__name__")).cast<std::string>();
    if (error.trace()) {
      py::object format = py::module_::import("traceback").attr("format_exception");
      py::list lines = format(error.type(), error.value(), error.trace());
      for (py::handle line : lines) traceback += line.cast<std::string>();
    }
  } catch (...) {
    // Formatting the traceback failed: keep the message.
  }
  Status st(code, type_name + ": " + py::str(error.value()).cast<std::string>());
  st.set_traceback(traceback);
  return st;
}

}  // namespace discomfort::bridge
