#include "graph/workflow_ops.h"

#include <algorithm>
#include <functional>
#include <map>
#include <queue>
#include <set>
#include <span>
#include <string_view>
#include <unordered_map>

#include "graph/parallel.h"
#include "graph/ui_to_api.h"

namespace discomfort::graph {
namespace {

using nlohmann::json;

Status At(ErrorCode code, std::string message, const std::string& source,
          const std::string& node_id = {}, const std::string& class_type = {},
          const std::string& pointer = {}) {
  ErrorLocation where;
  where.workflow = source;
  where.node_id = node_id;
  where.class_type = class_type;
  where.json_pointer = pointer;
  return Status(code, std::move(message), std::move(where));
}

std::string Trim(const std::string& s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  const auto last = s.find_last_not_of(" \t\r\n");
  return s.substr(first, last - first + 1);
}

std::vector<std::string> SplitTags(const std::string& text) {
  std::vector<std::string> tags;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    std::string tag = Trim(text.substr(start, comma - start));
    if (!tag.empty()) tags.push_back(tag);
    start = comma + 1;
  }
  return tags;
}

// Orders ids numerically when both are integers ("9" before "10"), else as strings.
bool IdLess(const std::string& a, const std::string& b) {
  auto numeric = [](const std::string& s) {
    return !s.empty() && s.size() < 19 && std::all_of(s.begin(), s.end(), ::isdigit);
  };
  if (numeric(a) && numeric(b)) return std::stoll(a) < std::stoll(b);
  return a < b;
}

// The successors of nodes 0..n-1 in one array (compressed rows): two allocations, where a vector
// per node cost one allocation per node.
class Successors {
 public:
  // `edges` as (from, to); each node's successors keep the edges' order.
  Successors(size_t n, const std::vector<std::pair<size_t, size_t>>& edges)
      : offsets_(n + 1, 0), targets_(edges.size()) {
    for (const auto& [from, to] : edges) ++offsets_[from + 1];
    for (size_t i = 0; i < n; ++i) offsets_[i + 1] += offsets_[i];
    std::vector<size_t> next(offsets_.begin(), offsets_.end() - 1);
    for (const auto& [from, to] : edges) targets_[next[from]++] = to;
  }
  size_t size() const { return offsets_.size() - 1; }
  std::span<const size_t> Of(size_t i) const {
    return {targets_.data() + offsets_[i], offsets_[i + 1] - offsets_[i]};
  }

 private:
  std::vector<size_t> offsets_;  // node i's successors: targets_[offsets_[i] .. offsets_[i + 1])
  std::vector<size_t> targets_;
};

// Kahn's algorithm over nodes 0..n-1 with edges; ties go to the lowest index. On a cycle, returns
// the node indexes along one cycle.
struct OrderOutcome {
  std::vector<size_t> order;
  std::vector<size_t> cycle;
};
// Parallel edges are fine: they count in the in-degree and are released together.
OrderOutcome OrderIndexes(const Successors& successors) {
  const size_t n = successors.size();
  std::vector<int> indegree(n, 0);
  for (size_t i = 0; i < n; ++i) {
    for (size_t s : successors.Of(i)) ++indegree[s];
  }
  std::priority_queue<size_t, std::vector<size_t>, std::greater<>> ready;
  for (size_t i = 0; i < n; ++i) {
    if (indegree[i] == 0) ready.push(i);
  }
  OrderOutcome out;
  while (!ready.empty()) {
    size_t i = ready.top();
    ready.pop();
    out.order.push_back(i);
    for (size_t s : successors.Of(i)) {
      if (--indegree[s] == 0) ready.push(s);
    }
  }
  if (out.order.size() == n) return out;
  // Walk backwards... simpler: DFS among the remaining nodes until a node repeats.
  std::vector<int> state(n, 0);  // 0 new, 1 on stack, 2 done
  std::vector<size_t> stack;
  std::function<bool(size_t)> dfs = [&](size_t v) -> bool {
    state[v] = 1;
    stack.push_back(v);
    for (size_t s : successors.Of(v)) {
      if (indegree[s] == 0) continue;  // already ordered
      if (state[s] == 1) {
        auto it = std::find(stack.begin(), stack.end(), s);
        out.cycle.assign(it, stack.end());
        out.cycle.push_back(s);
        return true;
      }
      if (state[s] == 0 && dfs(s)) return true;
    }
    stack.pop_back();
    state[v] = 2;
    return false;
  };
  for (size_t i = 0; i < n && out.cycle.empty(); ++i) {
    if (indegree[i] > 0 && state[i] == 0) dfs(i);
  }
  return out;
}

std::string JoinCycle(const std::vector<std::string>& ids) {
  std::string text;
  for (size_t i = 0; i < ids.size(); ++i) text += (i ? " -> " : "") + ids[i];
  return text;
}

// ---- UI JSON helpers ------------------------------------------------------------------------

// The root links as [id, origin, origin_slot, target, target_slot, type] arrays (v1 objects are
// converted), in saved order.
json LinksAsArrays(const UiGraph& graph) {
  json links = json::array();
  for (int64_t id : graph.link_order) {
    const UiLink& l = graph.links.at(id);
    json origin = l.origin_id, target = l.target_id;
    // Keep numeric ids numeric, as the UI writes them.
    if (auto n = NodeIdToString(origin); n && std::all_of(n->begin(), n->end(), ::isdigit)) {
      origin = std::stoll(*n);
    }
    if (auto n = NodeIdToString(target); n && std::all_of(n->begin(), n->end(), ::isdigit)) {
      target = std::stoll(*n);
    }
    links.push_back(json::array({l.id, origin, l.origin_slot, target, l.target_slot, l.type}));
  }
  return links;
}

json NodeIdJson(const std::string& id) {
  if (!id.empty() && id.size() < 19 && std::all_of(id.begin(), id.end(), ::isdigit)) {
    return std::stoll(id);
  }
  return id;
}

// Makes every node's inputs[].link / outputs[].links agree with `links` (arrays).
void SyncNodeLinkFields(json* workflow) {
  std::map<std::pair<std::string, int>, int64_t> into;                 // (target, slot) -> link
  std::map<std::pair<std::string, int>, std::vector<int64_t>> out_of;  // (origin, slot) -> links
  for (const json& l : (*workflow)["links"]) {
    auto origin = NodeIdToString(l[1]);
    auto target = NodeIdToString(l[3]);
    if (!origin || !target) continue;
    into[{*target, l[4].get<int>()}] = l[0].get<int64_t>();
    out_of[{*origin, l[2].get<int>()}].push_back(l[0].get<int64_t>());
  }
  for (json& node : (*workflow)["nodes"]) {
    auto id = NodeIdToString(node.value("id", json()));
    if (!id) continue;
    if (node.contains("inputs") && node["inputs"].is_array()) {
      for (size_t s = 0; s < node["inputs"].size(); ++s) {
        auto it = into.find({*id, static_cast<int>(s)});
        node["inputs"][s]["link"] = it == into.end() ? json() : json(it->second);
      }
    }
    if (node.contains("outputs") && node["outputs"].is_array()) {
      for (size_t s = 0; s < node["outputs"].size(); ++s) {
        auto it = out_of.find({*id, static_cast<int>(s)});
        node["outputs"][s]["links"] = it == out_of.end() ? json::array() : json(it->second);
      }
    }
  }
}

// Keeps the nodes whose ids are in `keep` and the links between them.
void FilterUiNodes(json* workflow, const std::set<std::string>& keep) {
  json nodes = json::array();
  for (const json& node : (*workflow)["nodes"]) {
    auto id = NodeIdToString(node.value("id", json()));
    if (id && keep.count(*id)) nodes.push_back(node);
  }
  json links = json::array();
  for (const json& l : (*workflow)["links"]) {
    auto origin = NodeIdToString(l[1]);
    auto target = NodeIdToString(l[3]);
    if (origin && target && keep.count(*origin) && keep.count(*target)) links.push_back(l);
  }
  (*workflow)["nodes"] = std::move(nodes);
  (*workflow)["links"] = std::move(links);
  SyncNodeLinkFields(workflow);
}

Result<json> NormalizedUi(const json& doc, const std::string& source, UiWorkflow* parsed) {
  DISCOMFORT_ASSIGN_OR_RETURN(*parsed, ParseUiWorkflow(doc, source));
  json out = doc;
  out["links"] = LinksAsArrays(parsed->root);
  return out;
}

// ---- API helpers ----------------------------------------------------------------------------

std::set<std::string> PromptAncestors(const json& prompt, const std::string& start) {
  std::set<std::string> seen = {start};
  std::vector<std::string> todo = {start};
  while (!todo.empty()) {
    std::string id = todo.back();
    todo.pop_back();
    const json& node = prompt[id];
    if (!node.contains("inputs")) continue;
    for (const auto& [name, value] : node["inputs"].items()) {
      if (auto link = AsLink(value);
          link && prompt.contains(link->node_id) && seen.insert(link->node_id).second) {
        todo.push_back(link->node_id);
      }
    }
  }
  return seen;
}

const json* ObjectInfoOf(const NodeDefinitions* defs) { return defs ? &defs->raw() : nullptr; }

}  // namespace

