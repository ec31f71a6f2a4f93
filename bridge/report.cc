#include "bridge/report.h"

#include <filesystem>

#include <pybind11/embed.h>

#include "bridge/python_errors.h"
#include "bridge/python_runtime.h"

namespace py = pybind11;

namespace discomfort::bridge {
namespace {

// The report package: beside an installed CLI (<prefix>/share/discomfort/python/discomfort_report),
// else in the source tree it was built from.
std::string ReportPackageDir() {
  const std::filesystem::path installed =
      std::filesystem::path(BridgePythonDir()) / "discomfort_report";
  std::error_code ec;
  if (std::filesystem::is_regular_file(installed / "__init__.py", ec)) return installed.string();
  return std::string(DISCOMFORT_SOURCE_DIR) + "/python/discomfort/report";
}

}  // namespace

Result<std::string> GenerateReport(const ReportRequest& request) {
  DISCOMFORT_RETURN_IF_ERROR(EnsurePythonRuntime());
  py::gil_scoped_acquire gil;
  try {
    py::module_ sys = py::module_::import("sys");
    py::object report;
    if (sys.attr("modules").contains("discomfort_report")) {
      report = sys.attr("modules")["discomfort_report"];
    } else {
      // Loaded by file path: importing the discomfort package would load its compiled core.
      const std::string dir = ReportPackageDir();
      py::module_ util = py::module_::import("importlib.util");
      py::list search;
      search.append(dir);
      py::object spec =
          util.attr("spec_from_file_location")("discomfort_report", dir + "/__init__.py",
                                               py::arg("submodule_search_locations") = search);
      if (spec.is_none())
        return Status(ErrorCode::kNotFound, "the run report package is missing at " + dir);
      report = util.attr("module_from_spec")(spec);
      sys.attr("modules")["discomfort_report"] = report;
      spec.attr("loader").attr("exec_module")(report);
    }
    py::dict kwargs;
    if (!request.out.empty()) kwargs["out"] = request.out;
    if (!request.events_path.empty()) kwargs["events"] = request.events_path;
    if (!request.trace_path.empty()) kwargs["trace"] = request.trace_path;
    if (!request.until.empty()) kwargs["until"] = request.until;
    if (!request.title.empty()) kwargs["title"] = request.title;
    return report.attr("generate")(request.run_dir, **kwargs).cast<std::string>();
  } catch (py::error_already_set& e) {
    const bool missing_file = e.matches(PyExc_FileNotFoundError);
    const bool missing_library = e.matches(PyExc_ImportError);
    Status st = StatusFromPythonError(e, ErrorCode::kPython);
    if (missing_library) {
      return Status(ErrorCode::kPython,
                    "the run report needs Jinja2, matplotlib and Pillow (pip install "
                    "'discomfort[report]', or scripts/setup): " +
                        st.message());
    }
    return Status(missing_file ? ErrorCode::kNotFound : ErrorCode::kPython,
                  "run report: " + st.message())
        .set_traceback(st.traceback());
  }
}

}  // namespace discomfort::bridge
