#include "graph/workflow.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>

#include "graph/parallel.h"

namespace discomfort::graph {
namespace {

using nlohmann::json;
using namespace std::string_view_literals;

Status ParseError(const std::string& pointer, std::string message, const std::string& source,
                  const std::string& node_id = {}) {
  ErrorLocation where;
  where.workflow = source;
  where.json_pointer = pointer;
  where.node_id = node_id;
  return Status(ErrorCode::kParse, std::move(message), std::move(where));
}

// Integers may be saved as numbers, numeric strings, or (rarely) floats with no fraction.
std::optional<int64_t> AsInteger(const json& v) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::isfinite(d) && std::floor(d) == d) return static_cast<int64_t>(d);
    return std::nullopt;
  }
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    if (s.empty()) return std::nullopt;
    size_t pos = 0;
    try {
      int64_t out = std::stoll(s, &pos);
      if (pos == s.size()) return out;
    } catch (...) {
    }
  }
  return std::nullopt;
}

std::string TypeString(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  if (v.is_number_integer() && v.get<int64_t>() == 0) return "*";  // litegraph's "any" (0)
  return v.dump();
}

Result<UiLink> ParseLink(const json& j, const std::string& pointer, const std::string& source) {
  UiLink link;
  // References into `j`: a 1,000-node workflow has thousands of links, and copying each field
  // showed up in profiles.
  const json* id = &JsonNull();
  const json* origin = &JsonNull();
  const json* origin_slot = &JsonNull();
  const json* target = &JsonNull();
  const json* target_slot = &JsonNull();
  const json* type = &JsonNull();
  if (j.is_array()) {
    if (j.size() < 5) {
      return ParseError(pointer,
                        "a link must be [id, origin_id, origin_slot, target_id, target_slot, type]",
                        source);
    }
    id = &j[0];
    origin = &j[1];
    origin_slot = &j[2];
    target = &j[3];
    target_slot = &j[4];
    if (j.size() > 5) type = &j[5];
  } else if (j.is_object()) {
    id = &JsonMember(j, "id", JsonNull());
    origin = &JsonMember(j, "origin_id", JsonNull());
    origin_slot = &JsonMember(j, "origin_slot", JsonNull());
    target = &JsonMember(j, "target_id", JsonNull());
    target_slot = &JsonMember(j, "target_slot", JsonNull());
    type = &JsonMember(j, "type", JsonNull());
  } else {
    return ParseError(pointer, "a link must be an array or an object", source);
  }
  auto link_id = AsInteger(*id);
  if (!link_id) return ParseError(pointer, "link id must be an integer, got " + id->dump(), source);
  link.id = *link_id;
  auto origin_id = NodeIdToString(*origin);
  auto target_id = NodeIdToString(*target);
  if (!origin_id || !target_id) {
    return ParseError(
        pointer, "link " + std::to_string(link.id) + " must name its origin and target node ids",
        source);
  }
  link.origin_id = std::move(*origin_id);
  link.target_id = std::move(*target_id);
  auto os = AsInteger(*origin_slot);
  auto ts = AsInteger(*target_slot);
  if (!os || !ts) {
    return ParseError(pointer, "link " + std::to_string(link.id) + " has a non-integer slot",
                      source);
  }
  link.origin_slot = static_cast<int>(*os);
  link.target_slot = static_cast<int>(*ts);
  link.type = TypeString(*type);
  return link;
}

std::string NameString(const json& obj) {
  const json& name = JsonMember(obj, "name", JsonNull());
  return name.is_string() ? name.get<std::string>() : std::string();
}

// The JSON pointer strings are built only when an error needs them.
std::string ItemPointer(const std::string& pointer, const char* member, size_t i) {
  const std::string index = std::to_string(i);
  std::string out;
  out.reserve(pointer.size() + std::strlen(member) + index.size() + 2);
  out.append(pointer).append(1, '/').append(member).append(1, '/').append(index);
  return out;
}

