// Workflows built in code, checked against the node definitions of the running ComfyUI at every
// call: an unknown class, an unknown input, a value of the wrong type or out of range, a link
// between incompatible types is an error at the call that makes it, not at run time. The result
// runs like a file workflow and saves as an API prompt or as a UI workflow the web UI opens.
//
//   auto b = engine->NewWorkflow().value();
//   auto blur = b.AddNode("ImageBlur").value();
//   (void)b.Set(blur, "blur_radius", 3);
//   (void)b.AddInputPort("frame", blur, "image");
//   (void)b.AddOutputPort("frame", blur, "IMAGE");
//   run.workflows = {b.Build("blur.json").value()};
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "discomfort/run.h"
#include "discomfort/status.h"

namespace discomfort {

// A node of one builder (its id in the built workflow: 1, 2, ... in the order added).
struct NodeHandle {
  int64_t id = 0;
};

// A node's output by slot (0-based) or by name ("MODEL", "IMAGE": the definition's output names).
class Output {
 public:
  Output(int slot) : ref_(slot) {}                       // NOLINT(google-explicit-constructor)
  Output(std::string name) : ref_(std::move(name)) {}    // NOLINT(google-explicit-constructor)
  Output(const char* name) : ref_(std::string(name)) {}  // NOLINT(google-explicit-constructor)
  const std::variant<int, std::string>& ref() const { return ref_; }

 private:
  std::variant<int, std::string> ref_;
};

class WorkflowBuilder {
 public:
  ~WorkflowBuilder();
  WorkflowBuilder(WorkflowBuilder&&) noexcept;
  WorkflowBuilder& operator=(WorkflowBuilder&&) noexcept;

  // kNotFound for an unknown class (naming the closest known one).
  Result<NodeHandle> AddNode(const std::string& class_type, const std::string& title = "");
  // A widget's value: kNotFound (unknown input), kTypeMismatch (wrong kind), kInvalidArgument
  // (out of range, not one of the combo's values, or a socket that must be connected instead).
  Status Set(NodeHandle node, const std::string& input, const nlohmann::json& value);
  // kTypeMismatch for incompatible types, kNotFound for an unknown output or input, kCycle.
  Status Connect(NodeHandle from, const Output& output, NodeHandle to, const std::string& input);
  // DiscomfortPorts: INPUT feeds `input` of `to`; OUTPUT is fed by `output` of `from`.
  Result<NodeHandle> AddInputPort(const std::string& unique_id, NodeHandle to,
                                  const std::string& input,
                                  const std::vector<std::string>& tags = {});
  Result<NodeHandle> AddOutputPort(const std::string& unique_id, NodeHandle from,
                                   const Output& output, const std::vector<std::string>& tags = {});
  Result<NodeHandle> AddPassthroughPort(const std::string& unique_id, NodeHandle from,
                                        const Output& output, NodeHandle to,
                                        const std::string& input,
                                        const std::vector<std::string>& tags = {});

  // kValidation naming the node and input when a required one is unset.
  Result<nlohmann::json> ToApiPrompt() const;
  // A UI workflow (the web UI's schema 0.4), laid out left to right.
  Result<nlohmann::json> ToUiWorkflow() const;
  // The API prompt as a Workflow for RunOptions / SweepOptions.
  Result<Workflow> Build(const std::string& name = "built.json") const;

  struct Impl;

 private:
  friend struct BuilderAccess;
  explicit WorkflowBuilder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace discomfort
