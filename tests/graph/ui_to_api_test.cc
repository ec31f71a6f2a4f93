// Hand-written cases for each UI→API rule (shared/notes/ui_to_api.md), with the v0.33.0 node
// definitions, plus inline definitions for rules no core node exercises.
#include <gtest/gtest.h>

#include "graph/api_prompt.h"
#include "graph/ui_to_api.h"
#include "test_util.h"

namespace discomfort::graph {
namespace {

using nlohmann::json;
using testing::SourcePath;
using testing::V033Definitions;

json Convert(const json& ui, const NodeDefinitions& defs = V033Definitions()) {
  auto result = ConvertUiToApi(ui, defs);
  EXPECT_TRUE(result.ok()) << result.status().ToString();
  return result.ok() ? *result : json();
}

// A small txt2img graph: checkpoint(4) -> encoders(6,7) -> KSampler(3) <- latent(5) -> decode(8)
// -> save(9).
json Txt2Img() {
  return json::parse(R"json({
    "last_node_id": 9, "last_link_id": 9, "version": 0.4,
    "nodes": [
      {"id": 4, "type": "CheckpointLoaderSimple", "mode": 0,
       "outputs": [{"name": "MODEL", "type": "MODEL", "links": [1]},
                   {"name": "CLIP", "type": "CLIP", "links": [3, 5]},
                   {"name": "VAE", "type": "VAE", "links": [8]}],
       "widgets_values": ["v1-5.safetensors"]},
      {"id": 6, "type": "CLIPTextEncode", "mode": 0, "title": "Positive",
       "inputs": [{"name": "clip", "type": "CLIP", "link": 3}],
       "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "links": [4]}],
       "widgets_values": ["a cat"]},
      {"id": 7, "type": "CLIPTextEncode", "mode": 0,
       "inputs": [{"name": "clip", "type": "CLIP", "link": 5}],
       "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "links": [6]}],
       "widgets_values": ["blurry"]},
      {"id": 5, "type": "EmptyLatentImage", "mode": 0,
       "outputs": [{"name": "LATENT", "type": "LATENT", "links": [2]}],
       "widgets_values": [512, 512, 1]},
      {"id": 3, "type": "KSampler", "mode": 0,
       "inputs": [{"name": "model", "type": "MODEL", "link": 1},
                  {"name": "positive", "type": "CONDITIONING", "link": 4},
                  {"name": "negative", "type": "CONDITIONING", "link": 6},
                  {"name": "latent_image", "type": "LATENT", "link": 2}],
       "outputs": [{"name": "LATENT", "type": "LATENT", "links": [7]}],
       "widgets_values": [42, "randomize", 20, 8, "euler", "normal", 1]},
      {"id": 8, "type": "VAEDecode", "mode": 0,
       "inputs": [{"name": "samples", "type": "LATENT", "link": 7},
                  {"name": "vae", "type": "VAE", "link": 8}],
       "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [9]}]},
      {"id": 9, "type": "SaveImage", "mode": 0,
       "inputs": [{"name": "images", "type": "IMAGE", "link": 9}],
       "widgets_values": ["ComfyUI"]}
    ],
    "links": [[1, 4, 0, 3, 0, "MODEL"], [2, 5, 0, 3, 3, "LATENT"], [3, 4, 1, 6, 0, "CLIP"],
              [4, 6, 0, 3, 1, "CONDITIONING"], [5, 4, 1, 7, 0, "CLIP"],
              [6, 7, 0, 3, 2, "CONDITIONING"], [7, 3, 0, 8, 0, "LATENT"], [8, 4, 2, 8, 1, "VAE"],
              [9, 8, 0, 9, 0, "IMAGE"]]
  })json");
}

json* NodeById(json& ui, int id) {
  for (json& n : ui["nodes"]) {
    if (n["id"] == id) return &n;
  }
  return nullptr;
}

TEST(ConvertUiToApi, BasicGraphWithWidgetsLinksAndTitles) {
  const json prompt = Convert(Txt2Img());
  ASSERT_EQ(prompt.size(), 7u);
  const json& ks = prompt["3"];
  EXPECT_EQ(ks["class_type"], "KSampler");
  EXPECT_EQ(ks["inputs"]["seed"], 42);
  EXPECT_EQ(ks["inputs"]["steps"], 20);
  EXPECT_EQ(ks["inputs"]["cfg"], 8);
  EXPECT_EQ(ks["inputs"]["sampler_name"], "euler");
  EXPECT_EQ(ks["inputs"]["scheduler"], "normal");
  EXPECT_EQ(ks["inputs"]["denoise"], 1);
  EXPECT_FALSE(ks["inputs"].contains("control_after_generate"));
  EXPECT_EQ(ks["inputs"]["model"], json::array({"4", 0}));
  EXPECT_EQ(ks["inputs"]["latent_image"], json::array({"5", 0}));
  EXPECT_EQ(prompt["8"]["inputs"]["vae"], json::array({"4", 2}));
  EXPECT_EQ(prompt["6"]["_meta"]["title"], "Positive");
  EXPECT_EQ(prompt["7"]["_meta"]["title"], "CLIP Text Encode (Prompt)");  // display_name
  EXPECT_TRUE(ValidateApiPrompt(prompt).ok());
}

TEST(ConvertUiToApi, SchemaOneObjectLinksAndStringIds) {
  json ui = Txt2Img();
  json links = json::array();
  for (const json& l : ui["links"]) {
    links.push_back({{"id", l[0]},
                     {"origin_id", std::to_string(l[1].get<int>())},
                     {"origin_slot", l[2]},
                     {"target_id", l[3]},
                     {"target_slot", l[4]},
                     {"type", l[5]}});
  }
  ui["links"] = links;
  ui["version"] = 1;
  ui["state"] = {{"lastNodeId", 9}, {"lastLinkId", 9}};
  EXPECT_EQ(DetectFormat(ui), WorkflowFormat::kUiV1);
  EXPECT_EQ(Convert(ui), Convert(Txt2Img()));
}

TEST(ConvertUiToApi, MutedNodeIsRemovedAndItsConsumersLoseTheInput) {
  json ui = Txt2Img();
  (*NodeById(ui, 8))["mode"] = 2;
  const json prompt = Convert(ui);
  EXPECT_FALSE(prompt.contains("8"));
  EXPECT_TRUE(prompt.contains("9"));
  EXPECT_FALSE(prompt["9"]["inputs"].contains("images"));
  EXPECT_EQ(prompt["9"]["inputs"]["filename_prefix"], "ComfyUI");
}

TEST(ConvertUiToApi, BypassedNodeIsRewiredByTypeMatchingSlot) {
  json ui = Txt2Img();
  (*NodeById(ui, 3))["mode"] = 4;  // the frontend's e2e case: VAEDecode.samples -> latent
  const json prompt = Convert(ui);
  EXPECT_FALSE(prompt.contains("3"));
  EXPECT_EQ(prompt["8"]["inputs"]["samples"], json::array({"5", 0}));
}

TEST(ConvertUiToApi, BypassChainsAndSameSlotPreference) {
  // LoraLoader bypassed twice in a row: MODEL and CLIP pass through slot for slot.
  json ui = json::parse(R"json({
    "version": 0.4,
    "nodes": [
      {"id": 1, "type": "CheckpointLoaderSimple", "mode": 0, "widgets_values": ["a.safetensors"],
       "outputs": [{"name": "MODEL", "type": "MODEL", "links": [1]},
                   {"name": "CLIP", "type": "CLIP", "links": [2]},
                   {"name": "VAE", "type": "VAE", "links": null}]},
      {"id": 2, "type": "LoraLoader", "mode": 4, "widgets_values": ["l.safetensors", 1, 1],
       "inputs": [{"name": "model", "type": "MODEL", "link": 1}, {"name": "clip", "type": "CLIP", "link": 2}],
       "outputs": [{"name": "MODEL", "type": "MODEL", "links": [3]}, {"name": "CLIP", "type": "CLIP", "links": [4]}]},
      {"id": 3, "type": "LoraLoader", "mode": 4, "widgets_values": ["l.safetensors", 1, 1],
       "inputs": [{"name": "model", "type": "MODEL", "link": 3}, {"name": "clip", "type": "CLIP", "link": 4}],
       "outputs": [{"name": "MODEL", "type": "MODEL", "links": [5]}, {"name": "CLIP", "type": "CLIP", "links": [6]}]},
      {"id": 4, "type": "CLIPTextEncode", "mode": 0, "widgets_values": ["x"],
       "inputs": [{"name": "clip", "type": "CLIP", "link": 6}],
       "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "links": []}]},
      {"id": 5, "type": "ModelSamplingDiscrete", "mode": 0, "widgets_values": ["eps", false],
       "inputs": [{"name": "model", "type": "MODEL", "link": 5}],
       "outputs": [{"name": "MODEL", "type": "MODEL", "links": []}]}
    ],
    "links": [[1, 1, 0, 2, 0, "MODEL"], [2, 1, 1, 2, 1, "CLIP"], [3, 2, 0, 3, 0, "MODEL"],
              [4, 2, 1, 3, 1, "CLIP"], [5, 3, 0, 5, 0, "MODEL"], [6, 3, 1, 4, 0, "CLIP"]]
  })json");
  const json prompt = Convert(ui);
  EXPECT_EQ(prompt.size(), 3u);
  EXPECT_EQ(prompt["4"]["inputs"]["clip"], json::array({"1", 1}));
  EXPECT_EQ(prompt["5"]["inputs"]["model"], json::array({"1", 0}));
}

TEST(ConvertUiToApi, BypassWithNoMatchingInputDropsTheLink) {
  // A bypassed EmptyLatentImage has no LATENT input: the consumer's input resolves to nothing.
  json ui = Txt2Img();
  (*NodeById(ui, 5))["mode"] = 4;
  const json prompt = Convert(ui);
  EXPECT_FALSE(prompt.contains("5"));
  EXPECT_FALSE(prompt["3"]["inputs"].contains("latent_image"));
}

TEST(ConvertUiToApi, RerouteChainsCollapse) {
  json ui = Txt2Img();
  // VAE goes 4 -> Reroute 20 -> Reroute 21 -> VAEDecode.vae
  ui["nodes"].push_back(json::parse(R"json({"id": 20, "type": "Reroute", "mode": 0,
      "inputs": [{"name": "", "type": "*", "link": 8}],
      "outputs": [{"name": "", "type": "VAE", "links": [20]}]})json"));
  ui["nodes"].push_back(json::parse(R"json({"id": 21, "type": "Reroute", "mode": 0,
      "inputs": [{"name": "", "type": "*", "link": 20}],
      "outputs": [{"name": "", "type": "VAE", "links": [21]}]})json"));
  ui["links"][7] = json::array({8, 4, 2, 20, 0, "*"});
  ui["links"].push_back(json::array({20, 20, 0, 21, 0, "*"}));
  ui["links"].push_back(json::array({21, 21, 0, 8, 1, "VAE"}));
  (*NodeById(ui, 8))["inputs"][1]["link"] = 21;
  const json prompt = Convert(ui);
  EXPECT_FALSE(prompt.contains("20"));
  EXPECT_FALSE(prompt.contains("21"));
  EXPECT_EQ(prompt["8"]["inputs"]["vae"], json::array({"4", 2}));
}

TEST(ConvertUiToApi, PrimitiveNodePushesItsValueIntoTheTargetWidget) {
  json ui = Txt2Img();
  json* ks = NodeById(ui, 3);
  (*ks)["inputs"].push_back(
      {{"name", "steps"}, {"type", "INT"}, {"widget", {{"name", "steps"}}}, {"link", 30}});
  ui["nodes"].push_back(json::parse(R"json({"id": 30, "type": "PrimitiveNode", "mode": 0,
      "outputs": [{"name": "INT", "type": "INT", "links": [30], "widget": {"name": "steps"}}],
      "widgets_values": [33, "fixed"]})json"));
  ui["nodes"].push_back(json::parse(R"json({"id": 31, "type": "Note", "mode": 0,
      "widgets_values": ["a note"]})json"));
  ui["nodes"].push_back(json::parse(R"json({"id": 32, "type": "MarkdownNote", "mode": 0,
      "widgets_values": ["# notes"]})json"));
  ui["links"].push_back(json::array({30, 30, 0, 3, 4, "INT"}));
  const json prompt = Convert(ui);
  EXPECT_EQ(prompt["3"]["inputs"]["steps"], 33);
  EXPECT_FALSE(prompt.contains("30"));
  EXPECT_FALSE(prompt.contains("31"));
  EXPECT_FALSE(prompt.contains("32"));
}

TEST(ConvertUiToApi, WidgetSocketLinkOverridesTheWidgetValue) {
  json ui = Txt2Img();
  // The positive prompt's text comes from a StringConcatenate node.
  json* pos = NodeById(ui, 6);
  (*pos)["inputs"].push_back(
      {{"name", "text"}, {"type", "STRING"}, {"widget", {{"name", "text"}}}, {"link", 40}});
  ui["nodes"].push_back(json::parse(R"json({"id": 40, "type": "StringConcatenate", "mode": 0,
      "outputs": [{"name": "STRING", "type": "STRING", "links": [40]}],
      "widgets_values": ["a", "b", " "]})json"));
  ui["links"].push_back(json::array({40, 40, 0, 6, 1, "STRING"}));
  const json prompt = Convert(ui);
  EXPECT_EQ(prompt["6"]["inputs"]["text"], json::array({"40", 0}));
  EXPECT_EQ(prompt["40"]["inputs"]["delimiter"], " ");
}

TEST(ConvertUiToApi, ControlSlotIsConsumedOnlyWhenItHoldsAMode) {
  json ui = Txt2Img();
  // 2023 saves stored a boolean in the control slot.
  (*NodeById(ui, 3))["widgets_values"] = {7, true, 25, 6.5, "euler", "karras", 0.5};
  json prompt = Convert(ui);
  EXPECT_EQ(prompt["3"]["inputs"]["seed"], 7);
  EXPECT_EQ(prompt["3"]["inputs"]["steps"], 25);
  EXPECT_EQ(prompt["3"]["inputs"]["denoise"], 0.5);
  // A save without the control slot does not shift the later widgets.
  (*NodeById(ui, 3))["widgets_values"] = {7, 25, 6.5, "euler", "karras", 0.5};
  prompt = Convert(ui);
  EXPECT_EQ(prompt["3"]["inputs"]["steps"], 25);
  EXPECT_EQ(prompt["3"]["inputs"]["scheduler"], "karras");
}

TEST(ConvertUiToApi, NullNumbersKeepDefaultsShortListsDefaultAndExtrasAreIgnored) {
  json ui = Txt2Img();
  (*NodeById(ui, 5))["widgets_values"] = {nullptr, 768};  // width null, batch_size missing
  (*NodeById(ui, 9))["widgets_values"] = {"out", "extra", 3};
  const json prompt = Convert(ui);
  EXPECT_EQ(prompt["5"]["inputs"]["width"], 512);
  EXPECT_EQ(prompt["5"]["inputs"]["height"], 768);
  EXPECT_EQ(prompt["5"]["inputs"]["batch_size"], 1);
  EXPECT_EQ(prompt["9"]["inputs"].size(), 2u);  // filename_prefix + images
  EXPECT_EQ(prompt["9"]["inputs"]["filename_prefix"], "out");
}

TEST(ConvertUiToApi, DictWidgetsValuesMapByName) {
  json ui = Txt2Img();
  (*NodeById(ui, 5))["widgets_values"] = {{"height", 1024}, {"width", 640}, {"videopreview", {}}};
  const json prompt = Convert(ui);
  EXPECT_EQ(prompt["5"]["inputs"]["width"], 640);
  EXPECT_EQ(prompt["5"]["inputs"]["height"], 1024);
  EXPECT_EQ(prompt["5"]["inputs"]["batch_size"], 1);
  EXPECT_FALSE(prompt["5"]["inputs"].contains("videopreview"));
}

TEST(ConvertUiToApi, UploadWidgetIsReadButNotSent) {
  json ui = json::parse(R"json({"version": 0.4, "links": [], "nodes": [
      {"id": 1, "type": "LoadImage", "mode": 0, "widgets_values": ["cat.png", "image"],
       "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": []}]}]})json");
  const json prompt = Convert(ui);
  EXPECT_EQ(prompt["1"]["inputs"], json({{"image", "cat.png"}}));
}