// ---- ports --------------------------------------------------------------------------------

namespace {

// `strict` = a unique_id clash among INPUTs or among OUTPUTs is an error; stitching reads the
// merged graph leniently and resolves the clashes itself.
Result<PortSet> DiscoverUiPortsImpl(const UiWorkflow& workflow, bool strict) {
  const UiGraph& graph = workflow.root;
  PortSet set;
  PortOwners owners;
  for (const UiNode& node : graph.nodes) {
    if (node.type != kPortClass) continue;
    Port port;
    port.node_id = node.id;
    const json& wv = *node.widgets_values;
    json uid, tags;
    if (wv.is_array()) {
      if (!wv.empty()) uid = wv[0];
      if (wv.size() > 1) tags = wv[1];
    } else if (wv.is_object()) {
      uid = wv.value("unique_id", json());
      tags = wv.value("tags", json());
    }
    if (!uid.is_string() || Trim(uid.get<std::string>()).empty()) {
      return At(ErrorCode::kInvalidArgument,
                "DiscomfortPort has no unique_id: its widgets_values must start with a non-empty "
                "string",
                workflow.source, node.id, kPortClass, node.json_pointer + "/widgets_values");
    }
    port.unique_id = uid.get<std::string>();
    if (tags.is_string()) port.tags = SplitTags(tags.get<std::string>());

    const UiLink* incoming = nullptr;
    for (int64_t id : graph.link_order) {
      const UiLink& link = graph.links.at(id);
      if (link.target_id == node.id && link.target_slot == 0 && incoming == nullptr) {
        incoming = &link;
      }
      if (link.origin_id == node.id && link.origin_slot == 0) {
        const UiNode* target = graph.FindNode(link.target_id);
        std::string input_name;
        if (target != nullptr) {
          int idx = target->InputIndexOfLink(link.id);
          if (idx < 0) idx = link.target_slot;
          if (idx >= 0 && idx < static_cast<int>(target->inputs.size())) {
            input_name = target->inputs[idx].name;
            if (port.consumers.empty()) {
              port.type = target->inputs[idx].type.empty() ? "*" : target->inputs[idx].type;
            }
          }
        }
        port.consumers.push_back({link.target_id, input_name});
      }
    }
    if (incoming != nullptr) {
      port.source = LinkRef{incoming->origin_id, incoming->origin_slot};
    }
    port.mode = ClassifyPort(incoming != nullptr, !port.consumers.empty());
    if (port.mode == PortMode::kOutput) {
      port.type = "*";
      const UiNode* origin = graph.FindNode(incoming->origin_id);
      if (origin != nullptr && incoming->origin_slot >= 0 &&
          incoming->origin_slot < static_cast<int>(origin->outputs.size()) &&
          !origin->outputs[incoming->origin_slot].type.empty()) {
        port.type = origin->outputs[incoming->origin_slot].type;
      }
    }
    DISCOMFORT_RETURN_IF_ERROR(AddPort(std::move(port), &set, &owners, strict, workflow.source));
  }
  return set;
}

}  // namespace

Result<PortSet> DiscoverUiPorts(const UiWorkflow& workflow) {
  return DiscoverUiPortsImpl(workflow, /*strict=*/true);
}

