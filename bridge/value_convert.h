// Context values <-> Python objects. Tensors cross by pointer (one TensorImpl shared by
// at::Tensor and torch.Tensor); JSON-able data by value; anything else as an opaque handle.
// All functions must be called with the GIL held.
#pragma once

#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "discomfort/status.h"
#include "storage/value.h"

namespace discomfort::bridge {

// A Python object held by the context (a ComfyUI MODEL, a LATENT dict...). ComfyUI's models
// (ModelPatcher, CLIP, VAE) report their weights and can leave RAM under the context's budget,
// through discomfort_bridge/model_memory.py; every method takes the GIL itself.
class PyObjectHandle : public storage::HostObject {
 public:
  explicit PyObjectHandle(pybind11::object object);
  ~PyObjectHandle() override;  // takes the GIL to drop the reference
  std::string TypeName() const override { return type_name_; }
  uint64_t ApproxBytes() const override { return approx_bytes_; }
  const pybind11::object& object() const { return object_; }

  std::vector<storage::HostMemoryPart> MeasureMemory() const override;
  bool CanSpillTensors() const override { return model_; }
  Result<storage::NamedTensors> TensorsToSpill() override;
  Status ReplaceTensors(const storage::NamedTensors& replacements) override;
  std::string ReleaseForDrop(const std::string& key) override;

 private:
  pybind11::object object_;
  std::string type_name_;
  uint64_t approx_bytes_ = 0;
  bool model_ = false;
};

storage::Value ValueFromPython(pybind11::handle object);
Result<pybind11::object> ValueToPython(const storage::Value& value);

pybind11::object JsonToPython(const nlohmann::json& json);
// Fails (returns false) when `object` holds something JSON cannot represent.
bool PythonToJson(pybind11::handle object, nlohmann::json* out, int depth = 0);

}  // namespace discomfort::bridge