// Definitions for rules no core v0.33.0 node exercises.
NodeDefinitions CustomDefinitions() {
  auto defs = NodeDefinitions::FromJson(json::parse(R"json({
    "ForceNode": {"display_name": "Force", "output": ["INT"], "output_name": ["INT"],
      "input": {"required": {"a": ["INT", {"default": 1}], "b": ["INT", {"forceInput": true}],
                              "c": ["STRING", {"default": "x"}]}},
      "input_order": {"required": ["a", "b", "c"]}},
    "ListNode": {"output": ["FLOAT"],
      "input": {"required": {"values": ["FLOATLIST_WIDGET_NOT", {}], "scale": ["FLOAT", {"default": 1.0, "control_after_generate": true}],
                              "mode": [["a", "b"], {"control_after_generate": true}], "tail": ["COMBO", {"multiselect": true, "options": [1, 2, 3]}]}},
      "input_order": {"required": ["values", "scale", "mode", "tail"]}},
    "NoOrder": {"output": [], "input": {"required": {"x": ["INT", {}]}, "optional": {"y": ["STRING", {}]}}}
  })json"));
  EXPECT_TRUE(defs.ok()) << defs.status().ToString();
  return std::move(defs).value();
}

TEST(ConvertUiToApi, LegacyForceInputSlotsAreDropped) {
  const NodeDefinitions defs = CustomDefinitions();
  // Before frontend 1.16 the forceInput `b` had a slot: [a, b, c].
  json ui = json::parse(R"json({"version": 0.4, "links": [], "nodes": [
      {"id": 1, "type": "ForceNode", "mode": 0, "widgets_values": [5, 99, "legacy"]},
      {"id": 2, "type": "ForceNode", "mode": 0, "widgets_values": [6, "modern"]}]})json");
  const json prompt = Convert(ui, defs);
  EXPECT_EQ(prompt["1"]["inputs"], json({{"a", 5}, {"c", "legacy"}}));
  EXPECT_EQ(prompt["2"]["inputs"], json({{"a", 6}, {"c", "modern"}}));
}

