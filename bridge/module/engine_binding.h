// discomfort._core.Engine (ComfyUI imported into this Python, runs, plans and sweeps on the one
// orchestration path of engine/run_request.h) and CancelToken.
#pragma once

#include <pybind11/pybind11.h>

namespace discomfort::pymodule {

void BindEngine(pybind11::module_& m);

}  // namespace discomfort::pymodule
