// Rules the frontend applies while it queues a prompt: dynamic prompts, filename_prefix templating,
// curve values, KJNodes Set/Get virtual nodes (shared/notes/ui_to_api.md 2.5, 4).
#include <chrono>
#include <ctime>
#include <set>

#include <gtest/gtest.h>

#include "graph/prompt_text.h"
#include "graph/ui_to_api.h"
#include "graph/workflow_ops.h"
#include "test_util.h"

namespace discomfort::graph {
namespace {

using nlohmann::json;
using testing::V033Definitions;

// Always the first option, or always the last: makes choices checkable without randomness.
size_t First(size_t) { return 0; }
size_t Last(size_t n) { return n - 1; }

TEST(DynamicPrompt, StripsBlockAndLineComments) {
  EXPECT_EQ(StripPromptComments("a /* b\nc */d // e\nf"), "a d \nf");
  EXPECT_EQ(StripPromptComments("see http://x.org now"), "see http:");  // as the frontend does
  EXPECT_EQ(StripPromptComments("unclosed /* here"), "unclosed /* here");
  EXPECT_EQ(StripPromptComments("/**/x"), "x");
}

TEST(DynamicPrompt, ResolvesChoicesNestedAndEscaped) {
  EXPECT_EQ(ProcessDynamicPrompt("a {cat|dog} here", First), "a cat here");
  EXPECT_EQ(ProcessDynamicPrompt("a {cat|dog} here", Last), "a dog here");
  EXPECT_EQ(ProcessDynamicPrompt("{x|{y|z}}", Last), "z");
  EXPECT_EQ(ProcessDynamicPrompt("{x|{y|z}w}", Last), "zw");
  EXPECT_EQ(ProcessDynamicPrompt("{|b}", First), "");
  // Escaped braces and bars are text, unescaped at the end.
  EXPECT_EQ(ProcessDynamicPrompt(R"(\{a\|b\} {c|d})", First), "{a|b} c");
  // Outside a block, '|' and '}' are text; an unclosed block stays as written.
  EXPECT_EQ(ProcessDynamicPrompt("a|b} {c|d", First), "a|b} {c|d");
  // Comments go first: a choice inside a comment is never made.
  EXPECT_EQ(ProcessDynamicPrompt("{a|b} // {c|d}", Last), "b ");
  EXPECT_EQ(ProcessDynamicPrompt("plain text", First), "plain text");
}

TEST(DynamicPrompt, SeededChooserIsDeterministicAndCoversOptions) {
  std::set<std::string> seen;
  for (uint64_t seed = 0; seed < 64; ++seed) {
    SeededChooser a(seed, "6\ntext"), b(seed, "6\ntext");
    const std::string first = ProcessDynamicPrompt("{r|g|b}", std::ref(a));
    EXPECT_EQ(first, ProcessDynamicPrompt("{r|g|b}", std::ref(b)));
    seen.insert(first);
  }
  EXPECT_EQ(seen, (std::set<std::string>{"r", "g", "b"}));
}

json OneEncoder(const std::string& text) {
  return {{"version", 0.4},
          {"links", json::array()},
          {"nodes",
           {{{"id", 6}, {"type", "CLIPTextEncode"}, {"widgets_values", {text}}},
            {{"id", 9}, {"type", "SaveImage"}, {"widgets_values", {"{keep|this} // too"}}}}}};
}

TEST(ConvertUiToApi, DynamicPromptsApplyToFlaggedWidgetsOnly) {
  const json ui = OneEncoder("a {red|blue} car /* hidden */ // note");
  ConvertOptions options;
  std::set<std::string> seen;
  for (uint64_t seed = 0; seed < 32; ++seed) {
    options.dynamic_prompt_seed = seed;
    auto prompt = ConvertUiToApi(ui, V033Definitions(), options);
    ASSERT_TRUE(prompt.ok()) << prompt.status().ToString();
    const std::string text = (*prompt)["6"]["inputs"]["text"];
    EXPECT_TRUE(text == "a red car  " || text == "a blue car  ") << text;
    seen.insert(text);
    // Same seed, same prompt.
    auto again = ConvertUiToApi(ui, V033Definitions(), options);
    EXPECT_EQ((*again)["6"]["inputs"]["text"], text);
    // SaveImage.filename_prefix has no dynamicPrompts flag: untouched.
    EXPECT_EQ((*prompt)["9"]["inputs"]["filename_prefix"], "{keep|this} // too");
  }
  EXPECT_EQ(seen.size(), 2u);
  options.dynamic_prompts = false;
  auto raw = ConvertUiToApi(ui, V033Definitions(), options);
  EXPECT_EQ((*raw)["6"]["inputs"]["text"], "a {red|blue} car /* hidden */ // note");
}

TEST(TextReplacements, FormatsDatesLikeTheFrontend) {
  std::tm t{};
  t.tm_year = 2026 - 1900;
  t.tm_mon = 2;  // March
  t.tm_mday = 7;
  t.tm_hour = 9;
  t.tm_min = 5;
  t.tm_sec = 3;
  EXPECT_EQ(FormatTemplateDate("yyyy-MM-dd", t), "2026-03-07");
  EXPECT_EQ(FormatTemplateDate("yy M d h:m:s", t), "26 3 7 9:5:3");
  EXPECT_EQ(FormatTemplateDate("hh-mm-ss", t), "09-05-03");
  EXPECT_EQ(FormatTemplateDate("ddd", t), "077");  // "dd" then "d"
  EXPECT_EQ(FormatTemplateDate("x_y", t), "x_y");
  auto none = [](const std::string&, const std::string&) -> std::optional<json> {
    return std::nullopt;
  };
  EXPECT_EQ(ApplyTextReplacements("%date:yyyy-MM-dd%/img", none, t), "2026-03-07/img");
  // As in the frontend, text splitting into three parts at '.' uses the part before the first '.'.
  EXPECT_EQ(ApplyTextReplacements("%date:yyyy.MM.dd%", none, t), "2026");
  EXPECT_EQ(ApplyTextReplacements("%date:yyyy.MM%", none, t), "%date:yyyy.MM%");
  EXPECT_EQ(ApplyTextReplacements("100%% %width% %", none, t), "100%% %width% %");
}

TEST(TextReplacements, WidgetValuesAreSanitised) {
  std::tm t{};
  auto lookup = [](const std::string& node, const std::string& widget) -> std::optional<json> {
    if (node == "A" && widget == "s") return json("x/y:z*\"q\"|<>?\\\n");
    if (node == "A" && widget == "f") return json(2.0);
    if (node == "A" && widget == "g") return json(0.25);
    if (node == "A" && widget == "b") return json(true);
    return std::nullopt;
  };
  EXPECT_EQ(ApplyTextReplacements("%A.s%", lookup, t), "x_y_z__q_______");
  EXPECT_EQ(ApplyTextReplacements("%A.f%-%A.g%-%A.b%-%A.none%-%B.s%", lookup, t),
            "2-0.25-true-%A.none%-%B.s%");
}

// Txt2img whose SaveImage prefix refers to other nodes by S&R name, by title and by date.
json TemplatedWorkflow(const std::string& prefix) {
  json ui = json::parse(R"json({"version": 0.4, "nodes": [
      {"id": 5, "type": "EmptyLatentImage", "widgets_values": [640, 384, 1],
       "outputs": [{"name": "LATENT", "type": "LATENT", "links": [1]}]},
      {"id": 3, "type": "KSampler", "title": "Main Sampler",
       "properties": {"Node name for S&R": "Sampler"},
       "inputs": [{"name": "latent_image", "type": "LATENT", "link": 1}],
       "outputs": [{"name": "LATENT", "type": "LATENT", "links": [2]}],
       "widgets_values": [1234, "fixed", 20, 8, "euler", "normal", 1]},
      {"id": 8, "type": "VAEDecode", "inputs": [{"name": "samples", "type": "LATENT", "link": 2}],
       "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [3]}]},
      {"id": 9, "type": "SaveImage", "inputs": [{"name": "images", "type": "IMAGE", "link": 3}],
       "widgets_values": [null]}],
    "links": [[1, 5, 0, 3, 3, "LATENT"], [2, 3, 0, 8, 0, "LATENT"], [3, 8, 0, 9, 0, "IMAGE"]]})json");
  ui["nodes"][3]["widgets_values"][0] = prefix;
  return ui;
}

ConvertOptions FixedClock() {
  ConvertOptions options;
  std::tm t{};
  t.tm_year = 2026 - 1900;
  t.tm_mon = 10;
  t.tm_mday = 27;
  t.tm_hour = 23;
  t.tm_isdst = -1;
  options.now = std::chrono::system_clock::from_time_t(std::mktime(&t));
  return options;
}

TEST(ConvertUiToApi, FilenamePrefixTemplating) {
  const ConvertOptions options = FixedClock();
  auto prompt = ConvertUiToApi(
      TemplatedWorkflow("%date:yyyy-MM-dd%/%EmptyLatentImage.width%x%Empty Latent Image.height%_"
                        "%Sampler.seed%_%Main Sampler.steps%_%Nope.x%"),
      V033Definitions(), options);
  ASSERT_TRUE(prompt.ok()) << prompt.status().ToString();
  // Node 5 has no saved S&R property: the frontend gives every non-save node its type as the
  // S&R name, and the display name is its default title. Node 3 is found by its S&R property
  // and by its title. Unknown references stay as written.
  EXPECT_EQ((*prompt)["9"]["inputs"]["filename_prefix"], "2026-11-27/640x384_1234_20_%Nope.x%");
  // Only save nodes' filename_prefix is templated.
  EXPECT_EQ((*prompt)["3"]["inputs"]["sampler_name"], "euler");
  ConvertOptions off = options;
  off.text_replacements = false;
  auto raw = ConvertUiToApi(TemplatedWorkflow("%Sampler.seed%"), V033Definitions(), off);
  EXPECT_EQ((*raw)["9"]["inputs"]["filename_prefix"], "%Sampler.seed%");
}

TEST(ConvertUiToApi, PrimitiveWithReplaceOnValuesIsTemplated) {
  json ui = TemplatedWorkflow("plain");
  // A PrimitiveNode drives the encoder text through a widget socket; the property asks for S&R.
  ui["nodes"].push_back(json::parse(R"json({"id": 20, "type": "PrimitiveNode",
      "properties": {"Run widget replace on values": true},
      "outputs": [{"name": "STRING", "type": "STRING", "links": [10], "widget": {"name": "text"}}],
      "widgets_values": ["w%EmptyLatentImage.width%"]})json"));
  ui["nodes"].push_back(json::parse(R"json({"id": 21, "type": "CLIPTextEncode",
      "inputs": [{"name": "text", "type": "STRING", "widget": {"name": "text"}, "link": 10}],
      "widgets_values": ["old"]})json"));
  ui["links"].push_back({10, 20, 0, 21, 0, "STRING"});
  auto prompt = ConvertUiToApi(ui, V033Definitions(), FixedClock());
  ASSERT_TRUE(prompt.ok()) << prompt.status().ToString();
  EXPECT_EQ((*prompt)["21"]["inputs"]["text"], "w640");
  ui["nodes"][4]["properties"]["Run widget replace on values"] = false;
  auto plain = ConvertUiToApi(ui, V033Definitions(), FixedClock());
  EXPECT_EQ((*plain)["21"]["inputs"]["text"], "w%EmptyLatentImage.width%");
}

TEST(ConvertUiToApi, CurveWidgetsCarryTheirType) {
  auto defs = NodeDefinitions::FromJson(json::parse(R"json({
    "CurveNode": {"output": ["FLOAT"], "input": {"required": {
        "curve": ["CURVE", {"default": [[0, 0], [1, 1]]}], "points": ["STRING", {}]}},
      "input_order": {"required": ["curve", "points"]}}})json"));
  ASSERT_TRUE(defs.ok()) << defs.status().ToString();
  const json ui = json::parse(R"json({"version": 0.4, "links": [], "nodes": [
      {"id": 1, "type": "CurveNode", "widgets_values": [[[0, 0.2], [1, 0.8]], "p"]}]})json");
  auto prompt = ConvertUiToApi(ui, *defs);
  ASSERT_TRUE(prompt.ok()) << prompt.status().ToString();
  EXPECT_EQ((*prompt)["1"]["inputs"]["curve"],
            json({{"__type__", "CURVE"}, {"__value__", {{0, 0.2}, {1, 0.8}}}}));
  EXPECT_EQ((*prompt)["1"]["inputs"]["points"], "p");
}

