// The one place where Python exceptions become Status values.
#pragma once

#include <pybind11/pybind11.h>

#include "discomfort/status.h"

namespace discomfort::bridge {

// Message "<ExceptionType>: <text>" plus the formatted traceback. Must hold the GIL.
Status StatusFromPythonError(pybind11::error_already_set& error, ErrorCode code);

}  // namespace discomfort::bridge
