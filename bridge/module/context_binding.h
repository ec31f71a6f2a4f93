// discomfort._core.Context: the context store, bound for Python.
#pragma once

#include <memory>

#include <pybind11/pybind11.h>

#include "storage/context.h"

namespace discomfort::pymodule {

class ContextHandle {
 public:
  explicit ContextHandle(storage::ContextOptions options);
  // A reference that stays valid while the GIL is released, even if close() runs meanwhile.
  std::shared_ptr<storage::Context> get() const;
  void Close();
  bool closed() const { return context_ == nullptr; }

 private:
  std::shared_ptr<storage::Context> context_;
};

// A context value as Python sees it: tensors by pointer, JSON as Python data, recipes as dicts.
pybind11::object ValueOut(const storage::Value& value);

void BindContext(pybind11::module_& m);

}  // namespace discomfort::pymodule