TEST(ConvertUiToApi, FlaggedFloatAndComboControlsAndListValues) {
  const NodeDefinitions defs = CustomDefinitions();
  json ui = json::parse(R"json({"version": 0.4, "links": [], "nodes": [
      {"id": 1, "type": "ListNode", "mode": 0,
       "widgets_values": [2.5, "fixed", "b", "increment", "", [1, 2, 3]]}]})json");
  // `values` has an unknown widget type: a socket, no slot. scale(+control), mode(+control+filter).
  const json prompt = Convert(ui, defs);
  EXPECT_EQ(prompt["1"]["inputs"]["scale"], 2.5);
  EXPECT_EQ(prompt["1"]["inputs"]["mode"], "b");
  EXPECT_EQ(prompt["1"]["inputs"]["tail"], json({{"__value__", {1, 2, 3}}}));
  EXPECT_FALSE(prompt["1"]["inputs"].contains("values"));
}

TEST(ConvertUiToApi, ComboNullBecomesFirstOptionAndSamplerPrefixIsStripped) {
  json ui = Txt2Img();
  (*NodeById(ui, 3))["widgets_values"] = {1, "fixed", 20, 8, "sample_euler_ancestral", nullptr, 1};
  const json prompt = Convert(ui);
  EXPECT_EQ(prompt["3"]["inputs"]["sampler_name"], "euler_ancestral");
  EXPECT_EQ(prompt["3"]["inputs"]["scheduler"], "simple");
}

