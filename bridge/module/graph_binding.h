// discomfort._core's workflow tools: node definitions, UI -> API conversion, ports, stitching,
// pruning, validation, grid parsing (pure graph/ work, no ComfyUI needed).
#pragma once

#include <pybind11/pybind11.h>

namespace discomfort::pymodule {

void BindGraph(pybind11::module_& m);

}  // namespace discomfort::pymodule
