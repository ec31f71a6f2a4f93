#include "bridge/module/context_binding.h"

#include <optional>
#include <string>

#include <pybind11/stl.h>

#include "bridge/module/status_translation.h"
#include "bridge/module/without_gil.h"
#include "bridge/value_convert.h"

namespace py = pybind11;

namespace discomfort::pymodule {
namespace {

py::dict InfoToDict(const storage::ValueInfo& info) {
  py::dict d;
  d["kind"] = storage::ValueKindName(info.kind);
  d["bytes"] = info.bytes;
  d["device"] = info.device;
  d["on_disk"] = info.on_disk;
  d["version"] = info.version;
  d["pins"] = info.pins;
  if (!info.dtype.empty()) d["dtype"] = info.dtype;
  if (!info.shape.empty() || info.kind == storage::ValueKind::kTensor) d["shape"] = info.shape;
  if (!info.spill_path.empty()) d["spill_path"] = info.spill_path;
  if (!info.bytes_by_device.empty()) d["bytes_by_device"] = info.bytes_by_device;
  if (info.model) {
    d["model"] = true;
    d["spilled_bytes"] = info.spilled_bytes;
    d["spill_files"] = info.spill_files;
  }
  d["has_recipe"] = info.has_recipe;
  if (info.rebuild_seconds >= 0) d["rebuild_seconds"] = info.rebuild_seconds;
  return d;
}

py::dict UsageToDict(const storage::Usage& u) {
  py::dict d;
  d["ram_bytes"] = u.ram_bytes;
  d["ram_budget_bytes"] = u.ram_budget_bytes;
  d["device_bytes"] = u.device_bytes;
  d["device_budget_bytes"] = u.device_budget_bytes;
  d["disk_bytes"] = u.disk_bytes;
  d["host_object_bytes"] = u.host_object_bytes;
  d["count"] = u.count;
  d["spilled_count"] = u.spilled_count;
  d["pinned_count"] = u.pinned_count;
  d["spills"] = u.spills;
  d["reloads"] = u.reloads;
  d["host_ram_bytes"] = u.host_ram_bytes;
  d["host_device_bytes"] = u.host_device_bytes;
  d["host_spilled_bytes"] = u.host_spilled_bytes;
  d["model_spills"] = u.model_spills;
  d["model_drops"] = u.model_drops;
  d["model_restores"] = u.model_restores;
  d["model_write_bytes_per_second"] = u.model_write_bytes_per_second;
  return d;
}

py::dict SnapshotToDict(const storage::SnapshotReport& r) {
  py::dict d;
  d["keys"] = r.keys;
  d["not_persisted"] = r.not_persisted;
  d["bytes"] = r.bytes;
  return d;
}

// Runs a storage call on the context with the GIL released (I/O, host objects' destructors).
template <typename Call>
auto OnContext(ContextHandle& handle, Call call) {
  std::shared_ptr<storage::Context> context = handle.get();
  return WithoutGil([&] { return call(*context); });
}

}  // namespace

ContextHandle::ContextHandle(storage::ContextOptions options)
    : context_(std::make_shared<storage::Context>(std::move(options))) {}

std::shared_ptr<storage::Context> ContextHandle::get() const {
  if (!context_) throw py::value_error("this context was shut down");
  return context_;
}

void ContextHandle::Close() {
  std::shared_ptr<storage::Context> dropped = std::move(context_);
  WithoutGil([&] { dropped.reset(); });  // host objects take the GIL in their destructors
}

py::object ValueOut(const storage::Value& value) {
  if (value.is_recipe()) return bridge::JsonToPython(value.json());
  return Unwrap(bridge::ValueToPython(value));
}

void BindContext(py::module_& m) {
  py::class_<ContextHandle, std::shared_ptr<ContextHandle>>(m, "Context")
      .def(py::init([](std::optional<double> max_ram_gb, std::optional<double> max_ram_percent,
                       std::optional<double> max_device_gb, std::optional<std::string> temp_root,
                       bool force_spill) {
             storage::ContextOptions o;
             o.max_ram_gb = max_ram_gb;
             o.max_ram_percent = max_ram_percent;
             o.max_device_gb = max_device_gb;
             o.temp_root = temp_root.value_or("");
             o.force_spill = force_spill;
             return std::make_shared<ContextHandle>(std::move(o));
           }),
           py::kw_only(), py::arg("max_ram_gb") = py::none(),
           py::arg("max_ram_percent") = py::none(), py::arg("max_device_gb") = py::none(),
           py::arg("temp_root") = py::none(), py::arg("force_spill") = false)
      .def(
          "put",
          [](ContextHandle& c, const std::string& key, py::handle value) {
            storage::Value v = bridge::ValueFromPython(value);
            Check(OnContext(c, [&](storage::Context& ctx) { return ctx.Put(key, std::move(v)); }));
          },
          py::arg("key"), py::arg("value"))
      .def(
          "put_recipe",
          [](ContextHandle& c, const std::string& key, py::handle workflow) {
            storage::Value v = storage::Value::Recipe(ToJsonOrRaise(workflow, "a recipe workflow"));
            Check(OnContext(c, [&](storage::Context& ctx) { return ctx.Put(key, std::move(v)); }));
          },
          py::arg("key"), py::arg("workflow"))
      .def(
          "get",
          [](ContextHandle& c, const std::string& key) {
            return ValueOut(
                Unwrap(OnContext(c, [&](storage::Context& ctx) { return ctx.Get(key); })));
          },
          py::arg("key"))
      .def(
          "contains",
          [](ContextHandle& c, const std::string& key) { return c.get()->Contains(key); },
          py::arg("key"))
      .def("__contains__",
           [](ContextHandle& c, const std::string& key) { return c.get()->Contains(key); })
      .def(
          "erase",
          [](ContextHandle& c, const std::string& key) {
            Check(OnContext(c, [&](storage::Context& ctx) { return ctx.Erase(key); }));
          },
          py::arg("key"))
      .def("keys", [](ContextHandle& c) { return c.get()->Keys(); })
      .def(
          "version", [](ContextHandle& c, const std::string& key) { return c.get()->Version(key); },
          py::arg("key"))
      .def(
          "info",
          [](ContextHandle& c, const std::string& key) -> py::object {
            if (!c.get()->Contains(key)) return py::none();
            return InfoToDict(Unwrap(c.get()->Info(key)));
          },
          py::arg("key"))
      .def("usage", [](ContextHandle& c) { return UsageToDict(c.get()->GetUsage()); })
      .def(
          "spill",
          [](ContextHandle& c, const std::string& key) {
            Check(OnContext(c, [&](storage::Context& ctx) { return ctx.Spill(key); }));
          },
          py::arg("key"))
      .def(
          "export",
          [](ContextHandle& c, const std::string& key, const std::string& path) {
            Check(OnContext(c, [&](storage::Context& ctx) { return ctx.Export(key, path); }));
          },
          py::arg("key"), py::arg("path"))
      .def(
          "import_file",
          [](ContextHandle& c, const std::string& key, const std::string& path, bool as_recipe) {
            const auto kind = as_recipe ? storage::ValueKind::kRecipe : storage::ValueKind::kNone;
            Check(OnContext(c, [&](storage::Context& ctx) { return ctx.Import(key, path, kind); }));
          },
          py::arg("key"), py::arg("path"), py::arg("as_recipe") = false)
      .def(
          "save_snapshot",
          [](ContextHandle& c, const std::string& dir) {
            return SnapshotToDict(
                Unwrap(OnContext(c, [&](storage::Context& ctx) { return ctx.SaveSnapshot(dir); })));
          },
          py::arg("dir"))
      .def(
          "load_snapshot",
          [](ContextHandle& c, const std::string& dir) {
            return SnapshotToDict(
                Unwrap(OnContext(c, [&](storage::Context& ctx) { return ctx.LoadSnapshot(dir); })));
          },
          py::arg("dir"))
      .def_property_readonly("temp_dir", [](ContextHandle& c) { return c.get()->temp_dir(); })
      .def_property_readonly("closed", &ContextHandle::closed)
      .def("close", &ContextHandle::Close);
}

}  // namespace discomfort::pymodule