TEST(ConvertUiToApi, NestedSubgraphsFlattenWithPathIds) {
  const json ui = testing::LoadJsonOrDie(SourcePath("tests/data/ui/subgraph_nested.json"));
  const json prompt = Convert(ui);
  std::vector<std::string> ids;
  for (const auto& [id, node] : prompt.items()) ids.push_back(id);
  EXPECT_EQ(ids, (std::vector<std::string>{"1", "10:3", "10:5:6", "10:5:7", "11"}));
  EXPECT_EQ(prompt["10:3"]["inputs"]["image"], json::array({"1", 0}));
  EXPECT_EQ(prompt["10:5:6"]["inputs"]["image"], json::array({"10:3", 0}));
  EXPECT_EQ(prompt["10:5:7"]["inputs"]["image"], json::array({"10:5:6", 0}));
  EXPECT_EQ(prompt["10:5:7"]["inputs"]["flip_method"], "y-axis: horizontally");
  EXPECT_EQ(prompt["11"]["inputs"]["images"], json::array({"10:5:7", 0}));
  EXPECT_TRUE(ValidateApiPrompt(prompt).ok());
}

TEST(ConvertUiToApi, MutedOrBypassedSubgraphInstances) {
  json ui = testing::LoadJsonOrDie(SourcePath("tests/data/ui/subgraph_nested.json"));
  ui["nodes"][1]["mode"] = 4;  // bypass: SaveImage reads the LoadImage output directly
  json prompt = Convert(ui);
  EXPECT_EQ(prompt.size(), 2u);
  EXPECT_EQ(prompt["11"]["inputs"]["images"], json::array({"1", 0}));
  ui["nodes"][1]["mode"] = 2;  // mute: nothing inside runs, the input is dropped
  prompt = Convert(ui);
  EXPECT_EQ(prompt.size(), 2u);
  EXPECT_FALSE(prompt["11"]["inputs"].contains("images"));
}