Result<PortSet> DiscoverWorkflowPorts(const json& doc, const NodeDefinitions* defs,
                                      const std::string& source_name) {
  const WorkflowFormat format = DetectFormat(doc);
  if (format == WorkflowFormat::kApi) {
    DISCOMFORT_ASSIGN_OR_RETURN(json prompt, ToApiPrompt(doc, nullptr, {source_name}));
    auto ports = DiscoverPorts(prompt, ObjectInfoOf(defs));
    if (!ports.ok()) {
      Status st = ports.TakeStatus();
      st.where().workflow = source_name;
      return st;
    }
    return ports;
  }
  DISCOMFORT_ASSIGN_OR_RETURN(UiWorkflow workflow, ParseUiWorkflow(doc, source_name));
  return DiscoverUiPorts(workflow);
}

const char* PassByForType(const std::string& type) {
  static const std::set<std::string> kByReference = {"MODEL", "CLIP", "VAE", "CONDITIONING",
                                                     "CONTROL_NET"};
  return kByReference.count(type) ? "ref" : "val";
}

// ---- order --------------------------------------------------------------------------------

Result<std::vector<std::string>> TopologicalOrder(const UiGraph& graph) {
  std::vector<std::pair<size_t, size_t>> edges;
  edges.reserve(graph.links.size());
  for (const auto& [id, link] : graph.links) {
    auto o = graph.node_index.find(link.origin_id);
    auto t = graph.node_index.find(link.target_id);
    if (o == graph.node_index.end() || t == graph.node_index.end()) continue;
    edges.emplace_back(o->second, t->second);
  }
  OrderOutcome outcome = OrderIndexes(Successors(graph.nodes.size(), edges));
  if (!outcome.cycle.empty() || outcome.order.size() != graph.nodes.size()) {
    std::vector<std::string> ids;
    for (size_t i : outcome.cycle) ids.push_back(graph.nodes[i].id);
    ErrorLocation where;
    where.node_id = ids.empty() ? "" : ids.front();
    return Status(ErrorCode::kCycle, "the workflow contains a cycle: " + JoinCycle(ids), where);
  }
  std::vector<std::string> order;
  for (size_t i : outcome.order) order.push_back(graph.nodes[i].id);
  return order;
}

Result<std::vector<std::string>> TopologicalOrderOfPrompt(const json& prompt) {
  DISCOMFORT_RETURN_IF_ERROR(ValidateApiPrompt(prompt));
  return TopologicalOrderOfCheckedPrompt(prompt);
}

Result<std::vector<std::string>> TopologicalOrderOfCheckedPrompt(const json& prompt) {
  // Ids sorted as IdLess does, with each id's number parsed once (not per comparison).
  struct Entry {
    const std::string* id;
    const json* node;
    bool numeric;
    long long number;
  };
  std::vector<Entry> entries;
  entries.reserve(prompt.size());
  for (auto it = prompt.begin(); it != prompt.end(); ++it) {
    const std::string& id = it.key();
    const bool numeric =
        !id.empty() && id.size() < 19 &&
        std::all_of(id.begin(), id.end(), [](char c) { return c >= '0' && c <= '9'; });
    entries.push_back({&id, &*it, numeric, numeric ? std::stoll(id) : 0});
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    if (a.numeric && b.numeric) return a.number < b.number;
    return *a.id < *b.id;
  });
  std::unordered_map<std::string_view, size_t> index;
  index.reserve(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) index.emplace(*entries[i].id, i);
  // Each node's incoming links are read independently (on the workers for large prompts).
  std::vector<std::vector<size_t>> predecessors(entries.size());
  DISCOMFORT_RETURN_IF_ERROR(ForEachIndex(entries.size(), [&](size_t i) {
    const json& inputs = JsonMember(*entries[i].node, "inputs", JsonEmptyObject());
    if (!inputs.is_object()) return Status::Ok();
    for (const json& value : inputs) {
      if (!IsLink(value)) continue;
      auto from = index.find(value[0].get_ref<const std::string&>());
      if (from != index.end()) predecessors[i].push_back(from->second);
    }
    return Status::Ok();
  }));
  std::vector<std::pair<size_t, size_t>> edges;
  for (size_t i = 0; i < entries.size(); ++i) {
    for (size_t from : predecessors[i]) edges.emplace_back(from, i);
  }
  OrderOutcome outcome = OrderIndexes(Successors(entries.size(), edges));
  if (outcome.order.size() != entries.size()) {
    std::vector<std::string> cycle;
    for (size_t i : outcome.cycle) cycle.push_back(*entries[i].id);
    ErrorLocation where;
    where.node_id = cycle.empty() ? "" : cycle.front();
    return Status(ErrorCode::kCycle, "the prompt contains a cycle: " + JoinCycle(cycle), where);
  }
  std::vector<std::string> order;
  order.reserve(outcome.order.size());
  for (size_t i : outcome.order) order.push_back(*entries[i].id);
  return order;
}

// ---- stitching ----------------------------------------------------------------------------

