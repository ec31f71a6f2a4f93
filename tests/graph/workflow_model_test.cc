// Format detection, the UI workflow model, node definitions (widget order and extra slots).
#include <chrono>

#include <gtest/gtest.h>

#include "generated_workflow.h"
#include "graph/ui_to_api.h"
#include "graph/workflow.h"
#include "graph/workflow_ops.h"
#include "test_util.h"

namespace discomfort::graph {
namespace {

using nlohmann::json;

TEST(DetectFormat, RecognisesEachShape) {
  EXPECT_EQ(DetectFormat(json::parse(R"({"nodes": [], "links": [], "version": 0.4})")),
            WorkflowFormat::kUiV04);
  EXPECT_EQ(DetectFormat(json::parse(R"({"nodes": [], "links": [], "version": 1})")),
            WorkflowFormat::kUiV1);
  EXPECT_EQ(DetectFormat(json::parse(R"({"nodes": [], "links": [{"id": 1}]})")),
            WorkflowFormat::kUiV1);
  const json api = json::parse(R"({"3": {"class_type": "KSampler", "inputs": {}}})");
  EXPECT_EQ(DetectFormat(api), WorkflowFormat::kApi);
  EXPECT_EQ(DetectFormat(json{{"prompt", api}}), WorkflowFormat::kApi);
  EXPECT_EQ(DetectFormat(json::parse(R"({"3": {"inputs": {}}})")), WorkflowFormat::kUnknown);
  EXPECT_EQ(DetectFormat(json::array()), WorkflowFormat::kUnknown);
  EXPECT_EQ(DetectFormat(json::object()), WorkflowFormat::kUnknown);
}

TEST(ParseUiWorkflow, NormalisesIdsSlotsAndLinks) {
  auto wf = ParseUiWorkflow(json::parse(R"json({"version": 0.4,
    "nodes": [{"id": "a", "type": "X", "mode": 4, "title": "T",
               "inputs": [{"name": "in", "type": "INT", "link": "7", "widget": {"name": "in"}}],
               "outputs": [{"name": "out", "type": "INT", "links": null}]},
              {"id": 2.0, "type": "Y"}],
    "links": [[7, 2, "0", "a", 0, "INT"], null]})json"));
  ASSERT_TRUE(wf.ok()) << wf.status().ToString();
  const UiNode* a = wf->root.FindNode("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->mode, kModeBypass);
  EXPECT_EQ(*a->title, "T");
  EXPECT_EQ(a->inputs[0].link, 7);
  EXPECT_EQ(a->inputs[0].widget_name, "in");
  EXPECT_TRUE(a->outputs[0].links.empty());
  ASSERT_NE(wf->root.FindNode("2"), nullptr);
  const UiLink* link = wf->root.FindLink(7);
  ASSERT_NE(link, nullptr);
  EXPECT_EQ(link->origin_id, "2");
  EXPECT_EQ(link->origin_slot, 0);
  EXPECT_EQ(link->target_id, "a");
}

TEST(ParseUiWorkflow, ErrorsCarryAJsonPointer) {
  auto wf = ParseUiWorkflow(
      json::parse(R"({"nodes": [{"id": 1, "type": "A"}, {"id": 1, "type": "B"}]})"), "dup.json");
  ASSERT_FALSE(wf.ok());
  EXPECT_EQ(wf.status().where().json_pointer, "/nodes/1");
  EXPECT_EQ(wf.status().where().workflow, "dup.json");
  wf = ParseUiWorkflow(json::parse(
      R"({"nodes": [{"id": 1, "type": "A", "inputs": [{"name": "x", "link": "abc"}]}]})"));
  ASSERT_FALSE(wf.ok());
  EXPECT_EQ(wf.status().where().json_pointer, "/nodes/0/inputs/0/link");
  EXPECT_FALSE(ParseUiWorkflow(json::parse(R"({"3": {"class_type": "A"}})")).ok());
}

TEST(TypesCompatible, FollowsLitegraph) {
  EXPECT_TRUE(TypesCompatible("*", "IMAGE"));
  EXPECT_TRUE(TypesCompatible("", "IMAGE"));
  EXPECT_TRUE(TypesCompatible("image", "IMAGE"));
  EXPECT_TRUE(TypesCompatible("INT,FLOAT", "FLOAT"));
  EXPECT_FALSE(TypesCompatible("INT,FLOAT", "STRING"));
  EXPECT_FALSE(TypesCompatible("MODEL", "VAE"));
}

TEST(NodeDefinitions, WidgetOrderAndExtraSlots) {
  const NodeDefinitions& defs = testing::V033Definitions();
  EXPECT_GT(defs.size(), 600u);
  const NodeDef* ks = defs.Find("KSampler");
  ASSERT_NE(ks, nullptr);
  std::vector<std::string> names;
  for (const WidgetSpec& w : ks->widgets) names.push_back(w.name);
  EXPECT_EQ(names, (std::vector<std::string>{"seed", "steps", "cfg", "sampler_name", "scheduler",
                                             "denoise"}));
  EXPECT_EQ(ks->widgets[0].control_slots, 1);
  EXPECT_EQ(ks->widgets[1].control_slots, 0);
  EXPECT_EQ(ks->InputType("sampler_name"), "COMBO");
  EXPECT_EQ(ks->InputType("model"), "MODEL");
  EXPECT_EQ(ks->output_types, (std::vector<std::string>{"LATENT"}));

  const NodeDef* load = defs.Find("LoadImage");
  ASSERT_NE(load, nullptr);
  ASSERT_EQ(load->widgets.size(), 2u);
  EXPECT_EQ(load->widgets[1].name, "upload");
  EXPECT_FALSE(load->widgets[1].to_prompt);

  const NodeDef* port = defs.Find("DiscomfortPort");
  ASSERT_NE(port, nullptr);
  names.clear();
  for (const WidgetSpec& w : port->widgets) names.push_back(w.name);
  EXPECT_EQ(names, (std::vector<std::string>{"unique_id", "tags"}));
  EXPECT_EQ(port->widgets[0].default_value, "port1");
  EXPECT_FALSE(port->FindInput("input_data")->is_widget);
}

TEST(NodeDefinitions, FallbackOrderNameRuleAndForceInput) {
  // nlohmann::json keeps keys sorted, so without input_order the order is required then optional,
  // each alphabetical.
  auto defs = NodeDefinitions::FromJson(json::parse(R"json({
    "N": {"input": {"required": {"seed": ["INT", {}], "b": ["STRING", {}], "m": ["MODEL", {}]},
                    "optional": {"a": ["FLOAT", {"control_after_generate": true}],
                                 "f": ["INT", {"forceInput": true}],
                                 "c": ["COMBO", {"options": ["x", "y"], "control_after_generate": "fixed"}]}},
          "output": ["MODEL"]}})json"));
  ASSERT_TRUE(defs.ok()) << defs.status().ToString();
  const NodeDef* n = defs->Find("N");
  std::vector<std::pair<std::string, int>> widgets;
  for (const WidgetSpec& w : n->widgets) widgets.push_back({w.name, w.control_slots});
  EXPECT_EQ(widgets,
            (std::vector<std::pair<std::string, int>>{{"b", 0}, {"seed", 1}, {"a", 1}, {"c", 2}}));
  EXPECT_EQ(n->FindWidget("c")->default_value, "x");
  EXPECT_TRUE(n->FindInput("f")->force_input);
  EXPECT_FALSE(n->FindInput("f")->is_widget);

  auto bad =
      NodeDefinitions::FromJson(json::parse(R"({"Bad": {"input": {"required": {"x": 5}}}})"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().where().class_type, "Bad");
  EXPECT_EQ(bad.status().where().input_name, "x");
}

// A generated chain of 1,000 nodes converts and validates; the figure is printed for the record
// (this is usually a Debug build; the release figure is in the module's report).
TEST(Performance, ThousandNodeWorkflow) {
  json ui = {{"version", 0.4}, {"nodes", json::array()}, {"links", json::array()}};
  ui["nodes"].push_back({{"id", 1},
                         {"type", "EmptyLatentImage"},
                         {"widgets_values", {512, 512, 1}},
                         {"outputs", {{{"name", "LATENT"}, {"type", "LATENT"}, {"links", {1}}}}}});
  for (int i = 2; i <= 1000; ++i) {
    ui["nodes"].push_back(
        {{"id", i},
         {"type", "LatentUpscale"},
         {"widgets_values", {"bilinear", 512, 512, "disabled"}},
         {"inputs", {{{"name", "samples"}, {"type", "LATENT"}, {"link", i - 1}}}},
         {"outputs", {{{"name", "LATENT"}, {"type", "LATENT"}, {"links", {i}}}}}});
    ui["links"].push_back({i - 1, i - 1, 0, i, 0, "LATENT"});
  }
  const NodeDefinitions& defs = testing::V033Definitions();
  const auto start = std::chrono::steady_clock::now();
  auto prompt = ConvertUiToApi(ui, defs);
  ASSERT_TRUE(prompt.ok()) << prompt.status().ToString();
  const auto converted = std::chrono::steady_clock::now();
  const auto problems = ValidateWorkflow(*prompt, &defs);
  const auto validated = std::chrono::steady_clock::now();
  EXPECT_TRUE(problems.empty());
  EXPECT_EQ(prompt->size(), 1000u);
  EXPECT_EQ((*prompt)["1000"]["inputs"]["samples"], json::array({"999", 0}));
  using std::chrono::duration;
  std::cout << "[ perf     ] convert 1000 nodes: "
            << duration<double, std::milli>(converted - start).count()
            << " ms, validate: " << duration<double, std::milli>(validated - converted).count()
            << " ms\n";
}

// The benchmark's generated workflow (benchmarks/graph/) converts as designed: 8 API nodes per
// 10-node block, the bypassed LoRA rewired to the checkpoint, the VAE through the Reroute, the
// seed from the PrimitiveNode, and the result validates.
TEST(Performance, GeneratedBenchmarkWorkflowConvertsAsDesigned) {
  const json ui = testing::GeneratedWorkflow(100);
  ASSERT_EQ(ui["nodes"].size(), 1000u);
  const NodeDefinitions& defs = testing::V033Definitions();
  auto prompt = ConvertUiToApi(ui, defs);
  ASSERT_TRUE(prompt.ok()) << prompt.status().ToString();
  EXPECT_EQ(prompt->size(), 800u);
  EXPECT_TRUE(ValidateWorkflow(*prompt, &defs).empty());
  // Block 0 (ids 1..10, Reroute) and block 1 (ids 11..20, PrimitiveNode).
  EXPECT_FALSE(prompt->contains("2"));  // bypassed LoRA
  EXPECT_EQ((*prompt)["6"]["inputs"]["model"], json::array({"1", 0}));
  EXPECT_EQ((*prompt)["3"]["inputs"]["clip"], json::array({"1", 1}));
  EXPECT_EQ((*prompt)["7"]["inputs"]["vae"], json::array({"1", 2}));
  EXPECT_EQ((*prompt)["6"]["inputs"]["seed"], 1000);
  EXPECT_EQ((*prompt)["16"]["inputs"]["seed"], 78);
  EXPECT_EQ((*prompt)["13"]["_meta"]["title"], "Positive 1");
}

}  // namespace
}  // namespace discomfort::graph
