#include "discomfort/workflow_builder.h"

#include "graph/node_definitions.h"
#include "graph/workflow_builder.h"
#include "sdk/internal.h"

namespace discomfort {

struct WorkflowBuilder::Impl {
  explicit Impl(std::shared_ptr<const graph::NodeDefinitions> d)
      : defs(std::move(d)), builder(*defs) {}
  std::shared_ptr<const graph::NodeDefinitions> defs;  // outlives the builder, which borrows it
  graph::WorkflowBuilder builder;
};

namespace {

graph::NodeRef Ref(NodeHandle node) { return graph::NodeRef{node.id}; }
NodeHandle Handle(graph::NodeRef ref) { return NodeHandle{ref.id}; }
graph::OutputRef Ref(const Output& output) {
  if (const int* slot = std::get_if<int>(&output.ref())) return graph::OutputRef(*slot);
  return graph::OutputRef(std::get<std::string>(output.ref()));
}
Result<NodeHandle> Handle(Result<graph::NodeRef> ref) {
  if (!ref.ok()) return ref.TakeStatus();
  return Handle(*ref);
}

}  // namespace

WorkflowBuilder BuilderAccess::Make(std::shared_ptr<const graph::NodeDefinitions> defs) {
  return WorkflowBuilder(std::make_unique<WorkflowBuilder::Impl>(std::move(defs)));
}

WorkflowBuilder::WorkflowBuilder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
WorkflowBuilder::~WorkflowBuilder() = default;
WorkflowBuilder::WorkflowBuilder(WorkflowBuilder&&) noexcept = default;
WorkflowBuilder& WorkflowBuilder::operator=(WorkflowBuilder&&) noexcept = default;

Result<NodeHandle> WorkflowBuilder::AddNode(const std::string& class_type,
                                            const std::string& title) {
  return Handle(impl_->builder.AddNode(class_type, title));
}

Status WorkflowBuilder::Set(NodeHandle node, const std::string& input,
                            const nlohmann::json& value) {
  return impl_->builder.Set(Ref(node), input, value);
}

Status WorkflowBuilder::Connect(NodeHandle from, const Output& output, NodeHandle to,
                                const std::string& input) {
  return impl_->builder.Connect(Ref(from), Ref(output), Ref(to), input);
}

Result<NodeHandle> WorkflowBuilder::AddInputPort(const std::string& unique_id, NodeHandle to,
                                                 const std::string& input,
                                                 const std::vector<std::string>& tags) {
  return Handle(impl_->builder.AddInputPort(unique_id, Ref(to), input, tags));
}

Result<NodeHandle> WorkflowBuilder::AddOutputPort(const std::string& unique_id, NodeHandle from,
                                                  const Output& output,
                                                  const std::vector<std::string>& tags) {
  return Handle(impl_->builder.AddOutputPort(unique_id, Ref(from), Ref(output), tags));
}

Result<NodeHandle> WorkflowBuilder::AddPassthroughPort(const std::string& unique_id,
                                                       NodeHandle from, const Output& output,
                                                       NodeHandle to, const std::string& input,
                                                       const std::vector<std::string>& tags) {
  return Handle(
      impl_->builder.AddPassthroughPort(unique_id, Ref(from), Ref(output), Ref(to), input, tags));
}

Result<nlohmann::json> WorkflowBuilder::ToApiPrompt() const { return impl_->builder.ToApiPrompt(); }
Result<nlohmann::json> WorkflowBuilder::ToUiWorkflow() const {
  return impl_->builder.ToUiWorkflow();
}

Result<Workflow> WorkflowBuilder::Build(const std::string& name) const {
  DISCOMFORT_ASSIGN_OR_RETURN(nlohmann::json prompt, impl_->builder.ToApiPrompt());
  return Workflow::Document(name, std::move(prompt));
}

}  // namespace discomfort