TEST(ConvertUiToApi, PromotedWidgetsAndSubgraphPassThrough) {
  const json ui = testing::LoadJsonOrDie(SourcePath("tests/data/ui/subgraph_promoted.json"));
  const json prompt = Convert(ui);
  ASSERT_TRUE(prompt.contains("20:2"));
  ASSERT_TRUE(prompt.contains("21:2"));
  EXPECT_EQ(prompt["20:2"]["inputs"]["width"], 768);  // the instance's promoted value
  EXPECT_EQ(prompt["21:2"]["inputs"]["width"], 512);  // no instance value: the definition's
  EXPECT_EQ(prompt["20:2"]["inputs"]["height"], 640);
  EXPECT_EQ(prompt["20:2"]["inputs"]["batch_size"], 2);
  EXPECT_EQ(prompt["22"]["inputs"]["samples1"], json::array({"20:2", 0}));
  EXPECT_EQ(prompt["22"]["inputs"]["samples2"], json::array({"21:2", 0}));
  // Output 1 passes the instance input straight through: unlinked on 20, linked to 22 on 21.
  EXPECT_FALSE(prompt["23"]["inputs"].contains("samples1"));
  EXPECT_EQ(prompt["23"]["inputs"]["samples2"], json::array({"22", 0}));
  EXPECT_EQ(prompt.size(), 4u);
}

