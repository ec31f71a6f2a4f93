#include "graph/api_prompt.h"

#include <set>
#include <string_view>

#include "graph/workflow.h"  // JsonMember

namespace discomfort::graph {
namespace {

using nlohmann::json;

Status NodeError(ErrorCode code, const std::string& node_id, const std::string& class_type,
                 std::string message, std::string input = {}) {
  ErrorLocation where;
  where.node_id = node_id;
  where.class_type = class_type;
  where.input_name = std::move(input);
  where.json_pointer =
      "/" + node_id + (where.input_name.empty() ? "" : "/inputs/" + where.input_name);
  return Status(code, std::move(message), std::move(where));
}

std::string PortUniqueId(const json& node) {
  const json& inputs = JsonMember(node, "inputs", JsonEmptyObject());  // inputs are optional
  auto it = inputs.find("unique_id");
  if (it == inputs.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

std::vector<std::string> PortTags(const json& node) {
  const json& inputs = JsonMember(node, "inputs", JsonEmptyObject());  // inputs are optional
  auto it = inputs.find("tags");
  if (it == inputs.end() || !it->is_string()) return {};
  return SplitPortTags(it->get_ref<const std::string&>());
}

// The ASCII whitespace Python's str.strip() removes, as the Python nodes strip port names.
constexpr std::string_view kPortTextSpace = " \t\n\v\f\r";

std::string_view TrimPortText(std::string_view text) {
  const size_t first = text.find_first_not_of(kPortTextSpace);
  if (first == std::string_view::npos) return {};
  const size_t last = text.find_last_not_of(kPortTextSpace);
  return text.substr(first, last - first + 1);
}

// Type name of an input socket in an /object_info entry; a combo's option list reads as COMBO.
std::string InputTypeFromInfo(const json* object_info, const std::string& class_type,
                              const std::string& input_name) {
  if (object_info == nullptr) return "*";
  auto cls = object_info->find(class_type);
  if (cls == object_info->end() || !cls->contains("input")) return "*";
  for (const char* group : {"required", "optional"}) {
    const json& section = (*cls)["input"].value(group, json::object());
    auto spec = section.find(input_name);
    if (spec == section.end() || !spec->is_array() || spec->empty()) continue;
    const json& type = (*spec)[0];
    if (type.is_string()) return type.get<std::string>();
    if (type.is_array()) return "COMBO";
  }
  return "*";
}

std::string OutputTypeFromInfo(const json* object_info, const std::string& class_type, int slot) {
  if (object_info == nullptr) return "*";
  auto cls = object_info->find(class_type);
  if (cls == object_info->end()) return "*";
  const json& outputs = cls->value("output", json::array());
  if (slot < 0 || slot >= static_cast<int>(outputs.size())) return "*";
  const json& type = outputs[slot];
  if (type.is_string()) return type.get<std::string>();
  if (type.is_array()) return "COMBO";
  return "*";
}

bool IsPortNode(const json& node) {
  const json& cls = JsonMember(node, "class_type", JsonNull());
  return cls.is_string() && cls.get_ref<const std::string&>() == kPortClass;
}

}  // namespace

std::vector<std::string> SplitPortTags(std::string_view text) {
  std::vector<std::string> tags;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    const std::string_view tag = TrimPortText(text.substr(start, comma - start));
    if (!tag.empty()) tags.emplace_back(tag);
    start = comma + 1;
  }
  return tags;
}

bool IsUsablePortUniqueId(std::string_view unique_id) { return !TrimPortText(unique_id).empty(); }

bool IsLink(const json& value) {
  return value.is_array() && value.size() == 2 && value[0].is_string() &&
         value[1].is_number_integer();
}

std::optional<LinkRef> AsLink(const json& value) {
  if (!IsLink(value)) return std::nullopt;
  return LinkRef{value[0].get<std::string>(), value[1].get<int>()};
}

std::optional<LinkView> AsLinkView(const json& value) {
  if (!IsLink(value)) return std::nullopt;
  return LinkView{&value[0].get_ref<const std::string&>(), value[1].get<int>()};
}

json MakeLink(LinkRef link) {
  // Built item by item: nlohmann's initializer-list constructor costs several times as much,
  // and the converter makes one of these per link.
  json out(json::value_t::array);
  auto& items = out.get_ref<json::array_t&>();
  items.reserve(2);
  items.emplace_back(std::move(link.node_id));
  items.emplace_back(link.slot);
  return out;
}

const char* PortModeName(PortMode mode) {
  switch (mode) {
    case PortMode::kInput:
      return "INPUT";
    case PortMode::kOutput:
      return "OUTPUT";
    case PortMode::kPassthru:
      return "PASSTHRU";
    case PortMode::kUnconnected:
      return "UNCONNECTED";
  }
  return "?";
}

Status ValidateApiPrompt(const json& prompt) {
  if (!prompt.is_object()) {
    return Status(ErrorCode::kParse, "an API prompt must be a JSON object of nodes keyed by id");
  }
  if (prompt.empty()) return Status(ErrorCode::kParse, "the prompt has no nodes");
  for (const auto& [id, node] : prompt.items()) {
    if (!node.is_object()) {
      return NodeError(ErrorCode::kParse, id, "",
                       "node must be an object with class_type and inputs");
    }
    auto cls = node.find("class_type");
    if (cls == node.end() || !cls->is_string() || cls->get<std::string>().empty()) {
      return NodeError(ErrorCode::kParse, id, "", "node has no string 'class_type'");
    }
    const std::string& class_type = cls->get_ref<const std::string&>();
    auto inputs = node.find("inputs");
    if (inputs == node.end()) continue;  // ComfyUI accepts nodes without inputs
    if (!inputs->is_object()) {
      return NodeError(ErrorCode::kParse, id, class_type, "'inputs' must be an object");
    }
    for (const auto& [name, value] : inputs->items()) {
      if (auto link = AsLinkView(value)) {
        if (!prompt.contains(*link->node_id)) {
          return NodeError(ErrorCode::kNotFound, id, class_type,
                           "links to node '" + *link->node_id + "', which is not in the prompt",
                           name);
        }
        if (link->slot < 0) {
          return NodeError(ErrorCode::kParse, id, class_type, "link has a negative output slot",
                           name);
        }
      }
    }
  }
  return Status::Ok();
}

Result<json> ParseApiPrompt(const std::string& text, const std::string& source_name) {
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    // Re-parse with exceptions to get the byte position for the message.
    try {
      [[maybe_unused]] json again = json::parse(text);
    } catch (const json::exception& e) {  // parse_error, or out_of_range for 1e400
      ErrorLocation where;
      where.workflow = source_name;
      return Status(ErrorCode::kParse, std::string("malformed JSON: ") + e.what(), where);
    }
    ErrorLocation where;
    where.workflow = source_name;
    return Status(ErrorCode::kParse, "malformed JSON", where);
  }
  if (doc.is_object() && doc.contains("prompt") && doc["prompt"].is_object()) {
    doc = doc["prompt"];
  }
  Status st = ValidateApiPrompt(doc);
  if (!st.ok()) {
    st.where().workflow = source_name;
    return st;
  }
  return doc;
}

const Port* PortSet::FindInput(const std::string& unique_id) const {
  for (const Port& p : inputs) {
    if (p.unique_id == unique_id) return &p;
  }
  return nullptr;
}

const Port* PortSet::FindOutput(const std::string& unique_id) const {
  for (const Port& p : outputs) {
    if (p.unique_id == unique_id) return &p;
  }
  return nullptr;
}

json PortSet::ToJson() const {
  auto port_json = [](const Port& p) {
    json j = {{"unique_id", p.unique_id},
              {"node_id", p.node_id},
              {"mode", PortModeName(p.mode)},
              {"type", p.type},
              {"tags", p.tags}};
    if (p.source) j["source"] = MakeLink(*p.source);
    json consumers = json::array();
    for (const auto& c : p.consumers)
      consumers.push_back({{"node_id", c.node_id}, {"input", c.input_name}});
    j["consumers"] = consumers;
    return j;
  };
  json out = {{"inputs", json::array()},
              {"outputs", json::array()},
              {"passthrus", json::array()},
              {"unconnected", json::array()}};
  for (const auto& p : inputs) out["inputs"].push_back(port_json(p));
  for (const auto& p : outputs) out["outputs"].push_back(port_json(p));
  for (const auto& p : passthrus) out["passthrus"].push_back(port_json(p));
  for (const auto& p : unconnected) out["unconnected"].push_back(port_json(p));
  return out;
}

Result<PortSet> DiscoverPorts(const json& prompt, const json* object_info) {
  DISCOMFORT_RETURN_IF_ERROR(ValidateApiPrompt(prompt));
  return DiscoverPortsOfCheckedPrompt(prompt, object_info);
}

Result<PortSet> DiscoverPortsOfCheckedPrompt(const json& prompt, const json* object_info) {
  PortSet set;
  // Port node ids first: most prompts have few or none, and only links into them matter.
  std::set<std::string_view> port_ids;
  for (auto it = prompt.begin(); it != prompt.end(); ++it) {
    if (IsPortNode(*it)) port_ids.insert(it.key());
  }
  if (port_ids.empty()) return set;
  // Consumers of every port's output_data, in prompt order.
  std::map<std::string, std::vector<PortConsumer>> consumers;
  std::map<std::string, std::string> consumer_type;
  for (const auto& [id, node] : prompt.items()) {
    const json& inputs = JsonMember(node, "inputs", JsonEmptyObject());
    for (const auto& [name, value] : inputs.items()) {
      auto link = AsLinkView(value);
      if (!link || !port_ids.count(*link->node_id)) continue;
      const std::string& port_id = *link->node_id;
      consumers[port_id].push_back({id, name});
      if (!consumer_type.count(port_id)) {
        consumer_type[port_id] =
            InputTypeFromInfo(object_info, node["class_type"].get<std::string>(), name);
      }
    }
  }

  PortOwners owners;
  for (const auto& [id, node] : prompt.items()) {
    if (!IsPortNode(node)) continue;
    Port port;
    port.node_id = id;
    port.unique_id = PortUniqueId(node);
    if (!IsUsablePortUniqueId(port.unique_id)) {
      return NodeError(ErrorCode::kInvalidArgument, id, kPortClass,
                       "DiscomfortPort has no unique_id: set its unique_id widget", "unique_id");
    }
    port.tags = PortTags(node);
    if (node.contains("inputs") && node["inputs"].contains("input_data")) {
      port.source = AsLink(node["inputs"]["input_data"]);
    }
    auto c = consumers.find(id);
    if (c != consumers.end()) port.consumers = c->second;
    port.mode = ClassifyPort(port.source.has_value(), !port.consumers.empty());
    if (port.mode == PortMode::kInput || port.mode == PortMode::kPassthru) {
      port.type = consumer_type.count(id) ? consumer_type[id] : "*";
    }
    if (port.mode == PortMode::kOutput) {
      const json& src = prompt[port.source->node_id];
      port.type =
          OutputTypeFromInfo(object_info, src["class_type"].get<std::string>(), port.source->slot);
      if (src["class_type"] == kPortClass) port.type = "*";
    }
    DISCOMFORT_RETURN_IF_ERROR(AddPort(std::move(port), &set, &owners));
  }
  return set;
}

PortMode ClassifyPort(bool has_source, bool has_consumers) {
  if (has_source && has_consumers) return PortMode::kPassthru;
  if (has_consumers) return PortMode::kInput;
  if (has_source) return PortMode::kOutput;
  return PortMode::kUnconnected;
}

Status AddPort(Port port, PortSet* set, PortOwners* owners, bool strict,
               const std::string& workflow) {
  auto claim = [&](std::map<std::string, std::string>& owner, const char* role) -> Status {
    auto [it, inserted] = owner.emplace(port.unique_id, port.node_id);
    if (inserted || !strict) return Status::Ok();
    ErrorLocation where;
    where.workflow = workflow;
    where.node_id = port.node_id;
    where.class_type = kPortClass;
    where.port = port.unique_id;
    return Status(ErrorCode::kAlreadyExists,
                  std::string("duplicate ") + role + " port unique_id '" + port.unique_id +
                      "' on nodes " + it->second + " and " + port.node_id +
                      ": each unique_id may appear once per role",
                  std::move(where));
  };
  switch (port.mode) {
    case PortMode::kInput:
      DISCOMFORT_RETURN_IF_ERROR(claim(owners->inputs, "INPUT"));
      set->inputs.push_back(std::move(port));
      break;
    case PortMode::kOutput:
      DISCOMFORT_RETURN_IF_ERROR(claim(owners->outputs, "OUTPUT"));
      set->outputs.push_back(std::move(port));
      break;
    case PortMode::kPassthru:
      set->passthrus.push_back(std::move(port));
      break;
    case PortMode::kUnconnected:
      set->unconnected.push_back(std::move(port));
      break;
  }
  return Status::Ok();
}

Result<json> RewritePortsForExecution(const json& prompt, const PortSet& ports) {
  json out = prompt;
  // PASSTHRU chains may feed each other; resolve a source through passthrus to a real node.
  std::map<std::string, LinkRef> passthru_source;
  for (const Port& p : ports.passthrus) passthru_source[p.node_id] = *p.source;
  auto resolve = [&](LinkRef link) -> Result<LinkRef> {
    std::set<std::string> seen;
    while (passthru_source.count(link.node_id)) {
      if (!seen.insert(link.node_id).second) {
        ErrorLocation where;
        where.node_id = link.node_id;
        where.class_type = kPortClass;
        return Status(ErrorCode::kCycle, "PASSTHRU ports form a cycle", where);
      }
      link = passthru_source[link.node_id];
    }
    return link;
  };

  for (const Port& p : ports.passthrus) {
    DISCOMFORT_ASSIGN_OR_RETURN(LinkRef src, resolve(*p.source));
    for (const PortConsumer& c : p.consumers)
      out[c.node_id]["inputs"][c.input_name] = MakeLink(src);
    out.erase(p.node_id);
  }
  for (const Port& p : ports.unconnected) out.erase(p.node_id);
  for (const Port& p : ports.inputs) {
    json& node = out[p.node_id];
    json meta = node.value("_meta", json::object());
    node = {{"class_type", kLoaderClass}, {"inputs", {{"unique_id", p.unique_id}}}};
    if (!meta.empty()) node["_meta"] = meta;
  }
  for (const Port& p : ports.outputs) {
    DISCOMFORT_ASSIGN_OR_RETURN(LinkRef src, resolve(*p.source));
    json& node = out[p.node_id];
    json meta = node.value("_meta", json::object());
    node = {{"class_type", kSaverClass},
            {"inputs", {{"unique_id", p.unique_id}, {"input_data", MakeLink(src)}}}};
    if (!meta.empty()) node["_meta"] = meta;
  }
  return out;
}

}  // namespace discomfort::graph
