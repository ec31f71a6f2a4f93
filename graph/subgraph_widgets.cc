#include "graph/subgraph_widgets.h"

#include <string>
#include <string_view>

namespace discomfort::graph {
namespace {

using nlohmann::json;
using namespace std::string_view_literals;

// Whether instance input `k` of `def` ends at a widget inside (a socket saved as a widget, or an
// input the inner node's definition draws as one).
bool InputFeedsWidget(const UiGraph& def, size_t k, const UiNode& instance,
                      const NodeDefinitions& defs) {
  if (k < instance.inputs.size() && !instance.inputs[k].widget_name.empty()) return true;
  for (int64_t id : def.inputs[k].link_ids) {
    const UiLink* link = def.FindLink(id);
    if (link == nullptr) continue;
    const UiNode* target = def.FindNode(link->target_id);
    if (target == nullptr) continue;
    int idx = target->InputIndexOfLink(id);
    if (idx < 0) idx = link->target_slot;
    if (idx < 0 || idx >= static_cast<int>(target->inputs.size())) continue;
    const UiInput& in = target->inputs[idx];
    if (!in.widget_name.empty()) return true;
    if (const NodeDef* nd = defs.Find(target->type); nd && nd->FindWidget(in.name)) return true;
  }
  return false;
}

}  // namespace

void ReadSubgraphWidgetValues(const UiGraph& def, const UiNode& node, const NodeDefinitions& defs,
                              std::vector<std::optional<json>>* promoted,
                              InnerWidgetValues* overrides) {
  const json& wv = *node.widgets_values;
  // proxyWidgets era: values positional over properties.proxyWidgets.
  const json& proxies = JsonMember(*node.properties, "proxyWidgets", JsonNull());
  if (proxies.is_array() && !proxies.empty()) {
    if (!wv.is_array()) return;
    for (size_t i = 0; i < proxies.size() && i < wv.size(); ++i) {
      const json& p = proxies[i];
      if (!p.is_array() || p.size() < 2 || !p[1].is_string()) continue;
      auto inner = NodeIdToString(p[0]);
      if (!inner || *inner == "-1"sv || wv[i].is_null()) continue;
      (*overrides)[*inner][p[1].get<std::string>()] = wv[i];
    }
    return;
  }
  // io-widget era: one value per instance input that feeds an inner widget.
  promoted->assign(def.inputs.size(), std::nullopt);
  size_t next = 0;
  for (size_t k = 0; k < def.inputs.size(); ++k) {
    if (!InputFeedsWidget(def, k, node, defs)) continue;
    const size_t at = next++;
    if (wv.is_array() && at < wv.size()) {
      (*promoted)[k] = wv[at];
    } else if (wv.is_object() && wv.contains(def.inputs[k].name)) {
      (*promoted)[k] = wv[def.inputs[k].name];
    }
  }
}

}  // namespace discomfort::graph