TEST(ConvertUiToApi, ProxyWidgetOverridesPerInstance) {
  json ui = testing::LoadJsonOrDie(SourcePath("tests/data/ui/subgraph_promoted.json"));
  ui["nodes"][1]["properties"]["proxyWidgets"] =
      json::array({json::array({"2", "height"}), json::array({"2", "batch_size"})});
  ui["nodes"][1]["widgets_values"] = {1024, 4};
  const json prompt = Convert(ui);
  EXPECT_EQ(prompt["21:2"]["inputs"]["height"], 1024);
  EXPECT_EQ(prompt["21:2"]["inputs"]["batch_size"], 4);
  EXPECT_EQ(prompt["20:2"]["inputs"]["height"], 640);
}

TEST(ConvertUiToApi, DiscomfortPortWidgets) {
  json ui = json::parse(R"json({"version": 0.4, "nodes": [
      {"id": 1, "type": "EmptyLatentImage", "mode": 0, "widgets_values": [512, 512, 1],
       "outputs": [{"name": "LATENT", "type": "LATENT", "links": [1]}]},
      {"id": 2, "type": "DiscomfortPort", "mode": 0, "widgets_values": ["latent"],
       "inputs": [{"name": "input_data", "type": "*", "shape": 7, "link": 1}],
       "outputs": [{"name": "output_data", "type": "*", "links": null}]},
      {"id": 3, "type": "DiscomfortPort", "mode": 0, "widgets_values": ["seed", "a, b"],
       "outputs": [{"name": "output_data", "type": "*", "links": null}]}],
    "links": [[1, 1, 0, 2, 0, "*"]]})json");
  const json prompt = Convert(ui);
  EXPECT_EQ(prompt["2"]["inputs"],
            json({{"unique_id", "latent"}, {"tags", ""}, {"input_data", {"1", 0}}}));
  EXPECT_EQ(prompt["3"]["inputs"], json({{"unique_id", "seed"}, {"tags", "a, b"}}));
  auto ports = DiscoverPorts(prompt, &V033Definitions().raw());
  ASSERT_TRUE(ports.ok()) << ports.status().ToString();
  ASSERT_EQ(ports->outputs.size(), 1u);
  EXPECT_EQ(ports->outputs[0].type, "LATENT");
}

