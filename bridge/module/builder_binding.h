// discomfort._core.WorkflowBuilder: graph::WorkflowBuilder for Python (workflows built in code,
// checked against node definitions at every call).
#pragma once

#include <pybind11/pybind11.h>

namespace discomfort::pymodule {

void BindWorkflowBuilder(pybind11::module_& m);

}  // namespace discomfort::pymodule
