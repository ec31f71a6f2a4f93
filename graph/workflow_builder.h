// Workflows built in code, checked against node definitions as they are built: every node type,
// input name, widget value and link is checked when it is added, and the result is either an API
// prompt or a UI workflow that the ComfyUI frontend opens (laid out left to right).
//
//   WorkflowBuilder b(defs);
//   auto ckpt = b.AddNode("CheckpointLoaderSimple");
//   auto sampler = b.AddNode("KSampler");
//   b.Set(*sampler, "steps", 20);
//   b.Connect(*ckpt, "MODEL", *sampler, "model");
//   b.AddOutputPort("image", *decode, 0);
//   auto prompt = b.ToApiPrompt();
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "discomfort/status.h"
#include "graph/node_definitions.h"

namespace discomfort::graph {

// A node of one WorkflowBuilder: its id in the built workflow (1, 2, ... in the order added).
struct NodeRef {
  int64_t id = 0;
  friend bool operator==(const NodeRef&, const NodeRef&) = default;
};

// An output of a node, by slot index (0-based) or by name ("MODEL", "LATENT", ...: the
// definition's output_name).
class OutputRef {
 public:
  OutputRef(int slot) : ref_(slot) {}                       // NOLINT(google-explicit-constructor)
  OutputRef(std::string name) : ref_(std::move(name)) {}    // NOLINT(google-explicit-constructor)
  OutputRef(const char* name) : ref_(std::string(name)) {}  // NOLINT(google-explicit-constructor)
  const std::variant<int, std::string>& ref() const { return ref_; }

 private:
  std::variant<int, std::string> ref_;
};

class WorkflowBuilder {
 public:
  // `defs` must outlive the builder.
  explicit WorkflowBuilder(const NodeDefinitions& defs) : defs_(defs) {}

  // Adds a node of `class_type`; an unknown class is kNotFound naming it (and the closest known
  // class when one is close). A non-empty `title` is the node's title in the UI and its
  // `_meta.title` in the prompt (else the definition's display name).
  Result<NodeRef> AddNode(const std::string& class_type, const std::string& title = "");

  // Sets widget `input` of `node`. Unknown input: kNotFound listing the node's inputs. A socket
  // input (MODEL, CLIP, forceInput, ...) cannot hold a value: kInvalidArgument (connect it).
  // Wrong JSON kind for INT / FLOAT / BOOLEAN / STRING / COMBO: kTypeMismatch. Outside the
  // definition's min / max, or not one of a combo's values: kInvalidArgument naming node, input,
  // value and the allowed range. A null value returns the widget to its default. Widgets never
  // set take the definition's default. (A combo whose definition lists no values, like a model
  // loader's where no model files are installed, accepts any string: ComfyUI checks it when it
  // runs.) The widgets a V3 DynamicCombo's chosen option adds are set by their dotted names
  // ("<combo>.<input>").
  Status Set(NodeRef node, const std::string& input, const nlohmann::json& value);

  // Links output `output` of `from` to input `input` of `to`, replacing what fed that input.
  // The types must be compatible as the frontend decides (TypesCompatible): else kTypeMismatch
  // naming both ends. Unknown node, output or input: kNotFound listing what exists. A link that
  // closes a loop: kCycle. A widget input may be linked; its value stays in the UI workflow,
  // as the frontend keeps it, and the link is what the prompt carries.
  Status Connect(NodeRef from, const OutputRef& output, NodeRef to, const std::string& input);

  // DiscomfortPorts (kPortClass; widgets `unique_id` and optional `tags`, joined with ", "),
  // wired as the README's port table says. INPUT: the port's output_data feeds `input` of `to`
  // (nothing into its input_data). OUTPUT: `output` of `from` feeds the port's input_data (its
  // output_data unused). PASSTHRU: both. A blank unique_id or a tag holding a comma is
  // kInvalidArgument; a unique_id already on another INPUT (for AddInputPort) or OUTPUT (for
  // AddOutputPort) port is kAlreadyExists naming both nodes. On any error no node is added.
  Result<NodeRef> AddInputPort(const std::string& unique_id, NodeRef to, const std::string& input,
                               const std::vector<std::string>& tags = {});
  Result<NodeRef> AddOutputPort(const std::string& unique_id, NodeRef from, const OutputRef& output,
                                const std::vector<std::string>& tags = {});
  Result<NodeRef> AddPassthroughPort(const std::string& unique_id, NodeRef from,
                                     const OutputRef& output, NodeRef to, const std::string& input,
                                     const std::vector<std::string>& tags = {});

  // The API prompt {id: {inputs, class_type, _meta: {title}}}: every widget with its value (set
  // or default), every link. Values are sent as set: the queue-time text rules the frontend
  // applies to a UI workflow (dynamic prompts, %date% templating) are not applied. A required
  // input left unset with no default, or a required socket left unlinked, is kValidation naming
  // the node and the input; two INPUT (or two OUTPUT) ports with one unique_id, kAlreadyExists.
  Result<nlohmann::json> ToApiPrompt() const;

  // A UI workflow (schema 0.4) as the frontend saves one: nodes with their sockets and widget
  // sockets, positional widgets_values (control_after_generate slots "fixed"), links, laid out
  // left to right by depth (a node's column is one past the deepest node it reads from).
  // Incomplete workflows convert too: the UI is where they can be finished.
  Result<nlohmann::json> ToUiWorkflow() const;

  size_t size() const { return nodes_.size(); }

 private:
  struct Link {
    int64_t id = 0;
    int64_t from = 0;
    int from_slot = 0;
    std::string type;  // the more specific of the output's and the input's types
  };
  struct Node {
    int64_t id = 0;
    const NodeDef* def = nullptr;
    std::string title;
    std::map<std::string, nlohmann::json> values;  // widget name -> value set
    std::map<std::string, Link> links;             // input name -> what feeds it
  };
  // One widget in the frontend's creation order with its current value.
  struct CurrentWidget {
    const WidgetSpec* spec = nullptr;
    const nlohmann::json* value = nullptr;  // the value set, else the default
  };

  Result<const Node*> Find(NodeRef ref) const;
  Node* Mutable(NodeRef ref);
  std::vector<CurrentWidget> CurrentWidgets(const Node& node) const;
  Result<int> OutputSlot(const Node& node, const OutputRef& output) const;
  Status UnknownInput(const Node& node, const std::string& input) const;
  Status CheckValue(const Node& node, const std::string& input, const std::string& type,
                    const nlohmann::json& options, const nlohmann::json& combo_values,
                    const nlohmann::json& value) const;
  bool Reaches(int64_t from, int64_t to) const;
  Result<NodeRef> AddPort(const std::string& unique_id, const std::vector<std::string>& tags,
                          const NodeRef* from, const OutputRef* output, const NodeRef* to,
                          const std::string* input);
  Status CheckComplete() const;
  // Node ids so that every node follows the nodes it reads from (ties: lower id first).
  std::vector<int64_t> ExecutionOrder() const;
  nlohmann::json UiNodeJson(const Node& node, int order) const;

  const NodeDefinitions& defs_;
  std::vector<Node> nodes_;  // nodes_[i].id == i + 1
  int64_t last_link_id_ = 0;
};

}  // namespace discomfort::graph
