// The embedded CPython: started once per process with the project venv, or attached to an
// interpreter that is already running (the Python module, a live ComfyUI). Never finalized:
// torch and ComfyUI keep threads and globals that do not survive Py_Finalize.
#pragma once

#include <string>

#include "discomfort/status.h"

namespace discomfort::bridge {

struct RuntimeOptions {
  // Python executable of the venv whose site-packages (torch, ComfyUI's requirements) to use.
  // Empty: $DISCOMFORT_PYTHON, else the venv the project was built against.
  std::string venv_python;
};

// Idempotent and thread-safe. On return the calling thread does not hold the GIL.
Status EnsurePythonRuntime(const RuntimeOptions& options = {});

// The folder holding the bridge's Python package (discomfort_bridge):
// $DISCOMFORT_BRIDGE_PYTHON_DIR, else beside an installed copy (<prefix>/share/discomfort/python),
// else the source tree.
std::string BridgePythonDir();

// True when this process started the interpreter (a C++ host), false when Python hosts us.
bool PythonIsEmbedded();

}  // namespace discomfort::bridge