namespace {

struct RegisteredOutput {
  std::string node_id;  // id in the merged workflow
  std::string type;
  std::string workflow;
  std::string original_node_id;
};

Status RepeatedInputClash(const std::string& uid, const Port& first, const Port& later) {
  ErrorLocation where;
  where.node_id = later.node_id;
  where.class_type = kPortClass;
  where.port = uid;
  return Status(ErrorCode::kTypeMismatch,
                "INPUT ports '" + uid + "' on nodes " + first.node_id + " (" + first.type +
                    ") and " + later.node_id + " (" + later.type +
                    ") would read the same value but their types differ",
                where);
}

// After joining, a unique_id may remain on several OUTPUTs (the last one shadows the others: it is
// the value the context ends up with, so the shadowed ones are dropped) or on several INPUTs (they
// read one value: later ones are merged into the first, which then feeds all their consumers).
Status ResolveUiPortClashes(json* merged) {
  DISCOMFORT_ASSIGN_OR_RETURN(UiWorkflow parsed, ParseUiWorkflow(*merged, "stitched"));
  DISCOMFORT_ASSIGN_OR_RETURN(PortSet ports, DiscoverUiPortsImpl(parsed, /*strict=*/false));
  std::set<std::string> drop;
  std::map<std::string, const Port*> last_output;
  for (const Port& p : ports.outputs) {
    auto [it, inserted] = last_output.emplace(p.unique_id, &p);
    if (!inserted) {
      drop.insert(it->second->node_id);  // outputs come in merge order: the later one wins
      it->second = &p;
    }
  }
  std::map<std::string, const Port*> first_input;
  std::map<std::string, std::string> redirect;  // later input node -> first input node
  for (const Port& p : ports.inputs) {
    auto [it, inserted] = first_input.emplace(p.unique_id, &p);
    if (inserted) continue;
    if (!TypesCompatible(it->second->type, p.type)) {
      return RepeatedInputClash(p.unique_id, *it->second, p);
    }
    redirect[p.node_id] = it->second->node_id;
    drop.insert(p.node_id);
  }
  if (drop.empty()) return Status::Ok();
  for (json& l : (*merged)["links"]) {
    auto origin = NodeIdToString(l[1]);
    if (origin && redirect.count(*origin)) {
      l[1] = NodeIdJson(redirect[*origin]);
      l[2] = 0;
    }
  }
  std::set<std::string> keep;
  for (const UiNode& n : parsed.root.nodes) {
    if (!drop.count(n.id)) keep.insert(n.id);
  }
  FilterUiNodes(merged, keep);
  return Status::Ok();
}

Status PortTypeClash(const std::string& uid, const RegisteredOutput& out, const Port& in,
                     const std::string& in_workflow) {
  ErrorLocation where;
  where.workflow = in_workflow;
  where.node_id = in.node_id;
  where.class_type = kPortClass;
  where.port = uid;
  return Status(ErrorCode::kTypeMismatch,
                "port '" + uid + "': OUTPUT of " + out.workflow + " (node " + out.original_node_id +
                    ") has type " + out.type + " but INPUT of " + in_workflow + " (node " +
                    in.node_id + ") expects " + in.type,
                where);
}

Result<StitchResult> StitchUi(const std::vector<json>& workflows, const StitchOptions& options,
                              const std::vector<std::string>& names) {
  int64_t next_node = 1, next_link = 1;
  json nodes = json::array(), links = json::array();
  json subgraphs = json::array();
  std::set<std::string> subgraph_ids;
  json group_nodes = json::object();
  std::map<std::string, RegisteredOutput> outputs;  // by unique_id; later ones shadow
  for (size_t w = 0; w < workflows.size(); ++w) {
    const std::string& name = names[w];
    DISCOMFORT_ASSIGN_OR_RETURN(UiWorkflow parsed, ParseUiWorkflow(workflows[w], name));
    DISCOMFORT_ASSIGN_OR_RETURN(PortSet ports, DiscoverUiPorts(parsed));
    std::map<std::string, std::string> node_map;
    for (const UiNode& node : parsed.root.nodes) node_map[node.id] = std::to_string(next_node++);
    std::map<int64_t, int64_t> link_map;
    for (int64_t id : parsed.root.link_order) {
      const UiLink& l = parsed.root.links.at(id);
      auto o = node_map.find(l.origin_id);
      auto t = node_map.find(l.target_id);
      if (o == node_map.end() || t == node_map.end()) {
        return At(ErrorCode::kNotFound,
                  "link " + std::to_string(l.id) + " connects " + l.origin_id + " to " +
                      l.target_id + ", but one of them is not a node of the workflow",
                  name);
      }
      link_map[id] = next_link;
      links.push_back(json::array({next_link, std::stoll(o->second), l.origin_slot,
                                   std::stoll(t->second), l.target_slot, l.type}));
      ++next_link;
    }
    const json& raw_nodes = workflows[w]["nodes"];
    std::map<std::string, size_t> merged_index;  // new id -> index in `nodes`
    for (size_t i = 0; i < raw_nodes.size(); ++i) {
      json node = raw_nodes[i];
      const std::string new_id = node_map[parsed.root.nodes[i].id];
      node["id"] = std::stoll(new_id);
      merged_index[new_id] = nodes.size();
      nodes.push_back(std::move(node));
    }
    // Cross-links: earlier OUTPUT -> this INPUT with the same unique_id.
    for (const Port& in : ports.inputs) {
      auto out = outputs.find(in.unique_id);
      if (out == outputs.end()) continue;
      if (!TypesCompatible(out->second.type, in.type)) {
        return PortTypeClash(in.unique_id, out->second, in, name);
      }
      const std::string type = out->second.type.empty() ? "*" : out->second.type;
      links.push_back(json::array({next_link, std::stoll(out->second.node_id), 0,
                                   std::stoll(node_map[in.node_id]), 0, type}));
      json& target = nodes[merged_index[node_map[in.node_id]]];
      if (!target.contains("inputs") || !target["inputs"].is_array() || target["inputs"].empty()) {
        target["inputs"] =
            json::array({{{"name", "input_data"}, {"type", "*"}, {"link", nullptr}}});
      }
      ++next_link;
    }
    for (const Port& out : ports.outputs) {
      outputs[out.unique_id] = {node_map[out.node_id], out.type, name, out.node_id};
    }
    for (const auto& [id, graph] : parsed.subgraphs) {
      if (!subgraph_ids.insert(id).second) continue;
      const json& defs = JsonMember(workflows[w], "definitions", JsonEmptyObject());
      for (const json& def : JsonMember(defs, "subgraphs", JsonEmptyArray())) {
        if (def.value("id", json()) == id) subgraphs.push_back(def);
      }
    }
    for (const auto& [group, def] : parsed.group_nodes->items()) {
      if (!group_nodes.contains(group)) group_nodes[group] = def;
    }
  }
  json merged = {{"last_node_id", next_node - 1}, {"last_link_id", next_link - 1},
                 {"nodes", std::move(nodes)},     {"links", std::move(links)},
                 {"groups", json::array()},       {"config", json::object()},
                 {"extra", json::object()},       {"version", 0.4}};
  if (!subgraphs.empty()) merged["definitions"] = {{"subgraphs", subgraphs}};
  if (!group_nodes.empty()) merged["extra"]["groupNodes"] = group_nodes;
  SyncNodeLinkFields(&merged);
  DISCOMFORT_RETURN_IF_ERROR(ResolveUiPortClashes(&merged));

  if (options.delete_input_ports || options.delete_output_ports) {
    DISCOMFORT_ASSIGN_OR_RETURN(UiWorkflow parsed, ParseUiWorkflow(merged, "stitched"));
    DISCOMFORT_ASSIGN_OR_RETURN(PortSet ports, DiscoverUiPorts(parsed));
    std::set<std::string> drop;
    if (options.delete_input_ports) {
      for (const Port& p : ports.inputs) drop.insert(p.node_id);
    }
    if (options.delete_output_ports) {
      for (const Port& p : ports.outputs) drop.insert(p.node_id);
    }
    for (const Port& p : ports.unconnected) drop.insert(p.node_id);
    std::set<std::string> keep;
    for (const UiNode& n : parsed.root.nodes) {
      if (!drop.count(n.id)) keep.insert(n.id);
    }
    FilterUiNodes(&merged, keep);
  }
  StitchResult result;
  DISCOMFORT_ASSIGN_OR_RETURN(UiWorkflow final_wf, ParseUiWorkflow(merged, "stitched"));
  DISCOMFORT_ASSIGN_OR_RETURN(result.ports, DiscoverUiPorts(final_wf));
  DISCOMFORT_ASSIGN_OR_RETURN(result.execution_order, TopologicalOrder(final_wf.root));
  result.workflow = std::move(merged);
  return result;
}

// The API form of ResolveUiPortClashes. DiscoverPorts is strict, so clashes are found by uid here.
Status ResolveApiPortClashes(json* merged) {
  std::map<std::string, std::vector<std::string>> by_uid;  // port nodes per unique_id, id order
  std::vector<std::string> ids;
  for (const auto& [id, node] : merged->items()) ids.push_back(id);
  std::sort(ids.begin(), ids.end(), IdLess);
  for (const std::string& id : ids) {
    const json& node = (*merged)[id];
    if (node["class_type"] != kPortClass) continue;
    const json& uid = JsonMember(node, "inputs", JsonEmptyObject()).value("unique_id", json());
    if (uid.is_string()) by_uid[uid.get<std::string>()].push_back(id);
  }
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> consumers;
  for (const auto& [id, node] : merged->items()) {
    if (!node.contains("inputs")) continue;
    for (const auto& [name, value] : node["inputs"].items()) {
      if (auto link = AsLink(value)) consumers[link->node_id].push_back({id, name});
    }
  }
  std::set<std::string> drop;
  for (const auto& [uid, nodes] : by_uid) {
    if (nodes.size() < 2) continue;
    std::vector<std::string> outputs, inputs;
    for (const std::string& id : nodes) {
      const bool fed = (*merged)[id]["inputs"].contains("input_data") &&
                       IsLink((*merged)[id]["inputs"]["input_data"]);
      const bool read = consumers.count(id) > 0;
      if (fed && !read) outputs.push_back(id);
      if (read && !fed) inputs.push_back(id);
    }
    for (size_t i = 0; i + 1 < outputs.size(); ++i) drop.insert(outputs[i]);
    for (size_t i = 1; i < inputs.size(); ++i) {
      for (const auto& [consumer, name] : consumers[inputs[i]]) {
        (*merged)[consumer]["inputs"][name] = MakeLink({inputs[0], 0});
      }
      drop.insert(inputs[i]);
    }
  }
  for (const std::string& id : drop) merged->erase(id);
  return Status::Ok();
}

Result<StitchResult> StitchApi(const std::vector<json>& prompts, const StitchOptions& options,
                               const std::vector<std::string>& names, const NodeDefinitions* defs) {
  int64_t next_node = 1;
  json merged = json::object();
  std::map<std::string, RegisteredOutput> outputs;
  for (size_t w = 0; w < prompts.size(); ++w) {
    const json& prompt = prompts[w];
    auto found = DiscoverPorts(prompt, ObjectInfoOf(defs));
    if (!found.ok()) {
      Status st = found.TakeStatus();
      st.where().workflow = names[w];
      return st;
    }
    const PortSet& ports = *found;
    std::vector<std::string> ids;
    for (const auto& [id, node] : prompt.items()) ids.push_back(id);
    std::sort(ids.begin(), ids.end(), IdLess);
    std::map<std::string, std::string> node_map;
    for (const std::string& id : ids) node_map[id] = std::to_string(next_node++);
    for (const std::string& id : ids) {
      json node = prompt[id];
      if (node.contains("inputs")) {
        for (auto& [name, value] : node["inputs"].items()) {
          if (auto link = AsLink(value)) value = MakeLink({node_map[link->node_id], link->slot});
        }
      }
      merged[node_map[id]] = std::move(node);
    }
    for (const Port& in : ports.inputs) {
      auto out = outputs.find(in.unique_id);
      if (out == outputs.end()) continue;
      if (!TypesCompatible(out->second.type, in.type)) {
        return PortTypeClash(in.unique_id, out->second, in, names[w]);
      }
      merged[node_map[in.node_id]]["inputs"]["input_data"] = MakeLink({out->second.node_id, 0});
    }
    for (const Port& out : ports.outputs) {
      outputs[out.unique_id] = {node_map[out.node_id], out.type, names[w], out.node_id};
    }
  }
  DISCOMFORT_RETURN_IF_ERROR(ResolveApiPortClashes(&merged));
  if (options.delete_input_ports || options.delete_output_ports) {
    auto found = DiscoverPorts(merged, ObjectInfoOf(defs));
    if (!found.ok()) return found.TakeStatus();
    std::set<std::string> drop;
    if (options.delete_input_ports) {
      for (const Port& p : found->inputs) drop.insert(p.node_id);
    }
    if (options.delete_output_ports) {
      for (const Port& p : found->outputs) drop.insert(p.node_id);
    }
    for (const Port& p : found->unconnected) drop.insert(p.node_id);
    for (const std::string& id : drop) merged.erase(id);
    for (auto& [id, node] : merged.items()) {
      if (!node.contains("inputs")) continue;
      std::vector<std::string> dangling;
      for (const auto& [name, value] : node["inputs"].items()) {
        if (auto link = AsLink(value); link && drop.count(link->node_id)) dangling.push_back(name);
      }
      for (const std::string& name : dangling) node["inputs"].erase(name);
    }
  }
  StitchResult result;
  auto ports = DiscoverPorts(merged, ObjectInfoOf(defs));
  if (!ports.ok()) return ports.TakeStatus();
  result.ports = std::move(ports).value();
  DISCOMFORT_ASSIGN_OR_RETURN(result.execution_order, TopologicalOrderOfPrompt(merged));
  result.workflow = std::move(merged);
  return result;
}

}  // namespace