// Fills `node` in place (the caller's slot in UiGraph::nodes: no moves of a finished node).
Status ParseNode(const json& j, std::string pointer, const std::string& source, UiNode& node) {
  if (!j.is_object()) return ParseError(pointer, "a node must be an object", source);
  // One pass over the members instead of a lookup per field: each lookup in nlohmann's std::map
  // costs several string compares, and this runs for every node of every workflow.
  const json* id_json = &JsonNull();
  const json* type = &JsonNull();
  const json* title = nullptr;
  const json* mode = nullptr;
  const json* inputs = nullptr;
  const json* outputs = nullptr;
  const json* widgets_values = nullptr;
  const json* widgets_values_named = nullptr;
  const json* properties = nullptr;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    switch (key.size()) {  // one string compare per member
      case 2:
        if (key == "id"sv) id_json = &*it;
        break;
      case 4:
        if (key == "type"sv) type = &*it;
        if (key == "mode"sv) mode = &*it;
        break;
      case 5:
        if (key == "title"sv) title = &*it;
        break;
      case 6:
        if (key == "inputs"sv) inputs = &*it;
        break;
      case 7:
        if (key == "outputs"sv) outputs = &*it;
        break;
      case 10:
        if (key == "properties"sv) properties = &*it;
        break;
      case 14:
        if (key == "widgets_values"sv) widgets_values = &*it;
        break;
      case 20:
        if (key == "widgets_values_named"sv) widgets_values_named = &*it;
        break;
      default:
        break;
    }
  }
  auto id = NodeIdToString(*id_json);
  if (!id) return ParseError(pointer + "/id", "node has no id (number or string)", source);
  node.id = std::move(*id);
  if (!type->is_string() || type->get_ref<const std::string&>().empty()) {
    return ParseError(pointer + "/type", "node " + node.id + " has no string 'type'", source,
                      node.id);
  }
  node.type = type->get<std::string>();
  node.is_virtual = IsVirtualNodeType(node.type);
  if (title != nullptr && title->is_string()) node.title = title->get<std::string>();
  if (mode != nullptr) {
    auto m = AsInteger(*mode);
    if (!m) return ParseError(pointer + "/mode", "node mode must be an integer", source, node.id);
    node.mode = static_cast<int>(*m);
  }
  if (inputs != nullptr && !inputs->is_null()) {
    if (!inputs->is_array()) {
      return ParseError(pointer + "/inputs", "'inputs' must be an array", source, node.id);
    }
    node.inputs.reserve(inputs->size());
    for (size_t i = 0; i < inputs->size(); ++i) {
      const json& in = (*inputs)[i];
      if (!in.is_object()) {
        return ParseError(ItemPointer(pointer, "inputs", i), "an input must be an object", source,
                          node.id);
      }
      UiInput& input = node.inputs.emplace_back();
      for (auto it = in.begin(); it != in.end(); ++it) {
        // string_view compares the length first; std::string == const char* runs strlen.
        const std::string_view key = it.key();
        if (key == "name"sv) {
          if (it->is_string()) input.name = it->get_ref<const std::string&>();
        } else if (key == "type"sv) {
          input.type = TypeString(*it);
        } else if (key == "link"sv) {
          if (it->is_null()) continue;
          auto link = AsInteger(*it);
          if (!link) {
            return ParseError(ItemPointer(pointer, "inputs", i) + "/link",
                              "input link must be a link id or null", source, node.id);
          }
          input.link = *link;
        } else if (key == "widget"sv) {
          if (it->is_object()) input.widget_name = NameString(*it);
        }
      }
    }
  }
  if (outputs != nullptr && !outputs->is_null()) {
    if (!outputs->is_array()) {
      return ParseError(pointer + "/outputs", "'outputs' must be an array", source, node.id);
    }
    node.outputs.reserve(outputs->size());
    for (size_t i = 0; i < outputs->size(); ++i) {
      const json& out = (*outputs)[i];
      if (!out.is_object()) {
        return ParseError(ItemPointer(pointer, "outputs", i), "an output must be an object", source,
                          node.id);
      }
      UiOutput& output = node.outputs.emplace_back();
      for (auto it = out.begin(); it != out.end(); ++it) {
        const std::string_view key = it.key();
        if (key == "name"sv) {
          if (it->is_string()) output.name = it->get_ref<const std::string&>();
        } else if (key == "type"sv) {
          output.type = TypeString(*it);
        } else if (key == "links"sv) {
          if (!it->is_array()) continue;
          output.links.reserve(it->size());
          for (const json& l : *it) {
            if (auto link_id = AsInteger(l)) output.links.push_back(*link_id);
          }
        }
      }
    }
  }
  if (widgets_values != nullptr) node.widgets_values = widgets_values;
  if (widgets_values_named != nullptr && widgets_values_named->is_object()) {
    node.widgets_values_named = widgets_values_named;
  }
  if (properties != nullptr && properties->is_object()) node.properties = properties;
  node.json_pointer = std::move(pointer);
  return Status::Ok();
}