// checkpoint(1) -> SetNode "model" ... GetNode "model" -> KSampler(3); the Get/Set pair is
// frontend-only and the sampler reads the checkpoint directly.
TEST(ConvertUiToApi, KjSetGetNodesPassThrough) {
  const json ui = json::parse(R"json({"version": 0.4, "nodes": [
      {"id": 1, "type": "CheckpointLoaderSimple", "widgets_values": ["m.safetensors"],
       "outputs": [{"name": "MODEL", "type": "MODEL", "links": [1]},
                   {"name": "CLIP", "type": "CLIP", "links": [4]}]},
      {"id": 10, "type": "SetNode", "widgets_values": ["model"],
       "inputs": [{"name": "MODEL", "type": "MODEL", "link": 1}],
       "outputs": [{"name": "*", "type": "*", "links": null}]},
      {"id": 12, "type": "SetNode", "widgets_values": ["clip"],
       "inputs": [{"name": "CLIP", "type": "CLIP", "link": 4}]},
      {"id": 11, "type": "GetNode", "widgets_values": ["model"],
       "outputs": [{"name": "MODEL", "type": "MODEL", "links": [2]}]},
      {"id": 13, "type": "GetNode", "widgets_values": ["clip"],
       "outputs": [{"name": "CLIP", "type": "CLIP", "links": [5]}]},
      {"id": 3, "type": "KSampler", "inputs": [{"name": "model", "type": "MODEL", "link": 2}],
       "widgets_values": [1, "fixed", 20, 8, "euler", "normal", 1]},
      {"id": 6, "type": "CLIPTextEncode", "inputs": [{"name": "clip", "type": "CLIP", "link": 5}],
       "widgets_values": ["x"]}],
    "links": [[1, 1, 0, 10, 0, "MODEL"], [2, 11, 0, 3, 0, "MODEL"], [4, 1, 1, 12, 0, "CLIP"],
              [5, 13, 0, 6, 0, "CLIP"]]})json");
  auto prompt = ConvertUiToApi(ui, V033Definitions());
  ASSERT_TRUE(prompt.ok()) << prompt.status().ToString();
  EXPECT_EQ(prompt->size(), 3u);  // Set/Get are never emitted
  EXPECT_EQ((*prompt)["3"]["inputs"]["model"], json::array({"1", 0}));
  EXPECT_EQ((*prompt)["6"]["inputs"]["clip"], json::array({"1", 1}));
  // A Get with no Set of that name is an error naming the node.
  json broken = ui;
  broken["nodes"][3]["widgets_values"] = {"missing"};
  auto bad = ConvertUiToApi(broken, V033Definitions());
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().where().node_id, "11");
  EXPECT_NE(bad.status().message().find("missing"), std::string::npos);
}