TEST(ConvertUiToApi, LegacyGroupNodeExpandsToIndexedIds) {
  // Covered end to end by the golden pair edit_models__sdxl_edit_model; here the group value
  // overrides the inner node's own value and inner Reroutes vanish.
  json ui = json::parse(R"json({"version": 0.4,
    "nodes": [
      {"id": 1, "type": "EmptyLatentImage", "mode": 0, "widgets_values": [512, 512, 1],
       "outputs": [{"name": "LATENT", "type": "LATENT", "links": [1]}]},
      {"id": 7, "type": "workflow>Up", "mode": 0,
       "inputs": [{"name": "samples", "type": "LATENT", "link": 1}],
       "outputs": [{"name": "LATENT", "type": "LATENT", "links": [2]}],
       "widgets_values": ["bilinear", 1024, 768, "center"]},
      {"id": 8, "type": "LatentFlip", "mode": 0, "widgets_values": ["x-axis: vertically"],
       "inputs": [{"name": "samples", "type": "LATENT", "link": 2}],
       "outputs": [{"name": "LATENT", "type": "LATENT", "links": []}]}],
    "links": [[1, 1, 0, 7, 0, "LATENT"], [2, 7, 0, 8, 0, "LATENT"]],
    "extra": {"groupNodes": {"Up": {
      "nodes": [
        {"type": "Reroute", "index": 0, "inputs": [{"name": "", "type": "*", "link": null}],
         "outputs": [{"name": "", "type": "*", "links": null}]},
        {"type": "LatentUpscale", "index": 1, "widgets_values": ["nearest-exact", 512, 512, "disabled"],
         "inputs": [{"name": "samples", "type": "LATENT", "link": null}],
         "outputs": [{"name": "LATENT", "type": "LATENT", "links": []}]}],
      "links": [[null, 0, 0, 0, 1, "LATENT"], [0, 0, 1, 0, 5, "LATENT"]],
      "external": []}}}})json");
  const json prompt = Convert(ui);
  ASSERT_TRUE(prompt.contains("7:1")) << prompt.dump();
  EXPECT_FALSE(prompt.contains("7:0"));
  EXPECT_EQ(prompt["7:1"]["inputs"]["samples"], json::array({"1", 0}));
  EXPECT_EQ(prompt["7:1"]["inputs"]["upscale_method"], "bilinear");
  EXPECT_EQ(prompt["7:1"]["inputs"]["width"], 1024);
  EXPECT_EQ(prompt["7:1"]["inputs"]["height"], 768);
  EXPECT_EQ(prompt["7:1"]["inputs"]["crop"], "center");
  EXPECT_EQ(prompt["8"]["inputs"]["samples"], json::array({"7:1", 0}));
}

// ---- errors -----------------------------------------------------------------------------------

TEST(ConvertUiToApi, UnknownNodeTypeIsAnError) {
  json ui = Txt2Img();
  (*NodeById(ui, 8))["type"] = "NoSuchNode";
  auto result = ConvertUiToApi(ui, V033Definitions(), {"wf.json"});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(result.status().where().node_id, "8");
  EXPECT_EQ(result.status().where().class_type, "NoSuchNode");
  EXPECT_EQ(result.status().where().workflow, "wf.json");
  EXPECT_NE(result.status().message().find("unknown node type 'NoSuchNode'"), std::string::npos);
  // Muted or bypassed unknown nodes are ignored, like the frontend does.
  (*NodeById(ui, 8))["mode"] = 2;
  EXPECT_TRUE(ConvertUiToApi(ui, V033Definitions()).ok());
}