Result<std::vector<UiSubgraphSlot>> ParseBoundary(const json& arr, const std::string& pointer,
                                                  const std::string& source) {
  std::vector<UiSubgraphSlot> slots;
  if (arr.is_null()) return slots;
  if (!arr.is_array()) return ParseError(pointer, "must be an array of slots", source);
  for (size_t i = 0; i < arr.size(); ++i) {
    const json& s = arr[i];
    if (!s.is_object()) {
      return ParseError(pointer + "/" + std::to_string(i), "a slot must be an object", source);
    }
    UiSubgraphSlot slot;
    slot.name = s.value("name", json("")).is_string() ? s.value("name", std::string()) : "";
    slot.type = TypeString(s.value("type", json()));
    if (s.contains("linkIds") && s["linkIds"].is_array()) {
      for (const json& l : s["linkIds"]) {
        if (auto id = AsInteger(l)) slot.link_ids.push_back(*id);
      }
    }
    slots.push_back(std::move(slot));
  }
  return slots;
}

Status ParseGraph(const json& j, const std::string& pointer, const std::string& source,
                  UiGraph* graph) {
  graph->json_pointer = pointer;
  const json& nodes = JsonMember(j, "nodes", JsonNull());
  if (!nodes.is_array()) {
    return ParseError(pointer + "/nodes", "a UI workflow needs a 'nodes' array", source);
  }
  const json& links = JsonMember(j, "links", JsonEmptyArray());
  if (!links.is_array() && !links.is_null()) {
    return ParseError(pointer + "/links", "'links' must be an array", source);
  }
  // Nodes and links parse independently (in parallel for large graphs), and the node index is
  // built while the links are read. Errors come out as a serial parse reports them: nodes first,
  // each list in document order.
  auto parse_nodes = [&]() -> Status {
    graph->nodes.resize(nodes.size());
    size_t failed_at = 0;
    Status nodes_status = ForEachIndex(
        nodes.size(),
        [&](size_t i) {
          return ParseNode(nodes[i], ItemPointer(pointer, "nodes", i), source, graph->nodes[i]);
        },
        &failed_at);
    graph->node_index.reserve(nodes.size());
    for (size_t i = 0; i < failed_at; ++i) {  // a duplicate before the failing node comes first
      const UiNode& node = graph->nodes[i];
      if (!graph->node_index.emplace(node.id, i).second) {
        return ParseError(ItemPointer(pointer, "nodes", i),
                          "duplicate node id " + node.id + " (ids must be unique in a graph)",
                          source, node.id);
      }
    }
    return nodes_status;
  };
  auto parse_links = [&]() -> Status {
    if (!links.is_array()) return Status::Ok();
    std::vector<std::optional<UiLink>> parsed_links(links.size());
    DISCOMFORT_RETURN_IF_ERROR(ForEachIndex(links.size(), [&](size_t i) {
      if (links[i].is_null()) return Status::Ok();  // litegraph may leave holes
      auto parsed = ParseLink(links[i], {}, source);
      if (!parsed.ok()) {
        Status st = parsed.TakeStatus();
        st.where().json_pointer = ItemPointer(pointer, "links", i);
        return st;
      }
      parsed_links[i] = std::move(parsed).value();
      return Status::Ok();
    }));
    graph->link_order.reserve(links.size());
    for (std::optional<UiLink>& link : parsed_links) {
      if (!link) continue;
      const int64_t id = link->id;
      if (graph->links.emplace(id, std::move(*link)).second) graph->link_order.push_back(id);
    }
    return Status::Ok();
  };
  const bool large = nodes.size() + links.size() >= kParallelMinItems;
  return BothJobs(large, parse_nodes, parse_links);
}