Result<StitchResult> StitchWorkflows(const std::vector<json>& workflows,
                                     const StitchOptions& options,
                                     const std::vector<std::string>& names,
                                     const NodeDefinitions* defs) {
  if (workflows.empty()) {
    return Status(ErrorCode::kInvalidArgument, "stitching needs at least one workflow");
  }
  std::vector<std::string> labels = names;
  for (size_t i = labels.size(); i < workflows.size(); ++i) {
    labels.push_back("workflow " + std::to_string(i + 1));
  }
  bool all_ui = true;
  for (size_t i = 0; i < workflows.size(); ++i) {
    const WorkflowFormat f = DetectFormat(workflows[i]);
    if (f == WorkflowFormat::kUnknown) {
      return At(ErrorCode::kParse, "not a ComfyUI workflow (neither UI nor API format)", labels[i]);
    }
    all_ui &= f != WorkflowFormat::kApi;
  }
  try {
    if (all_ui) return StitchUi(workflows, options, labels);
    std::vector<json> prompts;
    for (size_t i = 0; i < workflows.size(); ++i) {
      ConvertOptions convert;
      convert.source_name = labels[i];
      DISCOMFORT_ASSIGN_OR_RETURN(json prompt, ToApiPrompt(workflows[i], defs, convert));
      prompts.push_back(std::move(prompt));
    }
    return StitchApi(prompts, options, labels, defs);
  } catch (const std::exception& e) {
    return Status(ErrorCode::kInternal, std::string("stitching failed: ") + e.what());
  }
}

