// Golden UI→API pairs from ComfyUI_examples (tests/data/ui_to_api): every pair converts to the
// prompt the UI produced, compared by the rule in that folder's README.
#include <cmath>
#include <filesystem>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "graph/api_prompt.h"
#include "graph/ui_to_api.h"
#include "test_util.h"

namespace discomfort::graph {
namespace {

using nlohmann::json;
using testing::V033Definitions;

std::vector<std::string> GoldenNames() { return testing::GoldenWorkflowNames(); }

bool ValuesMatch(const json& golden, const json& candidate) {
  if (golden.is_number() && candidate.is_number()) {
    const double a = golden.get<double>(), b = candidate.get<double>();
    return a == b || std::fabs(a - b) <= 1e-9 * std::max(std::fabs(a), std::fabs(b));
  }
  // The server unwraps {"__value__": [...]} before it stores the prompt.
  if (candidate.is_object() && candidate.size() == 1 && candidate.contains("__value__")) {
    return ValuesMatch(golden, candidate["__value__"]);
  }
  if (golden.is_array() && candidate.is_array()) {
    if (golden.size() != candidate.size()) return false;
    for (size_t i = 0; i < golden.size(); ++i) {
      if (!ValuesMatch(golden[i], candidate[i])) return false;
    }
    return true;
  }
  return golden == candidate;
}

// Differences between a golden prompt and a converted one, one line each (empty when equal).
std::vector<std::string> ComparePrompts(const json& golden, const json& candidate) {
  // The upload button (named "choose file to upload" by 2023 frontends) and preview widgets are
  // frontend-only; old frontends sent them, the server ignores them.
  static const std::set<std::string> kFrontendOnlyKeys = {"upload", "choose file to upload",
                                                          "video-preview"};
  std::vector<std::string> diffs;
  for (const auto& [id, node] : golden.items()) {
    if (!candidate.contains(id)) {
      diffs.push_back("missing node " + id + " (" + node.value("class_type", "") + ")");
      continue;
    }
    const json& cand = candidate[id];
    if (cand["class_type"] != node["class_type"]) {
      diffs.push_back("node " + id + ": class_type " + cand["class_type"].dump() +
                      " != " + node["class_type"].dump());
    }
    const json golden_inputs = node.value("inputs", json::object());
    for (const auto& [name, value] : golden_inputs.items()) {
      if (kFrontendOnlyKeys.count(name)) continue;
      if (!cand["inputs"].contains(name)) {
        diffs.push_back("node " + id + " input '" + name + "' missing, golden " + value.dump());
      } else if (!ValuesMatch(value, cand["inputs"][name])) {
        diffs.push_back("node " + id + " input '" + name + "': got " + cand["inputs"][name].dump() +
                        ", golden " + value.dump());
      }
    }
  }
  // Extra widget inputs may come from a newer node definition, but an extra link never does.
  for (const auto& [id, node] : candidate.items()) {
    if (!golden.contains(id)) continue;
    const json golden_inputs = golden[id].value("inputs", json::object());
    for (const auto& [name, value] : node["inputs"].items()) {
      if (!golden_inputs.contains(name) && IsLink(value)) {
        diffs.push_back("node " + id + " input '" + name + "': extra link " + value.dump());
      }
    }
  }
  for (const auto& [id, node] : candidate.items()) {
    if (!golden.contains(id)) {
      diffs.push_back("extra node " + id + " (" + node.value("class_type", "") + ")");
    }
  }
  return diffs;
}

class GoldenPairTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenPairTest, ConvertsToTheGoldenPrompt) {
  const json workflow = testing::LoadJsonOrDie(testing::GoldenPairPath(GetParam(), "workflow"));
  const json golden = testing::LoadJsonOrDie(testing::GoldenPairPath(GetParam(), "prompt"));
  ConvertOptions options;
  options.source_name = GetParam();
  auto converted = ConvertUiToApi(workflow, V033Definitions(), options);
  if (!converted.ok()) {
    const Status& st = converted.status();
    // A pair made with nodes that v0.33.0 lacks must fail with the unknown-node error.
    if (st.code() == ErrorCode::kNotFound &&
        st.message().find("unknown node type") != std::string::npos &&
        !V033Definitions().Has(st.where().class_type)) {
      GTEST_SKIP() << "node type missing from ComfyUI v0.33.0: " << st.where().class_type;
    }
    FAIL() << st.ToString();
  }
  const std::vector<std::string> diffs = ComparePrompts(golden, *converted);
  std::ostringstream report;
  for (const std::string& d : diffs) report << "  " << d << "\n";
  EXPECT_TRUE(diffs.empty()) << GetParam() << ":\n" << report.str();
}

INSTANTIATE_TEST_SUITE_P(UiToApi, GoldenPairTest, ::testing::ValuesIn(GoldenNames()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

// The corpus is checked in: a missing or emptied folder fails here instead of running no pairs.
TEST(GoldenPairs, DataIsPresent) {
  const std::vector<std::string> names = GoldenNames();
  EXPECT_EQ(names.size(), 89u) << "golden pairs in " << testing::TestDataPath("ui_to_api");
  for (const std::string& name : names) {
    EXPECT_TRUE(std::filesystem::exists(testing::GoldenPairPath(name, "prompt")))
        << name << " has a workflow but no prompt";
  }
}

}  // namespace
}  // namespace discomfort::graph