Status ParseSubgraphDefinitions(const json& definitions, const std::string& pointer,
                                const std::string& source, UiWorkflow* wf) {
  if (!definitions.is_object()) return Status::Ok();
  const json& subgraphs = JsonMember(definitions, "subgraphs", JsonEmptyArray());
  if (!subgraphs.is_array()) {
    return ParseError(pointer + "/subgraphs", "'subgraphs' must be an array", source);
  }
  for (size_t i = 0; i < subgraphs.size(); ++i) {
    const json& def = subgraphs[i];
    const std::string def_ptr = pointer + "/subgraphs/" + std::to_string(i);
    if (!def.is_object() || !def.contains("id") || !def["id"].is_string()) {
      return ParseError(def_ptr, "a subgraph definition needs a string 'id'", source);
    }
    UiGraph graph;
    graph.id = def["id"].get<std::string>();
    graph.name = def.value("name", json("")).is_string() ? def.value("name", std::string()) : "";
    DISCOMFORT_RETURN_IF_ERROR(ParseGraph(def, def_ptr, source, &graph));
    DISCOMFORT_ASSIGN_OR_RETURN(
        graph.inputs, ParseBoundary(def.value("inputs", json()), def_ptr + "/inputs", source));
    DISCOMFORT_ASSIGN_OR_RETURN(
        graph.outputs, ParseBoundary(def.value("outputs", json()), def_ptr + "/outputs", source));
    if (def.contains("definitions")) {
      DISCOMFORT_RETURN_IF_ERROR(
          ParseSubgraphDefinitions(def["definitions"], def_ptr + "/definitions", source, wf));
    }
    wf->subgraphs.emplace(graph.id, std::move(graph));  // first definition of an id wins
  }
  return Status::Ok();
}

bool IsApiNode(const json& node) {
  return JsonMember(node, "class_type", JsonNull()).is_string();  // one lookup
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::vector<std::string> SplitComma(const std::string& s) {
  std::vector<std::string> parts;
  std::stringstream ss(s);
  std::string part;
  while (std::getline(ss, part, ',')) parts.push_back(Lower(part));
  return parts;
}

}  // namespace

const char* WorkflowFormatName(WorkflowFormat format) {
  switch (format) {
    case WorkflowFormat::kUnknown:
      return "unknown";
    case WorkflowFormat::kUiV04:
      return "ui-0.4";
    case WorkflowFormat::kUiV1:
      return "ui-1";
    case WorkflowFormat::kApi:
      return "api";
  }
  return "unknown";
}

WorkflowFormat DetectFormat(const json& doc) {
  if (!doc.is_object()) return WorkflowFormat::kUnknown;
  if (doc.contains("nodes") && doc["nodes"].is_array()) {
    const json& version = JsonMember(doc, "version", JsonNull());
    if (version.is_number() && version.get<double>() >= 1.0) return WorkflowFormat::kUiV1;
    const json& links = JsonMember(doc, "links", JsonNull());
    if (links.is_array() && !links.empty() && links[0].is_object()) return WorkflowFormat::kUiV1;
    return WorkflowFormat::kUiV04;
  }
  if (doc.contains("prompt") && doc["prompt"].is_object()) return DetectFormat(doc["prompt"]);
  if (doc.empty()) return WorkflowFormat::kUnknown;
  for (const auto& [id, node] : doc.items()) {
    if (!IsApiNode(node)) return WorkflowFormat::kUnknown;
  }
  return WorkflowFormat::kApi;
}

int UiNode::InputIndexOfLink(int64_t link_id) const {
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].link && *inputs[i].link == link_id) return static_cast<int>(i);
  }
  return -1;
}