TEST(ConvertUiToApi, LinkToMissingNodeOrLinkIsAnError) {
  json ui = Txt2Img();
  ui["links"][8] = json::array({9, 77, 0, 9, 0, "IMAGE"});
  auto result = ConvertUiToApi(ui, V033Definitions());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(result.status().message().find("node 77"), std::string::npos);

  ui = Txt2Img();
  (*NodeById(ui, 9))["inputs"][0]["link"] = 555;
  result = ConvertUiToApi(ui, V033Definitions());
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("link 555"), std::string::npos);
  EXPECT_EQ(result.status().where().node_id, "9");
}

TEST(ConvertUiToApi, WrongTypedWidgetValueIsAnError) {
  json ui = Txt2Img();
  (*NodeById(ui, 3))["widgets_values"] = {42, "randomize", "twenty", 8, "euler", "normal", 1};
  auto result = ConvertUiToApi(ui, V033Definitions());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kTypeMismatch);
  EXPECT_EQ(result.status().where().input_name, "steps");
  EXPECT_EQ(result.status().where().json_pointer, "/nodes/4/widgets_values/2");
}

TEST(ConvertUiToApi, MalformedDocumentsAreParseErrors) {
  auto result = ConvertUiToApi(json::parse(R"({"nodes": [{"id": 1}]})"), V033Definitions());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kParse);
  EXPECT_EQ(result.status().where().json_pointer, "/nodes/0/type");
  result = ConvertUiToApi(json::parse(R"({"nodes": [], "links": [[1, 2]]})"), V033Definitions());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().where().json_pointer, "/links/0");
}

TEST(ConvertUiToApi, LinkLoopsAreReportedNotFollowedForever) {
  json ui = json::parse(R"json({"version": 0.4, "nodes": [
      {"id": 1, "type": "Reroute", "mode": 0, "inputs": [{"name": "", "type": "*", "link": 2}],
       "outputs": [{"name": "", "type": "*", "links": [1]}]},
      {"id": 2, "type": "Reroute", "mode": 0, "inputs": [{"name": "", "type": "*", "link": 1}],
       "outputs": [{"name": "", "type": "*", "links": [2, 3]}]},
      {"id": 3, "type": "SaveImage", "mode": 0, "widgets_values": ["x"],
       "inputs": [{"name": "images", "type": "IMAGE", "link": 3}]}],
    "links": [[1, 1, 0, 2, 0, "*"], [2, 2, 0, 1, 0, "*"], [3, 2, 0, 3, 0, "IMAGE"]]})json");
  auto result = ConvertUiToApi(ui, V033Definitions());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kCycle);
}

TEST(ToApiPrompt, AcceptsBothFormats) {
  const json api = Convert(Txt2Img());
  auto passed = ToApiPrompt(api, nullptr);
  ASSERT_TRUE(passed.ok()) << passed.status().ToString();
  EXPECT_EQ(*passed, api);
  auto body = ToApiPrompt(json{{"prompt", api}, {"client_id", "x"}}, nullptr);
  ASSERT_TRUE(body.ok());
  EXPECT_EQ(*body, api);

  auto no_defs = ToApiPrompt(Txt2Img(), nullptr, {"wf.json"});
  ASSERT_FALSE(no_defs.ok());
  EXPECT_EQ(no_defs.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(no_defs.status().message().find("node definitions"), std::string::npos);

  auto converted = ToApiPrompt(Txt2Img(), &V033Definitions());
  ASSERT_TRUE(converted.ok());
  EXPECT_EQ(*converted, api);

  json broken = api;
  broken["8"]["inputs"]["vae"] = json::array({"404", 0});
  EXPECT_EQ(ToApiPrompt(broken, nullptr).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(ToApiPrompt(json::array(), nullptr).status().code(), ErrorCode::kParse);
}

}  // namespace
}  // namespace discomfort::graph
