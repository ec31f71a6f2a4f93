#include "bridge/module/graph_binding.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <pybind11/stl.h>

#include "bridge/module/status_translation.h"
#include "bridge/value_convert.h"
#include "engine/sweep.h"
#include "graph/api_prompt.h"
#include "graph/node_definitions.h"
#include "graph/ui_to_api.h"
#include "graph/workflow.h"
#include "graph/workflow_ops.h"

namespace py = pybind11;
using nlohmann::json;

namespace discomfort::pymodule {
namespace {

using DefsPtr = std::shared_ptr<const graph::NodeDefinitions>;

const graph::NodeDefinitions* DefsOrNull(const std::optional<DefsPtr>& defs) {
  return defs && *defs ? defs->get() : nullptr;
}

py::object PortsToPython(const graph::PortSet& ports) {
  return bridge::JsonToPython(ports.ToJson());
}

}  // namespace

void BindGraph(py::module_& m) {
  py::class_<graph::NodeDefinitions, std::shared_ptr<graph::NodeDefinitions>>(m, "NodeDefinitions")
      .def_static(
          "from_object_info",
          [](py::handle info) {
            return std::make_shared<graph::NodeDefinitions>(
                Unwrap(graph::NodeDefinitions::FromJson(ToJsonOrRaise(info, "object_info"))));
          },
          py::arg("object_info"))
      .def_static(
          "load_file",
          [](const std::string& path) {
            return std::make_shared<graph::NodeDefinitions>(
                Unwrap(graph::NodeDefinitions::LoadFile(path)));
          },
          py::arg("path"))
      .def("__len__", &graph::NodeDefinitions::size)
      .def("__contains__",
           [](const graph::NodeDefinitions& d, const std::string& c) { return d.Has(c); });

  // Sweep helpers: the CLI's grid syntax ("seed=1..8", "cfg=5,7.5") and an image folder's PNGs.
  m.def(
      "parse_grid_axis",
      [](const std::string& text) {
        engine::GridAxis axis = Unwrap(engine::ParseGridAxis(text));
        return py::make_tuple(axis.key, bridge::JsonToPython(json(axis.values)));
      },
      py::arg("text"));
  m.def(
      "list_images", [](const std::string& dir) { return Unwrap(engine::ListImages(dir)); },
      py::arg("dir"));

  // Workflow tools: UI or API format; `definitions` (from Engine.definitions()) where types matter.
  m.def(
      "detect_format",
      [](py::handle doc) {
        return std::string(
            graph::WorkflowFormatName(graph::DetectFormat(ToJsonOrRaise(doc, "a workflow"))));
      },
      py::arg("workflow"));
  m.def(
      "discover_ports",
      [](py::handle doc, std::optional<DefsPtr> defs, const std::string& name) {
        return PortsToPython(Unwrap(graph::DiscoverWorkflowPorts(ToJsonOrRaise(doc, "a workflow"),
                                                                 DefsOrNull(defs), name)));
      },
      py::arg("workflow"), py::arg("definitions") = py::none(), py::arg("name") = "");
  m.def(
      "to_api",
      [](py::handle doc, std::optional<DefsPtr> defs, const std::string& name) {
        graph::ConvertOptions options;
        options.source_name = name;
        return bridge::JsonToPython(Unwrap(
            graph::ToApiPrompt(ToJsonOrRaise(doc, "a workflow"), DefsOrNull(defs), options)));
      },
      py::arg("workflow"), py::arg("definitions") = py::none(), py::arg("name") = "");
  m.def(
      "stitch",
      [](const std::vector<py::object>& docs, bool delete_input_ports, bool delete_output_ports,
         std::vector<std::string> names, std::optional<DefsPtr> defs) {
        std::vector<json> parts;
        for (const auto& d : docs) parts.push_back(ToJsonOrRaise(d, "a workflow"));
        graph::StitchOptions options;
        options.delete_input_ports = delete_input_ports;
        options.delete_output_ports = delete_output_ports;
        auto r = Unwrap(graph::StitchWorkflows(parts, options, names, DefsOrNull(defs)));
        py::dict out;
        out["workflow"] = bridge::JsonToPython(r.workflow);
        out["ports"] = PortsToPython(r.ports);
        out["execution_order"] = r.execution_order;
        return out;
      },
      py::arg("workflows"), py::arg("delete_input_ports") = false,
      py::arg("delete_output_ports") = false, py::arg("names") = std::vector<std::string>{},
      py::arg("definitions") = py::none());
  m.def(
      "prune_to_output",
      [](py::handle doc, const std::string& uid, std::optional<DefsPtr> defs) {
        return bridge::JsonToPython(
            Unwrap(graph::PruneToOutput(ToJsonOrRaise(doc, "a workflow"), uid, DefsOrNull(defs))));
      },
      py::arg("workflow"), py::arg("unique_id"), py::arg("definitions") = py::none());
  m.def(
      "remove_reroutes",
      [](py::handle doc) {
        return bridge::JsonToPython(
            Unwrap(graph::RemoveReroutes(ToJsonOrRaise(doc, "a workflow"))));
      },
      py::arg("workflow"));
  m.def(
      "validate_workflow",
      [](py::handle doc, std::optional<DefsPtr> defs, const std::string& name) {
        py::list problems;
        for (const Status& st :
             graph::ValidateWorkflow(ToJsonOrRaise(doc, "a workflow"), DefsOrNull(defs), name)) {
          problems.append(StatusToDict(st));
        }
        return problems;
      },
      py::arg("workflow"), py::arg("definitions") = py::none(), py::arg("name") = "");
  m.def(
      "execution_order",
      [](py::handle doc) {
        json j = ToJsonOrRaise(doc, "a workflow");
        const graph::WorkflowFormat f = graph::DetectFormat(j);
        if (f == graph::WorkflowFormat::kApi) {
          if (j.contains("prompt") && j["prompt"].is_object()) j = j["prompt"];
          return Unwrap(graph::TopologicalOrderOfPrompt(j));
        }
        auto ui = Unwrap(graph::ParseUiWorkflow(j));
        return Unwrap(graph::TopologicalOrder(ui.root));
      },
      py::arg("workflow"));
  m.def(
      "pass_by_for_type",
      [](const std::string& type) { return std::string(graph::PassByForType(type)); },
      py::arg("type"));
}

}  // namespace discomfort::pymodule