// V3 DynamicCombo (ColorTransfer.source_stats): the chosen option's widgets follow the combo in
// widgets_values and are sent as "<combo>.<input>"; V3 Autogrow sockets keep their dotted names.
json ColorTransferWorkflow(const json& widgets_values) {
  json ui = json::parse(R"json({"version": 0.4, "nodes": [
      {"id": 1, "type": "EmptyImage", "widgets_values": [64, 64, 1, 0],
       "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1, 2, 3]}]},
      {"id": 2, "type": "ColorTransfer",
       "inputs": [{"name": "image_target", "type": "IMAGE", "link": 1},
                  {"name": "image_ref", "type": "IMAGE", "link": 2}],
       "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [4]}]},
      {"id": 3, "type": "BatchImagesNode",
       "inputs": [{"name": "images.image0", "type": "IMAGE", "link": 3},
                  {"name": "images.image1", "type": "IMAGE", "link": 4},
                  {"name": "images.image2", "type": "IMAGE", "link": null}],
       "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [5]}]},
      {"id": 4, "type": "PreviewImage", "inputs": [{"name": "images", "type": "IMAGE", "link": 5}]}],
    "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 1, 0, 2, 1, "IMAGE"], [3, 1, 0, 3, 0, "IMAGE"],
              [4, 2, 0, 3, 1, "IMAGE"], [5, 3, 0, 4, 0, "IMAGE"]]})json");
  ui["nodes"][1]["widgets_values"] = widgets_values;
  return ui;
}

