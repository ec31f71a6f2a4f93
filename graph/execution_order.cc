#include "graph/execution_order.h"

#include <algorithm>
#include <functional>
#include <queue>
#include <span>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "graph/api_prompt.h"
#include "graph/parallel.h"

namespace discomfort::graph {
namespace {

using nlohmann::json;

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
  // A cycle to report: depth-first among the nodes left unordered until one repeats.
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

}  // namespace

bool NodeIdLess(const std::string& a, const std::string& b) {
  auto numeric = [](const std::string& s) {
    return !s.empty() && s.size() < 19 && std::all_of(s.begin(), s.end(), ::isdigit);
  };
  if (numeric(a) && numeric(b)) return std::stoll(a) < std::stoll(b);
  return a < b;
}

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

}  // namespace discomfort::graph
