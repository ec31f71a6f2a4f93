#include "bridge/distributed.h"

#include <filesystem>

#include <pybind11/embed.h>
#include <pybind11/functional.h>

#include "bridge/python_errors.h"
#include "bridge/python_runtime.h"
#include "bridge/value_convert.h"

namespace py = pybind11;

namespace discomfort::bridge {

Result<int> RunDistributedSweep(const nlohmann::json& config, const std::atomic<bool>* cancel,
                                const std::function<void(const nlohmann::json&)>& emit) {
  DISCOMFORT_RETURN_IF_ERROR(EnsurePythonRuntime());
  py::gil_scoped_acquire gil;
  try {
    py::module_ sys = py::module_::import("sys");
    // The discomfort package: installed in the venv, else the build tree this CLI belongs to.
    if (std::filesystem::is_directory(DISCOMFORT_PACKAGE_BUILD_DIR)) {
      sys.attr("path").attr("append")(DISCOMFORT_PACKAGE_BUILD_DIR);
    }
    py::module_ driver;
    try {
      driver = py::module_::import("discomfort.distributed");
    } catch (py::error_already_set& e) {
      Status st = StatusFromPythonError(e, ErrorCode::kNotFound);
      return Status(ErrorCode::kNotFound,
                    "--ray needs the discomfort Python package with Ray (pip install "
                    "'discomfort[ray]' into the "
                    "venv, or scripts/setup): " +
                        st.message());
    }
    py::cpp_function cancelled([cancel] { return cancel != nullptr && cancel->load(); });
    py::cpp_function forward([&emit](py::handle line) {
      nlohmann::json j;
      if (!PythonToJson(line, &j)) j = py::str(line).cast<std::string>();
      py::gil_scoped_release release;  // the caller writes a line; Python need not wait on it
      emit(j);
    });
    py::object rc = driver.attr("run_sweep")(JsonToPython(config), cancelled, forward);
    return rc.cast<int>();
  } catch (py::error_already_set& e) {
    return StatusFromPythonError(e, ErrorCode::kPython);
  }
}

}  // namespace discomfort::bridge
