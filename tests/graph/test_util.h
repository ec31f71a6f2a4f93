// Shared helpers for the graph tests: paths to the test data and JSON loading.
#pragma once

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "graph/node_definitions.h"
#include "graph/workflow.h"

namespace discomfort::graph::testing {

inline std::string SourcePath(const std::string& relative) {
  return std::string(DISCOMFORT_SOURCE_DIR) + "/" + relative;
}

// The repository's test data folder (tests/data/README.md says where each file came from).
inline std::string TestDataPath(const std::string& relative) {
  return SourcePath("tests/data/" + relative);
}

inline nlohmann::json LoadJsonOrDie(const std::string& path) {
  auto doc = LoadJsonFile(path);
  if (!doc.ok()) {
    ADD_FAILURE() << doc.status().ToString();
    return nlohmann::json();
  }
  return std::move(doc).value();
}

// The committed /object_info dump of ComfyUI v0.33.0, loaded once.
inline const NodeDefinitions& V033Definitions() {
  static const NodeDefinitions* defs = [] {
    auto loaded = NodeDefinitions::LoadFile(SourcePath("tests/data/object_info_v0.33.0.json"));
    if (!loaded.ok()) {
      ADD_FAILURE() << loaded.status().ToString();
      return new NodeDefinitions();
    }
    return new NodeDefinitions(std::move(loaded).value());
  }();
  return *defs;
}

// The golden UI/API pairs in tests/data/ui_to_api, "<name>.workflow.json" and "<name>.prompt.json":
// the names, sorted. Empty when the folder is missing; the suites using it fail on an empty list.
inline std::string GoldenPairPath(const std::string& name, const std::string& kind) {
  return TestDataPath("ui_to_api/" + name + "." + kind + ".json");
}

inline std::vector<std::string> GoldenWorkflowNames() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(TestDataPath("ui_to_api"), ec)) {
    const std::string file = entry.path().filename().string();
    const std::string suffix = ".workflow.json";
    if (file.size() > suffix.size() && file.ends_with(suffix)) {
      names.push_back(file.substr(0, file.size() - suffix.size()));
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace discomfort::graph::testing
