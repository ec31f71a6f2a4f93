// Shared helpers for the graph tests: paths to the test data and JSON loading.
#pragma once

#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "graph/node_definitions.h"
#include "graph/workflow.h"

namespace discomfort::graph::testing {

inline std::string SharedPath(const std::string& relative) {
  return std::string(DISCOMFORT_SHARED_DIR) + "/" + relative;
}

inline std::string SourcePath(const std::string& relative) {
  return std::string(DISCOMFORT_SOURCE_DIR) + "/" + relative;
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

}  // namespace discomfort::graph::testing
