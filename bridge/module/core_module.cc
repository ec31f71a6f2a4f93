// discomfort._core: the C++ engine as a Python extension module (Python is the host here; the
// bridge attaches to the running interpreter instead of embedding one). Private: the discomfort
// package wraps it.
//
// GIL discipline: every call that may block (starting ComfyUI, a loop, storage I/O) runs through
// WithoutGil; the bridge takes the GIL back only while Python code runs. Errors become Python
// exceptions in one place, status_translation.cc.
#include <pybind11/pybind11.h>

#include "bridge/module/builder_binding.h"
#include "bridge/module/context_binding.h"
#include "bridge/module/engine_binding.h"
#include "bridge/module/graph_binding.h"
#include "bridge/module/status_translation.h"

PYBIND11_MODULE(_core, m) {
  m.doc() = "Discomfort's C++ engine (private; use the discomfort package).";
  discomfort::pymodule::BindContext(m);
  discomfort::pymodule::BindEngine(m);
  discomfort::pymodule::BindGraph(m);
  discomfort::pymodule::BindWorkflowBuilder(m);
  m.def(
      "error_codes", &discomfort::pymodule::ErrorCodeTable,
      "[(id, name)] of every engine error code; discomfort.errors has one exception class per id");
}