// ---- pruning ------------------------------------------------------------------------------

Result<json> PruneToOutput(const json& doc, const std::string& unique_id,
                           const NodeDefinitions* defs) {
  auto missing = [&](const PortSet& ports) {
    std::string known;
    for (const Port& p : ports.outputs) known += (known.empty() ? "" : ", ") + p.unique_id;
    ErrorLocation where;
    where.port = unique_id;
    return Status(ErrorCode::kNotFound,
                  "no OUTPUT port with unique_id '" + unique_id +
                      "' (OUTPUT ports: " + (known.empty() ? "none" : known) + ")",
                  where);
  };
  try {
    if (DetectFormat(doc) == WorkflowFormat::kApi) {
      DISCOMFORT_ASSIGN_OR_RETURN(json prompt, ToApiPrompt(doc, nullptr));
      auto ports = DiscoverPorts(prompt, ObjectInfoOf(defs));
      if (!ports.ok()) return ports.TakeStatus();
      const Port* port = ports->FindOutput(unique_id);
      if (port == nullptr) return missing(*ports);
      const std::set<std::string> keep = PromptAncestors(prompt, port->node_id);
      json pruned = json::object();
      for (const std::string& id : keep) pruned[id] = prompt[id];
      return pruned;
    }
    UiWorkflow parsed;
    DISCOMFORT_ASSIGN_OR_RETURN(json ui, NormalizedUi(doc, "", &parsed));
    DISCOMFORT_ASSIGN_OR_RETURN(PortSet ports, DiscoverUiPorts(parsed));
    const Port* port = ports.FindOutput(unique_id);
    if (port == nullptr) return missing(ports);
    std::set<std::string> keep = {port->node_id};
    std::vector<std::string> todo = {port->node_id};
    while (!todo.empty()) {
      const std::string id = todo.back();
      todo.pop_back();
      for (const auto& [link_id, link] : parsed.root.links) {
        if (link.target_id == id && parsed.root.FindNode(link.origin_id) &&
            keep.insert(link.origin_id).second) {
          todo.push_back(link.origin_id);
        }
      }
    }
    FilterUiNodes(&ui, keep);
    return ui;
  } catch (const std::exception& e) {
    return Status(ErrorCode::kInternal, std::string("pruning failed: ") + e.what());
  }
}

// ---- reroutes -----------------------------------------------------------------------------

Result<json> RemoveReroutes(const json& doc) {
  UiWorkflow parsed;
  DISCOMFORT_ASSIGN_OR_RETURN(json ui, NormalizedUi(doc, "", &parsed));
  const UiGraph& graph = parsed.root;
  auto is_reroute = [&](const std::string& id) {
    const UiNode* n = graph.FindNode(id);
    return n != nullptr && n->type == kRerouteType;
  };
  json links = json::array();
  for (int64_t id : graph.link_order) {
    const UiLink& link = graph.links.at(id);
    if (is_reroute(link.target_id)) continue;  // links into reroutes disappear with them
    // Follow the chain of reroutes back to a real source.
    std::string origin = link.origin_id;
    int origin_slot = link.origin_slot;
    std::set<std::string> seen;
    bool found = true;
    while (is_reroute(origin)) {
      if (!seen.insert(origin).second) {
        ErrorLocation where;
        where.node_id = origin;
        where.class_type = kRerouteType;
        return Status(ErrorCode::kCycle, "Reroute nodes form a loop", where);
      }
      const UiNode* reroute = graph.FindNode(origin);
      const UiLink* feed = nullptr;
      if (!reroute->inputs.empty() && reroute->inputs[0].link) {
        feed = graph.FindLink(*reroute->inputs[0].link);
      }
      if (feed == nullptr) {
        for (int64_t other : graph.link_order) {
          const UiLink& candidate = graph.links.at(other);
          if (candidate.target_id == origin) {
            feed = &candidate;
            break;
          }
        }
      }
      if (feed == nullptr) {
        found = false;
        break;
      }
      origin = feed->origin_id;
      origin_slot = feed->origin_slot;
    }
    if (!found) continue;  // a reroute chain with nothing feeding it: the consumer is unlinked
    links.push_back(json::array({link.id, NodeIdJson(origin), origin_slot,
                                 NodeIdJson(link.target_id), link.target_slot, link.type}));
  }
  std::set<std::string> keep;
  for (const UiNode& n : graph.nodes) {
    if (n.type != kRerouteType) keep.insert(n.id);
  }
  ui["links"] = std::move(links);
  FilterUiNodes(&ui, keep);
  return ui;
}