TEST(ConvertUiToApi, DynamicComboOptionWidgetsFollowTheCombo) {
  auto with_sub =
      ConvertUiToApi(ColorTransferWorkflow({"mkl_lab", "target_frame", 7, 0.5}), V033Definitions());
  ASSERT_TRUE(with_sub.ok()) << with_sub.status().ToString();
  const json& inputs = (*with_sub)["2"]["inputs"];
  EXPECT_EQ(inputs["method"], "mkl_lab");
  EXPECT_EQ(inputs["source_stats"], "target_frame");
  EXPECT_EQ(inputs["source_stats.target_index"], 7);
  EXPECT_EQ(inputs["strength"], 0.5);
  // An option without widgets: the next value is the next real widget's.
  auto without =
      ConvertUiToApi(ColorTransferWorkflow({"histogram", "uniform", 0.25}), V033Definitions());
  ASSERT_TRUE(without.ok()) << without.status().ToString();
  EXPECT_FALSE((*without)["2"]["inputs"].contains("source_stats.target_index"));
  EXPECT_EQ((*without)["2"]["inputs"]["strength"], 0.25);
  // By name (dict widgets_values), dotted names included.
  auto by_name = ConvertUiToApi(
      ColorTransferWorkflow({{"source_stats", "target_frame"}, {"source_stats.target_index", 3}}),
      V033Definitions());
  ASSERT_TRUE(by_name.ok()) << by_name.status().ToString();
  EXPECT_EQ((*by_name)["2"]["inputs"]["source_stats.target_index"], 3);
  EXPECT_EQ((*by_name)["2"]["inputs"]["method"], "reinhard_lab");  // default: first option
  // Autogrow members are sockets named "<group>.<member>"; unlinked ones are not sent.
  EXPECT_EQ((*with_sub)["3"]["inputs"],
            json({{"images.image0", {"1", 0}}, {"images.image1", {"2", 0}}}));
  // Validation knows the members satisfy the required autogrow input "images".
  EXPECT_TRUE(ValidateWorkflow(*with_sub, &V033Definitions()).empty());
  json no_members = *with_sub;
  no_members["3"]["inputs"] = json::object();
  const auto problems = ValidateWorkflow(no_members, &V033Definitions());
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].where().input_name, "images");
}

