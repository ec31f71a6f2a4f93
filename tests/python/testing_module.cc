// discomfort_testing: a test-only extension module (never installed) that raises engine errors on
// demand, so the tests can check the Status -> exception mapping for every error code.
#include <string>

#include <pybind11/pybind11.h>

#include "bridge/module/status_translation.h"

namespace py = pybind11;

PYBIND11_MODULE(discomfort_testing, m) {
  m.def(
      "raise_status",
      [](const std::string& id, const std::string& message) {
        for (discomfort::ErrorCode code : discomfort::AllErrorCodes()) {
          if (id != discomfort::ErrorCodeId(code)) continue;
          discomfort::ErrorLocation where;
          where.node_id = "7";
          where.class_type = "KSampler";
          where.iteration = 2;
          discomfort::pymodule::Raise(
              discomfort::Status(code, message, where).set_traceback("Traceback: test"));
        }
        throw py::value_error("unknown error code id " + id);
      },
      py::arg("code"), py::arg("message"));
}