// ---- validation ---------------------------------------------------------------------------

namespace {

void ValidateUiGraph(const UiWorkflow& wf, const UiGraph& graph, const NodeDefinitions* defs,
                     std::vector<Status>* problems) {
  const bool is_subgraph = !graph.id.empty();
  auto boundary = [&](const std::string& id) {
    return is_subgraph && (id == kSubgraphInputId || id == kSubgraphOutputId);
  };
  for (int64_t id : graph.link_order) {
    const UiLink& link = graph.links.at(id);
    const UiNode* origin = graph.FindNode(link.origin_id);
    const UiNode* target = graph.FindNode(link.target_id);
    const std::string pointer = graph.json_pointer + "/links";
    if (origin == nullptr && !boundary(link.origin_id)) {
      problems->push_back(At(ErrorCode::kNotFound,
                             "link " + std::to_string(id) + " comes from node " + link.origin_id +
                                 ", which does not exist",
                             wf.source, link.target_id, target ? target->type : "", pointer));
    }
    if (target == nullptr && !boundary(link.target_id)) {
      problems->push_back(At(ErrorCode::kNotFound,
                             "link " + std::to_string(id) + " goes to node " + link.target_id +
                                 ", which does not exist",
                             wf.source, link.origin_id, origin ? origin->type : "", pointer));
    }
    if (defs == nullptr || origin == nullptr || target == nullptr) continue;
    const NodeDef* od = defs->Find(origin->type);
    const NodeDef* td = defs->Find(target->type);
    if (od == nullptr || td == nullptr) continue;
    int idx = target->InputIndexOfLink(id);
    if (idx < 0) idx = link.target_slot;
    if (idx < 0 || idx >= static_cast<int>(target->inputs.size())) continue;
    const std::string& in_name = target->inputs[idx].name;
    const std::string& in_type = td->InputType(in_name);
    const std::string& out_type = od->OutputType(link.origin_slot);
    if (link.origin_slot >= static_cast<int>(od->output_types.size())) {
      problems->push_back(At(ErrorCode::kValidation,
                             "link " + std::to_string(id) + " leaves output slot " +
                                 std::to_string(link.origin_slot) + " of " + origin->type +
                                 ", which has " + std::to_string(od->output_types.size()) +
                                 " outputs",
                             wf.source, origin->id, origin->type, origin->json_pointer));
    } else if (!in_type.empty() && !TypesCompatible(out_type, in_type)) {
      Status st = At(ErrorCode::kTypeMismatch,
                     "input '" + in_name + "' expects " + in_type + " but is linked to " +
                         out_type + " output " + std::to_string(link.origin_slot) + " of node " +
                         origin->id + " (" + origin->type + ")",
                     wf.source, target->id, target->type, target->json_pointer);
      st.where().input_name = in_name;
      problems->push_back(std::move(st));
    }
  }
  for (const UiNode& node : graph.nodes) {
    for (size_t s = 0; s < node.inputs.size(); ++s) {
      const UiInput& in = node.inputs[s];
      if (in.link && graph.FindLink(*in.link) == nullptr) {
        Status st =
            At(ErrorCode::kNotFound,
               "input refers to link " + std::to_string(*in.link) +
                   ", which is not in the links array",
               wf.source, node.id, node.type, node.json_pointer + "/inputs/" + std::to_string(s));
        st.where().input_name = in.name;
        problems->push_back(std::move(st));
      }
    }
    if (defs != nullptr && !node.is_virtual && !wf.IsSubgraphType(node.type) &&
        !wf.GroupNodeName(node.type) && !defs->Has(node.type) && node.mode != kModeNever &&
        node.mode != kModeBypass) {
      problems->push_back(At(ErrorCode::kNotFound,
                             "unknown node type '" + node.type + "': not in the node definitions",
                             wf.source, node.id, node.type, node.json_pointer));
    }
  }
}

// V3 Autogrow / dynamic groups send their members as "<name>.<member>" keys, never "<name>".
bool HasDottedMember(const json& inputs, const InputSpec& spec) {
  if (spec.type.rfind("COMFY_", 0) != 0) return false;
  const std::string prefix = spec.name + ".";
  const auto& members = inputs.get_ref<const json::object_t&>();
  auto it = members.lower_bound(prefix);
  return it != members.end() && it->first.rfind(prefix, 0) == 0;
}

// One node's checks. Returns false when the node or one of its links is malformed (then the
// order and the ports are not computed).
bool ValidatePromptNode(const json& prompt, const std::string& id, const json& node,
                        const NodeDefinitions* defs, const std::string& source,
                        std::vector<Status>* problems) {
  bool structural_ok = true;
  const json& class_type = JsonMember(node, "class_type", JsonNull());
  if (!class_type.is_string()) {
    problems->push_back(At(ErrorCode::kParse, "node must be an object with a string class_type",
                           source, id, "", "/" + id));
    return false;
  }
  const std::string& cls = class_type.get_ref<const std::string&>();
  if (cls.empty()) {
    problems->push_back(At(ErrorCode::kParse, "node has no string 'class_type'", source, id, "",
                           "/" + id + "/class_type"));
    return false;
  }
  const json& inputs = JsonMember(node, "inputs", JsonEmptyObject());
  if (!inputs.is_object()) {
    problems->push_back(
        At(ErrorCode::kParse, "'inputs' must be an object", source, id, cls, "/" + id + "/inputs"));
    return false;
  }
  const NodeDef* def = defs ? defs->Find(cls) : nullptr;
  if (defs != nullptr && def == nullptr) {
    problems->push_back(At(ErrorCode::kNotFound,
                           "unknown node type '" + cls + "': not in the node definitions", source,
                           id, cls, "/" + id));
  }
  for (const auto& [name, value] : inputs.items()) {
    auto link = AsLinkView(value);
    if (!link) continue;
    // Init-captures for the structured bindings: clang < 16 cannot capture them.
    auto report = [&, &name = name](ErrorCode code, std::string message) {
      Status st = At(code, std::move(message), source, id, cls, "/" + id + "/inputs/" + name);
      st.where().input_name = name;
      problems->push_back(std::move(st));
    };
    const std::string& origin_id = *link->node_id;
    auto origin_it = prompt.find(origin_id);
    if (origin_it == prompt.end()) {
      report(ErrorCode::kNotFound, "links to node '" + origin_id + "', which is not in the prompt");
      structural_ok = false;
      continue;
    }
    if (link->slot < 0) {
      report(ErrorCode::kParse, "link has a negative output slot");
      structural_ok = false;
      continue;
    }
    if (def == nullptr) continue;
    const json& origin_class = JsonMember(*origin_it, "class_type", JsonNull());
    if (!origin_class.is_string()) continue;
    const NodeDef* od = defs->Find(origin_class.get_ref<const std::string&>());
    if (od == nullptr) continue;
    if (link->slot < 0 || link->slot >= static_cast<int>(od->output_types.size())) {
      report(ErrorCode::kValidation,
             "links to output slot " + std::to_string(link->slot) + " of node " + origin_id + " (" +
                 od->name + "), which has " + std::to_string(od->output_types.size()) + " outputs");
      continue;
    }
    const InputSpec* in_spec = def->FindInput(name);
    const std::string& out_type = od->output_types[link->slot];
    if (in_spec != nullptr && !in_spec->type.empty() && !TypesCompatible(out_type, in_spec->type)) {
      report(ErrorCode::kTypeMismatch, "expects " + in_spec->type + " but is linked to " +
                                           out_type + " output " + std::to_string(link->slot) +
                                           " of node " + origin_id + " (" + od->name + ")");
    }
  }
  if (def != nullptr) {
    for (const InputSpec& spec : def->inputs) {
      if (spec.required && !inputs.contains(spec.name) && !HasDottedMember(inputs, spec)) {
        Status st = At(ErrorCode::kValidation, "required input '" + spec.name + "' is missing",
                       source, id, cls, "/" + id + "/inputs");
        st.where().input_name = spec.name;
        problems->push_back(std::move(st));
      }
    }
  }
  return structural_ok;
}

void ValidatePrompt(const json& prompt, const NodeDefinitions* defs, const std::string& source,
                    std::vector<Status>* problems) {
  if (!prompt.is_object() || prompt.empty()) {
    problems->push_back(
        At(ErrorCode::kParse, "an API prompt must be a non-empty object of nodes", source));
    return;
  }
  // Nodes are checked independently (in parallel for large prompts); problems are reported in
  // the prompt's order.
  std::vector<std::pair<const std::string*, const json*>> nodes;
  nodes.reserve(prompt.size());
  for (auto it = prompt.begin(); it != prompt.end(); ++it) nodes.emplace_back(&it.key(), &*it);
  std::vector<std::vector<Status>> node_problems(nodes.size());
  std::vector<char> node_ok(nodes.size(), 1);
  Status crashed = ForEachIndex(nodes.size(), [&](size_t i) {
    node_ok[i] = ValidatePromptNode(prompt, *nodes[i].first, *nodes[i].second, defs, source,
                                    &node_problems[i]);
    return Status::Ok();
  });
  if (!crashed.ok()) {
    problems->push_back(std::move(crashed));
    return;
  }
  bool structural_ok = true;
  for (size_t i = 0; i < nodes.size(); ++i) {
    structural_ok &= node_ok[i] != 0;
    for (Status& st : node_problems[i]) problems->push_back(std::move(st));
  }
  // The loop above made ValidateApiPrompt's checks: the order and the ports skip them.
  if (!structural_ok) return;
  auto order = TopologicalOrderOfCheckedPrompt(prompt);
  if (!order.ok()) {
    Status st = order.TakeStatus();
    st.where().workflow = source;
    problems->push_back(std::move(st));
  }
  auto ports = DiscoverPortsOfCheckedPrompt(prompt, ObjectInfoOf(defs));
  if (!ports.ok()) {
    Status st = ports.TakeStatus();
    st.where().workflow = source;
    problems->push_back(std::move(st));
  }
}

}  // namespace

