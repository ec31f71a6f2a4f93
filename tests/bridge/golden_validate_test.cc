// End to end for graph/'s UI→API conversion: the golden UI workflows (tests/data/ui_to_api)
// converted with the running ComfyUI's own node definitions pass ComfyUI's validate_prompt. The
// test machine has no models or example images, so the only failures accepted are file-name
// combos whose value is not installed (value_not_in_list); anything else fails the test.
#include <algorithm>
#include <filesystem>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <pybind11/pybind11.h>

#include "graph/node_definitions.h"
#include "graph/ui_to_api.h"
#include "graph/workflow.h"
#include "tests/bridge/comfy_environment.h"
#include "tests/graph/test_util.h"

namespace discomfort {
namespace {

namespace py = pybind11;
using nlohmann::json;

// ComfyUI's validate_prompt through the bridge's Python host, with every node error (the bridge's
// Validate keeps only the first).
json ValidateAll(const json& prompt) {
  py::gil_scoped_acquire gil;
  py::module_ pyjson = py::module_::import("json");
  py::object host = py::module_::import("discomfort_bridge").attr("HOST");
  py::object result = host.attr("validate")(pyjson.attr("loads")(prompt.dump()));
  return json::parse(pyjson.attr("dumps")(result, py::arg("default") = py::str().attr("__class__"))
                         .cast<std::string>());
}

std::vector<std::string> GoldenNames() { return graph::testing::GoldenWorkflowNames(); }

// A value naming a file: "model.safetensors", "subdir/x.png".
bool LooksLikeFileName(const json& value) {
  static const std::regex kFile(R"(.*\.[A-Za-z0-9]{2,12}$)");
  return value.is_string() && std::regex_match(value.get<std::string>(), kFile);
}

TEST(GoldenValidate, ConvertedGoldenWorkflowsPassComfyValidation) {
  auto info = testing::Comfy().ObjectInfo();
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  auto defs = graph::NodeDefinitions::FromJson(*info);
  ASSERT_TRUE(defs.ok()) << defs.status().ToString();

  const std::vector<std::string> names = GoldenNames();
  ASSERT_FALSE(names.empty()) << "no golden pairs in " << graph::testing::TestDataPath("ui_to_api");
  int validated = 0, clean = 0, missing_nodes = 0, missing_files = 0;
  for (const std::string& name : names) {
    SCOPED_TRACE(name);
    auto ui = graph::LoadJsonFile(graph::testing::GoldenPairPath(name, "workflow"));
    ASSERT_TRUE(ui.ok()) << ui.status().ToString();
    graph::ConvertOptions options;
    options.source_name = name;
    auto prompt = graph::ConvertUiToApi(*ui, *defs, options);
    if (!prompt.ok()) {
      // Only workflows whose nodes this ComfyUI lacks may fail to convert.
      EXPECT_EQ(prompt.status().code(), ErrorCode::kNotFound) << prompt.status().ToString();
      EXPECT_NE(prompt.status().message().find("unknown node type"), std::string::npos)
          << prompt.status().ToString();
      ++missing_nodes;
      continue;
    }
    const json result = ValidateAll(*prompt);
    ++validated;
    if (result.value("ok", false)) {
      ++clean;
      continue;
    }
    const json& error = result["error"];
    EXPECT_EQ(error.value("type", ""), "prompt_outputs_failed_validation") << result.dump();
    const json& node_errors = result["node_errors"];
    EXPECT_FALSE(node_errors.empty()) << result.dump();
    for (const auto& [node_id, entry] : node_errors.items()) {
      const std::string class_type = entry.value("class_type", "");
      const graph::NodeDef* def = defs->Find(class_type);
      ASSERT_NE(def, nullptr) << node_id;
      for (const json& e : entry["errors"]) {
        const json& extra = e.value("extra_info", json::object());
        const std::string input = extra.value("input_name", "");
        const graph::InputSpec* spec = def->FindInput(input);
        const json& inputs = (*prompt)[node_id]["inputs"];
        const json sent = inputs.contains(input) ? inputs[input] : json();
        const std::string type = e.value("type", "");
        const std::string details = e.value("details", "");
        EXPECT_TRUE(spec != nullptr && spec->type == "COMBO")
            << "node " << node_id << " input '" << input << "' is not a combo: " << e.dump();
        EXPECT_TRUE(LooksLikeFileName(sent))
            << "node " << node_id << " input '" << input << "' is not a file name: " << e.dump();
        if (type == "value_not_in_list") {
          EXPECT_EQ(extra.value("received_value", json()), sent) << e.dump();
        } else {
          // LoadImage / LoadImageMask check the file in VALIDATE_INPUTS: "Invalid image file: X".
          EXPECT_EQ(type, "custom_validation_failed")
              << "node " << node_id << " (" << class_type << "): " << e.dump();
          EXPECT_NE(details.find("Invalid image file: " +
                                 (sent.is_string() ? sent.get<std::string>() : sent.dump())),
                    std::string::npos)
              << "node " << node_id << " (" << class_type << "): " << e.dump();
        }
      }
    }
    ++missing_files;
  }
  std::printf(
      "[ golden   ] %d converted and validated (%d clean, %d only missing files), "
      "%d need node types this ComfyUI lacks\n",
      validated, clean, missing_files, missing_nodes);
  // Most of the corpus uses core nodes: a collapse here means conversion broke, not the data.
  EXPECT_GE(validated, 70);
}

// V3 dynamic inputs as the converter names them: a DynamicCombo's option widget
// ("source_stats.target_index") and Autogrow sockets ("images.image0") validate in ComfyUI.
TEST(GoldenValidate, V3DynamicInputNamesValidate) {
  auto info = testing::Comfy().ObjectInfo();
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  auto defs = graph::NodeDefinitions::FromJson(*info);
  ASSERT_TRUE(defs.ok()) << defs.status().ToString();
  if (!defs->Has("ColorTransfer") || !defs->Has("BatchImagesNode")) {
    GTEST_SKIP() << "this ComfyUI has no ColorTransfer / BatchImagesNode (V3 dynamic inputs)";
  }
  const json ui = json::parse(R"json({"version": 0.4, "nodes": [
      {"id": 1, "type": "EmptyImage", "widgets_values": [64, 64, 1, 0],
       "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1, 2, 3]}]},
      {"id": 2, "type": "ColorTransfer", "widgets_values": ["mkl_lab", "target_frame", 0, 0.5],
       "inputs": [{"name": "image_target", "type": "IMAGE", "link": 1},
                  {"name": "image_ref", "type": "IMAGE", "link": 2}],
       "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [4]}]},
      {"id": 3, "type": "BatchImagesNode",
       "inputs": [{"name": "images.image0", "type": "IMAGE", "link": 3},
                  {"name": "images.image1", "type": "IMAGE", "link": 4}],
       "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [5]}]},
      {"id": 4, "type": "PreviewImage", "inputs": [{"name": "images", "type": "IMAGE", "link": 5}]}],
    "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 1, 0, 2, 1, "IMAGE"], [3, 1, 0, 3, 0, "IMAGE"],
              [4, 2, 0, 3, 1, "IMAGE"], [5, 3, 0, 4, 0, "IMAGE"]]})json");
  auto prompt = graph::ConvertUiToApi(ui, *defs);
  ASSERT_TRUE(prompt.ok()) << prompt.status().ToString();
  ASSERT_EQ((*prompt)["2"]["inputs"]["source_stats.target_index"], 0);
  const json result = ValidateAll(*prompt);
  EXPECT_TRUE(result.value("ok", false)) << result.dump();
  // The sub-widget's value is checked by ComfyUI under its dotted name.
  json bad = *prompt;
  bad["2"]["inputs"]["source_stats.target_index"] = -5;
  const json rejected = ValidateAll(bad);
  ASSERT_FALSE(rejected.value("ok", true)) << rejected.dump();
  EXPECT_EQ(rejected["node_errors"]["2"]["errors"][0]["extra_info"]["input_name"],
            "source_stats.target_index")
      << rejected.dump();
}

}  // namespace
}  // namespace discomfort
