// The UI-format workflow as the ComfyUI web UI saves it (schema 0.4 with array links, schema 1
// with object links), parsed into a typed model, and detection of UI vs API format.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "discomfort/status.h"

namespace discomfort::graph {

enum class WorkflowFormat {
  kUnknown,
  kUiV04,  // top-level `links` as arrays [id, origin, origin_slot, target, target_slot, type]
  kUiV1,   // `version: 1`, links as objects, `state`
  kApi,    // {node_id: {class_type, inputs}}; also the {"prompt": {...}} /prompt body
};
const char* WorkflowFormatName(WorkflowFormat format);
WorkflowFormat DetectFormat(const nlohmann::json& doc);

// Litegraph node modes (LGraphEventMode).
inline constexpr int kModeAlways = 0;
inline constexpr int kModeNever = 2;  // "muted"
inline constexpr int kModeBypass = 4;

// Node ids of a subgraph definition's boundary (litegraph SUBGRAPH_INPUT_ID / SUBGRAPH_OUTPUT_ID).
inline constexpr const char* kSubgraphInputId = "-10";
inline constexpr const char* kSubgraphOutputId = "-20";

// obj[key] when `obj` is an object holding `key`, else `fallback`: a reference, where
// json::value() would copy (a copy of `nodes` costs as much as parsing it).
inline const nlohmann::json& JsonMember(const nlohmann::json& obj, std::string_view key,
                                        const nlohmann::json& fallback) {
  if (!obj.is_object()) return fallback;
  auto it = obj.find(key);
  return it == obj.end() ? fallback : *it;
}
inline const nlohmann::json& JsonNull() {
  static const nlohmann::json kNull;
  return kNull;
}
inline const nlohmann::json& JsonEmptyObject() {
  static const nlohmann::json kObject = nlohmann::json::object();
  return kObject;
}
inline const nlohmann::json& JsonEmptyArray() {
  static const nlohmann::json kArray = nlohmann::json::array();
  return kArray;
}

struct UiLink {
  int64_t id = 0;
  std::string origin_id;  // node ids are kept as strings ("5", or "-10" for a subgraph input)
  int origin_slot = 0;
  std::string target_id;
  int target_slot = 0;
  std::string type;
};

struct UiInput {
  std::string name;
  std::string type;
  std::optional<int64_t> link;
  std::string widget_name;  // set when this socket belongs to a widget ("widget": {"name": ...})
};

struct UiOutput {
  std::string name;
  std::string type;
  std::vector<int64_t> links;
};

struct UiNode {
  std::string id;
  std::string type;
  std::optional<std::string> title;
  int mode = kModeAlways;
  std::vector<UiInput> inputs;
  std::vector<UiOutput> outputs;
  // The next three point into the parsed document (never null): a UiWorkflow borrows from the
  // JSON it was parsed from, which must outlive it. Copying them cost a third of the parse.
  const nlohmann::json* widgets_values = &JsonNull();  // array, object or null, as saved
  // Newest frontends also save {widget name: value}; when present it wins over positions.
  const nlohmann::json* widgets_values_named = &JsonNull();
  const nlohmann::json* properties = &JsonNull();  // the saved object, or null (JsonMember)
  std::string json_pointer;                        // where the node sits in the source document
  bool is_virtual = false;  // IsVirtualNodeType(type), decided once at parse time

  // Index of the saved input carrying `link_id`, or -1.
  int InputIndexOfLink(int64_t link_id) const;
  int InputIndexByName(const std::string& name) const;
};

// One side of a subgraph definition's boundary: input k of an instance is `inputs[k]`.
struct UiSubgraphSlot {
  std::string name;
  std::string type;
  std::vector<int64_t> link_ids;
};

// The root graph or one subgraph definition.
struct UiGraph {
  std::string id;    // subgraph definition id (uuid); empty for the root graph
  std::string name;  // subgraph name
  std::vector<UiNode> nodes;
  std::unordered_map<std::string, size_t> node_index;  // node id -> index in `nodes`
  std::map<int64_t, UiLink> links;
  std::vector<int64_t> link_order;      // link ids in the order of the saved `links` array
  std::vector<UiSubgraphSlot> inputs;   // subgraph definitions only
  std::vector<UiSubgraphSlot> outputs;  // subgraph definitions only
  std::string json_pointer;

  const UiNode* FindNode(const std::string& node_id) const;
  const UiLink* FindLink(int64_t link_id) const;
};

struct UiWorkflow {
  WorkflowFormat format = WorkflowFormat::kUiV04;
  std::string source;  // file name, for error locations
  UiGraph root;
  std::map<std::string, UiGraph> subgraphs;  // by definition id, nested definitions included
  // The parsed document when ParseUiWorkflow was handed a temporary; otherwise the caller's.
  std::shared_ptr<const nlohmann::json> owned_document;
  // extra.groupNodes (legacy group nodes), borrowed from the parsed document like the nodes'
  // values.
  const nlohmann::json* group_nodes = &JsonEmptyObject();

  bool IsSubgraphType(const std::string& type) const { return subgraphs.count(type) > 0; }
  // "workflow>NAME" / "workflow/NAME" with NAME in extra.groupNodes; returns NAME.
  std::optional<std::string> GroupNodeName(const std::string& type) const;
};

// Parses a UI-format workflow. The result borrows widget values, properties and group-node
// definitions from `doc` (no copies): keep `doc` alive, and unchanged, while the result is used.
// Node ids and link endpoints may be numbers or strings; slots may be
// numeric strings. Errors carry the JSON pointer of the offending element.
Result<UiWorkflow> ParseUiWorkflow(const nlohmann::json& doc, const std::string& source_name = {});
// A temporary document is moved into the result (`owned_document`), so nothing dangles.
Result<UiWorkflow> ParseUiWorkflow(nlohmann::json&& doc, const std::string& source_name = {});

// Parses JSON text; errors name `source` (a file name) and say where the text is malformed.
Result<nlohmann::json> ParseJsonText(const std::string& text, const std::string& source);
// Reads and parses a JSON file.
Result<nlohmann::json> LoadJsonFile(const std::string& path);

// Node types the frontend never sends to the server.
bool IsVirtualNodeType(const std::string& type);
inline constexpr const char* kRerouteType = "Reroute";
inline constexpr const char* kPrimitiveNodeType = "PrimitiveNode";
// KJNodes' frontend-only pair: a GetNode reads what is wired into the SetNode whose name
// (widgets_values[0]) is the same.
inline constexpr const char* kSetNodeType = "SetNode";
inline constexpr const char* kGetNodeType = "GetNode";

// Litegraph's LiteGraph.isValidConnection: "*", "" are generic; otherwise a case-insensitive match
// of any pair of comma-separated parts.
bool TypesCompatible(const std::string& a, const std::string& b);

// Node ids as strings; JSON numbers print without a fraction ("5", not "5.0").
std::optional<std::string> NodeIdToString(const nlohmann::json& id);

}  // namespace discomfort::graph