std::vector<Status> ValidateWorkflow(const json& doc, const NodeDefinitions* defs,
                                     const std::string& source_name) {
  std::vector<Status> problems;
  try {
    const WorkflowFormat format = DetectFormat(doc);
    if (format == WorkflowFormat::kApi) {
      const bool body = doc.contains("prompt") && doc["prompt"].is_object() &&
                        !doc["prompt"].contains("class_type");
      ValidatePrompt(body ? doc["prompt"] : doc, defs, source_name, &problems);
      return problems;
    }
    if (format == WorkflowFormat::kUnknown) {
      problems.push_back(At(ErrorCode::kParse,
                            "not a ComfyUI workflow: expected a UI workflow (with 'nodes') or an "
                            "API prompt",
                            source_name));
      return problems;
    }
    auto parsed = ParseUiWorkflow(doc, source_name);
    if (!parsed.ok()) {
      problems.push_back(parsed.TakeStatus());
      return problems;
    }
    ValidateUiGraph(*parsed, parsed->root, defs, &problems);
    for (const auto& [id, graph] : parsed->subgraphs) {
      ValidateUiGraph(*parsed, graph, defs, &problems);
    }
    auto order = TopologicalOrder(parsed->root);
    if (!order.ok()) {
      Status st = order.TakeStatus();
      st.where().workflow = source_name;
      problems.push_back(std::move(st));
    }
    auto ports = DiscoverUiPorts(*parsed);
    if (!ports.ok()) problems.push_back(ports.TakeStatus());
    if (defs != nullptr && problems.empty()) {
      ConvertOptions options;
      options.source_name = source_name;
      auto prompt = ConvertUiToApi(*parsed, *defs, options);
      if (!prompt.ok()) {
        problems.push_back(prompt.TakeStatus());
      } else {
        ValidatePrompt(*prompt, defs, source_name, &problems);
      }
    }
  } catch (const std::exception& e) {
    problems.push_back(
        At(ErrorCode::kInternal, std::string("validation failed: ") + e.what(), source_name));
  }
  return problems;
}

}  // namespace discomfort::graph
