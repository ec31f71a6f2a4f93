// Runs C++ work with the GIL released: storage I/O, loops and sweeps must not stop other Python
// threads (or the engine's own callbacks, which take the GIL back while Python code runs).
#pragma once

#include <pybind11/pybind11.h>

namespace discomfort::pymodule {

// Returns what `body` returns. The caller holds the GIL; `body` must not touch Python objects
// except through pybind11::gil_scoped_acquire.
template <typename Body>
auto WithoutGil(Body&& body) -> decltype(body()) {
  pybind11::gil_scoped_release release;
  return body();
}

}  // namespace discomfort::pymodule
