// The one place where engine Status values become Python exceptions (the exception classes live in
// discomfort.errors, keyed by the error codes' ids from include/discomfort/error_codes.h). All
// functions need the GIL.
#pragma once

#include <pybind11/pybind11.h>

#include <nlohmann/json.hpp>

#include "discomfort/status.h"

namespace discomfort::pymodule {

// {code (the id), text, message, and the location fields}.
pybind11::dict StatusToDict(const Status& st);
// The exception object discomfort.errors.from_status builds for `st`.
pybind11::object ExceptionFor(const Status& st);
[[noreturn]] void Raise(const Status& st);

template <typename T>
T Unwrap(Result<T> result) {
  if (!result.ok()) Raise(result.status());
  return std::move(result).value();
}

inline void Check(const Status& st) {
  if (!st.ok()) Raise(st);
}

// JSON from plain Python data, or TypeError naming `what`.
nlohmann::json ToJsonOrRaise(pybind11::handle object, const char* what);

// [(id, name)] for every error code, so Python can check its exception classes cover them all.
pybind11::list ErrorCodeTable();

}  // namespace discomfort::pymodule