TEST(ConvertUiToApi, WidgetsValuesNamedWinsOverPositions) {
  json ui = ColorTransferWorkflow({"mkl_lab", "uniform", 0.5});
  // Saved by a frontend that knew a widget this definition lacks: positions shifted, names not.
  ui["nodes"][1]["widgets_values"] = {"mkl_lab", "extra", "uniform", 0.5};
  ui["nodes"][1]["widgets_values_named"] = {
      {"method", "mkl_lab"}, {"source_stats", "uniform"}, {"strength", 0.5}, {"gone", 1}};
  auto prompt = ConvertUiToApi(ui, V033Definitions());
  ASSERT_TRUE(prompt.ok()) << prompt.status().ToString();
  EXPECT_EQ((*prompt)["2"]["inputs"]["source_stats"], "uniform");
  EXPECT_EQ((*prompt)["2"]["inputs"]["strength"], 0.5);
  EXPECT_FALSE((*prompt)["2"]["inputs"].contains("gone"));
}

// V3 MatchType sockets take what they are given: the switch passes an IMAGE through to a
// PreviewImage and validation sees no type mismatch (the frontend types its output '*').
TEST(ConvertUiToApi, MatchTypeSocketsAcceptTheirTemplateTypes) {
  const json ui = json::parse(R"json({"version": 0.4, "nodes": [
      {"id": 1, "type": "EmptyImage", "widgets_values": [8, 8, 1, 0],
       "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1, 2]}]},
      {"id": 2, "type": "ComfySwitchNode", "widgets_values": [true],
       "inputs": [{"name": "on_false", "type": "IMAGE", "link": 1},
                  {"name": "on_true", "type": "IMAGE", "link": 2}],
       "outputs": [{"name": "output", "type": "IMAGE", "links": [3]}]},
      {"id": 3, "type": "PreviewImage", "inputs": [{"name": "images", "type": "IMAGE", "link": 3}]}],
    "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 1, 0, 2, 1, "IMAGE"], [3, 2, 0, 3, 0, "IMAGE"]]})json");
  auto prompt = ConvertUiToApi(ui, V033Definitions());
  ASSERT_TRUE(prompt.ok()) << prompt.status().ToString();
  EXPECT_EQ((*prompt)["2"]["inputs"]["switch"], true);
  const auto problems = ValidateWorkflow(*prompt, &V033Definitions());
  EXPECT_TRUE(problems.empty()) << problems[0].ToString();
  // An input limited to "IMAGE,MASK" still rejects a LATENT.
  json bad = *prompt;
  bad["9"] = {{"class_type", "EmptyLatentImage"},
              {"inputs", {{"width", 64}, {"height", 64}, {"batch_size", 1}}}};
  bad["10"] = {{"class_type", "ResizeImageMaskNode"},
               {"inputs", {{"input", {"9", 0}}, {"resize_type", "scale dimensions"}}}};
  bool mismatch = false;
  for (const Status& st : ValidateWorkflow(bad, &V033Definitions())) {
    mismatch |= st.code() == ErrorCode::kTypeMismatch && st.where().node_id == "10";
  }
  EXPECT_TRUE(mismatch);
}

}  // namespace
}  // namespace discomfort::graph
