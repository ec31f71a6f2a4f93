#include "graph/ui_json_edit.h"

#include <algorithm>
#include <map>
#include <utility>
#include <vector>

namespace discomfort::graph {

using nlohmann::json;

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

}  // namespace discomfort::graph
