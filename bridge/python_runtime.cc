#include "bridge/python_runtime.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>

#include <pybind11/embed.h>
#include <spdlog/spdlog.h>

#include "bridge/python_errors.h"

namespace py = pybind11;

namespace discomfort::bridge {
namespace {

std::once_flag g_init_once;
Status g_init_status;
bool g_embedded = false;

}  // namespace

// An installed copy is <prefix>/bin or <prefix>/lib beside <prefix>/share/discomfort/python, as
// `cmake --install` lays it out.
std::string BridgePythonDir() {
  if (const char* env = std::getenv("DISCOMFORT_BRIDGE_PYTHON_DIR"); env != nullptr && *env)
    return env;
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&BridgePythonDir), &info) != 0 && info.dli_fname != nullptr) {
    std::error_code ec;
    const auto binary = std::filesystem::canonical(info.dli_fname, ec);
    if (!ec) {
      const auto installed = binary.parent_path().parent_path() / "share" / "discomfort" / "python";
      if (std::filesystem::is_directory(installed / "discomfort_bridge", ec))
        return installed.string();
    }
  }
  return DISCOMFORT_PYTHON_DIR;
}

namespace {

std::string ChooseVenvPython(const RuntimeOptions& options) {
  if (!options.venv_python.empty()) return options.venv_python;
  if (const char* env = std::getenv("DISCOMFORT_PYTHON"); env != nullptr && *env) return env;
  return DISCOMFORT_VENV_PYTHON;
}

Status StartEmbedded(const RuntimeOptions& options) {
  const std::string python = ChooseVenvPython(options);
  if (!std::filesystem::exists(python)) {
    return Status(ErrorCode::kPython,
                  "the project venv's Python is missing at " + python +
                      ": run scripts/setup, or set DISCOMFORT_PYTHON to a venv python with torch");
  }
  PyConfig config;
  PyConfig_InitPythonConfig(&config);
  // The C++ host owns SIGINT (cancellation); Python must not install its own handler.
  config.install_signal_handlers = 0;
  config.parse_argv = 0;
  // Pointing program_name/executable at the venv's python makes getpath read its pyvenv.cfg,
  // so site-packages are the venv's.
  PyStatus status = PyConfig_SetBytesString(&config, &config.program_name, python.c_str());
  if (!PyStatus_Exception(status)) {
    status = PyConfig_SetBytesString(&config, &config.executable, python.c_str());
  }
  if (PyStatus_Exception(status)) {
    PyConfig_Clear(&config);
    return Status(ErrorCode::kPython, "cannot configure the embedded Python");
  }
  try {
    py::initialize_interpreter(&config, 0, nullptr, /*add_program_dir_to_path=*/false);
  } catch (const std::exception& e) {
    PyConfig_Clear(&config);
    return Status(ErrorCode::kPython, std::string("cannot start the embedded Python: ") + e.what());
  }
  PyConfig_Clear(&config);
  g_embedded = true;
  Status result;
  {
    try {
      py::module_ sys = py::module_::import("sys");
      sys.attr("path").attr("insert")(0, BridgePythonDir());
      spdlog::debug("[discomfort] embedded Python {} (prefix {})",
                    sys.attr("version").cast<std::string>(),
                    sys.attr("prefix").cast<std::string>());
    } catch (py::error_already_set& e) {
      result = StatusFromPythonError(e, ErrorCode::kPython);
    }
  }
  // Hand the GIL back: from now on every bridge call takes it only while Python runs.
  PyEval_SaveThread();
  return result;
}

}  // namespace

Status EnsurePythonRuntime(const RuntimeOptions& options) {
  std::call_once(g_init_once, [&options] {
    if (Py_IsInitialized()) {
      // Python hosts us (the discomfort module, a live ComfyUI): make our package importable.
      py::gil_scoped_acquire gil;
      try {
        py::module_::import("sys").attr("path").attr("insert")(0, BridgePythonDir());
      } catch (py::error_already_set& e) {
        g_init_status = StatusFromPythonError(e, ErrorCode::kPython);
      }
      return;
    }
    g_init_status = StartEmbedded(options);
  });
  return g_init_status;
}

bool PythonIsEmbedded() { return g_embedded; }

}  // namespace discomfort::bridge
