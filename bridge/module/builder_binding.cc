#include "bridge/module/builder_binding.h"

#include <memory>
#include <string>
#include <vector>

#include <pybind11/stl.h>

#include "bridge/module/status_translation.h"
#include "bridge/value_convert.h"
#include "graph/node_definitions.h"
#include "graph/workflow_builder.h"

namespace py = pybind11;

namespace discomfort::pymodule {
namespace {

// The builder borrows its definitions: the holder keeps them alive as long as the builder.
struct BuilderHolder {
  explicit BuilderHolder(std::shared_ptr<const graph::NodeDefinitions> d)
      : defs(std::move(d)), builder(*defs) {}
  std::shared_ptr<const graph::NodeDefinitions> defs;
  graph::WorkflowBuilder builder;
};

graph::OutputRef OutputFrom(const py::handle& output) {
  if (py::isinstance<py::int_>(output)) return graph::OutputRef(output.cast<int>());
  if (py::isinstance<py::str>(output)) return graph::OutputRef(output.cast<std::string>());
  throw py::type_error("an output is a slot index (int) or an output name (str)");
}

}  // namespace

void BindWorkflowBuilder(py::module_& m) {
  py::class_<BuilderHolder, std::shared_ptr<BuilderHolder>>(m, "WorkflowBuilder")
      .def(py::init([](std::shared_ptr<const graph::NodeDefinitions> defs) {
             if (!defs) throw py::value_error("a WorkflowBuilder needs node definitions");
             return std::make_shared<BuilderHolder>(std::move(defs));
           }),
           py::arg("definitions"))
      .def(
          "add_node",
          [](BuilderHolder& b, const std::string& class_type, const std::string& title) {
            return Unwrap(b.builder.AddNode(class_type, title)).id;
          },
          py::arg("class_type"), py::arg("title") = "")
      .def(
          "set",
          [](BuilderHolder& b, int64_t node, const std::string& input, py::handle value) {
            Check(
                b.builder.Set(graph::NodeRef{node}, input, ToJsonOrRaise(value, "a widget value")));
          },
          py::arg("node"), py::arg("input"), py::arg("value"))
      .def(
          "connect",
          [](BuilderHolder& b, int64_t from, py::handle output, int64_t to,
             const std::string& input) {
            Check(b.builder.Connect(graph::NodeRef{from}, OutputFrom(output), graph::NodeRef{to},
                                    input));
          },
          py::arg("from_node"), py::arg("output"), py::arg("to_node"), py::arg("input"))
      .def(
          "add_input_port",
          [](BuilderHolder& b, const std::string& uid, int64_t to, const std::string& input,
             const std::vector<std::string>& tags) {
            return Unwrap(b.builder.AddInputPort(uid, graph::NodeRef{to}, input, tags)).id;
          },
          py::arg("unique_id"), py::arg("to_node"), py::arg("input"),
          py::arg("tags") = std::vector<std::string>{})
      .def(
          "add_output_port",
          [](BuilderHolder& b, const std::string& uid, int64_t from, py::handle output,
             const std::vector<std::string>& tags) {
            return Unwrap(
                       b.builder.AddOutputPort(uid, graph::NodeRef{from}, OutputFrom(output), tags))
                .id;
          },
          py::arg("unique_id"), py::arg("from_node"), py::arg("output"),
          py::arg("tags") = std::vector<std::string>{})
      .def(
          "add_passthrough_port",
          [](BuilderHolder& b, const std::string& uid, int64_t from, py::handle output, int64_t to,
             const std::string& input, const std::vector<std::string>& tags) {
            return Unwrap(b.builder.AddPassthroughPort(uid, graph::NodeRef{from},
                                                       OutputFrom(output), graph::NodeRef{to},
                                                       input, tags))
                .id;
          },
          py::arg("unique_id"), py::arg("from_node"), py::arg("output"), py::arg("to_node"),
          py::arg("input"), py::arg("tags") = std::vector<std::string>{})
      .def("to_api",
           [](BuilderHolder& b) { return bridge::JsonToPython(Unwrap(b.builder.ToApiPrompt())); })
      .def("to_ui",
           [](BuilderHolder& b) { return bridge::JsonToPython(Unwrap(b.builder.ToUiWorkflow())); })
      .def("__len__", [](BuilderHolder& b) { return b.builder.size(); });
}

}  // namespace discomfort::pymodule
