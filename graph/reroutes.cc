#include "graph/reroutes.h"

#include <set>
#include <string>
#include <utility>

#include "graph/ui_json_edit.h"
#include "graph/workflow.h"

namespace discomfort::graph {

using nlohmann::json;

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

}  // namespace discomfort::graph
