// Shared by the libFuzzer targets: JSON from the fuzzer's bytes, the committed node definitions,
// and splitting one input into several documents.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "graph/node_definitions.h"

namespace discomfort::fuzz {

// The bytes as JSON; discarded (is_discarded()) when they are not JSON.
inline nlohmann::json ParseOrDiscard(std::string_view text) {
  return nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
}

// tests/data/object_info_v0.33.0.json, loaded once (DISCOMFORT_FUZZ_OBJECT_INFO overrides).
inline const graph::NodeDefinitions& Definitions() {
  static const graph::NodeDefinitions* defs = [] {
    const char* env = std::getenv("DISCOMFORT_FUZZ_OBJECT_INFO");
    std::string path = env ? env : DISCOMFORT_SOURCE_DIR "/tests/data/object_info_v0.33.0.json";
    auto loaded = graph::NodeDefinitions::LoadFile(path);
    if (!loaded.ok()) {
      fprintf(stderr, "fuzz: cannot load %s: %s\n", path.c_str(),
              loaded.status().ToString().c_str());
      std::abort();
    }
    return new graph::NodeDefinitions(std::move(loaded).value());
  }();
  return *defs;
}

// Documents separated by a line holding only "@@@@" (seed corpora use the same separator).
inline std::vector<std::string_view> SplitDocuments(std::string_view text, size_t max_parts = 4) {
  static constexpr std::string_view kSeparator = "\n@@@@\n";
  std::vector<std::string_view> parts;
  while (parts.size() + 1 < max_parts) {
    size_t at = text.find(kSeparator);
    if (at == std::string_view::npos) break;
    parts.push_back(text.substr(0, at));
    text.remove_prefix(at + kSeparator.size());
  }
  parts.push_back(text);
  return parts;
}

}  // namespace discomfort::fuzz