int UiNode::InputIndexByName(const std::string& name) const {
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

const UiNode* UiGraph::FindNode(const std::string& node_id) const {
  auto it = node_index.find(node_id);
  return it == node_index.end() ? nullptr : &nodes[it->second];
}

const UiLink* UiGraph::FindLink(int64_t link_id) const {
  auto it = links.find(link_id);
  return it == links.end() ? nullptr : &it->second;
}

std::optional<std::string> UiWorkflow::GroupNodeName(const std::string& type) const {
  // Asked for every node: no allocation unless the type names a group.
  constexpr std::string_view kPrefix = "workflow";  // then '>' or '/'
  if (group_nodes->empty() || type.size() <= kPrefix.size() + 1 ||
      std::string_view(type).substr(0, kPrefix.size()) != kPrefix) {
    return std::nullopt;
  }
  const char separator = type[kPrefix.size()];
  if (separator != '>' && separator != '/') return std::nullopt;
  std::string name = type.substr(kPrefix.size() + 1);
  if (group_nodes->contains(name)) return name;
  return std::nullopt;
}

Result<UiWorkflow> ParseUiWorkflow(const json& doc, const std::string& source_name) {
  UiWorkflow wf;
  wf.source = source_name;
  wf.format = DetectFormat(doc);
  if (wf.format != WorkflowFormat::kUiV04 && wf.format != WorkflowFormat::kUiV1) {
    return ParseError("",
                      std::string("expected a UI-format workflow (an object with a 'nodes' "
                                  "array), got ") +
                          WorkflowFormatName(wf.format) + " format",
                      source_name);
  }
  DISCOMFORT_RETURN_IF_ERROR(ParseGraph(doc, "", source_name, &wf.root));
  if (doc.contains("definitions")) {
    DISCOMFORT_RETURN_IF_ERROR(
        ParseSubgraphDefinitions(doc["definitions"], "/definitions", source_name, &wf));
  }
  const json& extra = JsonMember(doc, "extra", JsonEmptyObject());
  const json& group_nodes = JsonMember(extra, "groupNodes", JsonNull());
  if (group_nodes.is_object()) wf.group_nodes = &group_nodes;
  return wf;
}

Result<UiWorkflow> ParseUiWorkflow(json&& doc, const std::string& source_name) {
  auto owned = std::make_shared<const json>(std::move(doc));
  DISCOMFORT_ASSIGN_OR_RETURN(UiWorkflow wf, ParseUiWorkflow(*owned, source_name));
  wf.owned_document = std::move(owned);
  return wf;
}

Result<json> ParseJsonText(const std::string& text, const std::string& source) {
  ErrorLocation where;
  where.workflow = source;
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    try {
      [[maybe_unused]] json again = json::parse(text);
    } catch (const json::exception& e) {  // parse_error, or out_of_range for 1e400
      return Status(ErrorCode::kParse, std::string("malformed JSON: ") + e.what(), where);
    }
    return Status(ErrorCode::kParse, "malformed JSON", where);
  }
  return doc;
}

Result<json> LoadJsonFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  ErrorLocation where;
  where.workflow = path;
  if (!in) return Status(ErrorCode::kIO, "cannot open file for reading", where);
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return Status(ErrorCode::kIO, "read failed", where);
  return ParseJsonText(buffer.str(), path);
}

bool IsVirtualNodeType(const std::string& type) {
  const std::string_view t = type;
  return t == kRerouteType || t == kPrimitiveNodeType || t == "Note"sv || t == "MarkdownNote"sv ||
         t == kSetNodeType || t == kGetNodeType;
}

bool TypesCompatible(const std::string& a, const std::string& b) {
  if (a.empty() || b.empty() || a == "*"sv || b == "*"sv) return true;
  if (a == b) return true;
  const std::string la = Lower(a), lb = Lower(b);
  if (la == lb) return true;
  if (la.find(',') == std::string::npos && lb.find(',') == std::string::npos) return false;
  for (const std::string& pa : SplitComma(la)) {
    for (const std::string& pb : SplitComma(lb)) {
      if (pa == pb) return true;
    }
  }
  return false;
}

std::optional<std::string> NodeIdToString(const json& id) {
  if (id.is_string()) {
    if (id.get<std::string>().empty()) return std::nullopt;
    return id.get<std::string>();
  }
  if (id.is_number_integer()) return std::to_string(id.get<int64_t>());
  if (id.is_number_float()) {
    double d = id.get<double>();
    if (std::isfinite(d) && std::floor(d) == d) return std::to_string(static_cast<int64_t>(d));
  }
  return std::nullopt;
}

}  // namespace discomfort::graph
