// Ports, order, stitching, pruning, reroute removal and validation, on the original Discomfort's
// saved workflows (tests/data/original_discomfort) and small hand-written graphs.
#include <cstdio>
#include <fstream>
#include <set>

#include <gtest/gtest.h>

#include "graph/ui_to_api.h"
#include "graph/workflow_ops.h"
#include "test_util.h"

namespace discomfort::graph {
namespace {

using nlohmann::json;
using testing::TestDataPath;
using testing::V033Definitions;

json Discomfort(const std::string& file) {
  return testing::LoadJsonOrDie(TestDataPath("original_discomfort/" + file));
}

// The README's notation: uid:MODE:TYPE/pass-by.
std::set<std::string> Notation(const PortSet& ports) {
  std::set<std::string> out;
  for (const auto* group : {&ports.inputs, &ports.outputs, &ports.passthrus, &ports.unconnected}) {
    for (const Port& p : *group) {
      out.insert(p.unique_id + ":" + PortModeName(p.mode) + ":" + p.type + "/" +
                 PassByForType(p.type));
    }
  }
  return out;
}

std::set<std::string> UiPortsOf(const json& doc) {
  auto wf = ParseUiWorkflow(doc);
  EXPECT_TRUE(wf.ok()) << wf.status().ToString();
  if (!wf.ok()) return {};
  auto ports = DiscoverUiPorts(*wf);
  EXPECT_TRUE(ports.ok()) << ports.status().ToString();
  return ports.ok() ? Notation(*ports) : std::set<std::string>{};
}

struct PortCase {
  const char* file;
  std::set<std::string> ports;
};

const std::vector<PortCase>& PortCases() {
  static const std::vector<PortCase> cases = {
      {"sdxl_load_model_and_lora.json",
       {"model_name:INPUT:COMBO/val", "lora_name:INPUT:COMBO/val", "lora_strength:INPUT:FLOAT/val",
        "model:OUTPUT:MODEL/ref", "clip:OUTPUT:CLIP/ref", "vae:OUTPUT:VAE/ref"}},
      {"sdxl_run_ksampler.json",
       {"model:INPUT:MODEL/ref", "clip:INPUT:CLIP/ref", "vae:INPUT:VAE/ref",
        "prompt:INPUT:STRING/val", "latent:INPUT:LATENT/val", "denoise:INPUT:FLOAT/val",
        "output_image:OUTPUT:IMAGE/val"}},
      {"latent_1024x1024_empty.json", {"latent:OUTPUT:LATENT/val"}},
      {"latent_from_input_image.json",
       {"input_image:INPUT:IMAGE/val", "vae:INPUT:VAE/ref", "latent:OUTPUT:LATENT/val"}},
      {"workflow1.json", {"model:OUTPUT:MODEL/ref", "clip:OUTPUT:CLIP/ref", "vae:OUTPUT:VAE/ref"}},
      {"workflow2.json", {"model_name:INPUT:COMBO/val", "model:OUTPUT:MODEL/ref"}},
      {"testa.json",
       {"model_name:INPUT:COMBO/val", "prompt:INPUT:STRING/val", "output_image:OUTPUT:IMAGE/val"}},
      {"testrunner1.json", {}},
      {"testrunner2.json", {}},
      {"test_server.json", {}},
      {"discomfort_16-9_extender_with_flux.json",
       {"port1:INPUT:IMAGE/val", "port1:OUTPUT:IMAGE/val"}},
      {"discomfort_supir_upscaler.json",
       {"input_image:INPUT:IMAGE/val", "image_description:INPUT:STRING/val",
        "output_image:OUTPUT:IMAGE/val"}},
  };
  return cases;
}

TEST(DiscoverUiPorts, EveryDiscomfortTestFileHasExactlyTheListedPorts) {
  for (const PortCase& c : PortCases()) {
    SCOPED_TRACE(c.file);
    EXPECT_EQ(UiPortsOf(Discomfort(c.file)), c.ports);
  }
}

TEST(DiscoverUiPorts, PortsSurviveConversionToApi) {
  // Files made of core nodes convert with the v0.33.0 definitions, and the API-side discovery
  // finds the same ports; files needing custom nodes fail naming the missing type.
  for (const PortCase& c : PortCases()) {
    SCOPED_TRACE(c.file);
    auto prompt = ConvertUiToApi(Discomfort(c.file), V033Definitions(), {c.file});
    const std::string file = c.file;
    if (file.rfind("testrunner", 0) == 0 || file.rfind("discomfort_", 0) == 0) {
      ASSERT_FALSE(prompt.ok());
      EXPECT_EQ(prompt.status().code(), ErrorCode::kNotFound);
      EXPECT_NE(prompt.status().message().find("unknown node type"), std::string::npos);
      continue;
    }
    ASSERT_TRUE(prompt.ok()) << prompt.status().ToString();
    auto ports = DiscoverPorts(*prompt, &V033Definitions().raw());
    ASSERT_TRUE(ports.ok()) << ports.status().ToString();
    EXPECT_EQ(Notation(*ports), c.ports);
  }
}

TEST(DiscoverUiPorts, ConvertedSamplerKeepsTheSavedSeed) {
  auto prompt = ConvertUiToApi(Discomfort("sdxl_run_ksampler.json"), V033Definitions());
  ASSERT_TRUE(prompt.ok()) << prompt.status().ToString();
  bool found = false;
  for (const auto& [id, node] : prompt->items()) {
    if (node["class_type"] != "KSampler") continue;
    found = true;
    EXPECT_EQ(node["inputs"]["seed"], 0);
    EXPECT_EQ(node["inputs"]["steps"], 20);
    EXPECT_EQ(node["inputs"]["sampler_name"], "uni_pc");
    EXPECT_TRUE(IsLink(node["inputs"]["denoise"]));  // converted widget fed by a port
  }
  EXPECT_TRUE(found);
}

json TwoPorts(const json& first_values, const json& second_values) {
  json ui = json::parse(R"json({"version": 0.4, "nodes": [
      {"id": 1, "type": "EmptyLatentImage", "widgets_values": [512, 512, 1],
       "outputs": [{"name": "LATENT", "type": "LATENT", "links": [1, 2]}]},
      {"id": 2, "type": "DiscomfortPort", "inputs": [{"name": "input_data", "type": "*", "link": 1}],
       "outputs": [{"name": "output_data", "type": "*", "links": null}]},
      {"id": 3, "type": "DiscomfortPort", "inputs": [{"name": "input_data", "type": "*", "link": 2}],
       "outputs": [{"name": "output_data", "type": "*", "links": null}]}],
    "links": [[1, 1, 0, 2, 0, "*"], [2, 1, 0, 3, 0, "*"]]})json");
  ui["nodes"][1]["widgets_values"] = first_values;
  ui["nodes"][2]["widgets_values"] = second_values;
  return ui;
}

TEST(DiscoverUiPorts, DuplicateOutputUniqueIdNamesBothNodes) {
  auto wf = ParseUiWorkflow(TwoPorts({"x"}, {"x"}), "dup.json");
  ASSERT_TRUE(wf.ok());
  auto ports = DiscoverUiPorts(*wf);
  ASSERT_FALSE(ports.ok());
  EXPECT_EQ(ports.status().code(), ErrorCode::kAlreadyExists);
  EXPECT_NE(ports.status().message().find("nodes 2 and 3"), std::string::npos)
      << ports.status().message();
  EXPECT_EQ(ports.status().where().port, "x");
  EXPECT_EQ(ports.status().where().workflow, "dup.json");
}

TEST(DiscoverUiPorts, MissingUniqueIdIsAnErrorAndTagsAreParsed) {
  auto wf = ParseUiWorkflow(TwoPorts({"a", " one, two ,"}, json::array()));
  ASSERT_TRUE(wf.ok());
  auto ports = DiscoverUiPorts(*wf);
  ASSERT_FALSE(ports.ok());
  EXPECT_EQ(ports.status().where().node_id, "3");

  wf = ParseUiWorkflow(TwoPorts({"a", " one, two ,"}, {{"unique_id", "b"}}));
  ASSERT_TRUE(wf.ok());
  ports = DiscoverUiPorts(*wf);
  ASSERT_TRUE(ports.ok()) << ports.status().ToString();
  ASSERT_EQ(ports->outputs.size(), 2u);
  EXPECT_EQ(ports->outputs[0].tags, (std::vector<std::string>{"one", "two"}));
  EXPECT_EQ(ports->outputs[0].type, "LATENT");
  EXPECT_EQ(ports->outputs[1].unique_id, "b");
}

// UI and API discovery once trimmed tags differently (the API side kept a trailing '\r'), and
// only the UI side rejected a unique_id of blanks: both now go through one rule.
TEST(PortText, UiAndApiReadTagsAndBlankUniqueIdsAlike) {
  EXPECT_EQ(SplitPortTags(" a,\tb\r\n, c\r ,,\v"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(SplitPortTags(""), std::vector<std::string>{});
  EXPECT_EQ(SplitPortTags("one two"), std::vector<std::string>{"one two"});
  EXPECT_FALSE(IsUsablePortUniqueId(" \t\r\n"));
  EXPECT_TRUE(IsUsablePortUniqueId(" x "));

  const json ui = TwoPorts({"a", "x,\r\ny\r"}, {"b", "\tz\r"});
  auto wf = ParseUiWorkflow(ui);
  ASSERT_TRUE(wf.ok());
  auto from_ui = DiscoverUiPorts(*wf);
  ASSERT_TRUE(from_ui.ok()) << from_ui.status().ToString();
  auto prompt = ConvertUiToApi(ui, V033Definitions());
  ASSERT_TRUE(prompt.ok()) << prompt.status().ToString();
  auto from_api = DiscoverPorts(*prompt, &V033Definitions().raw());
  ASSERT_TRUE(from_api.ok()) << from_api.status().ToString();
  for (const PortSet* ports : {&*from_ui, &*from_api}) {
    ASSERT_EQ(ports->outputs.size(), 2u);
    EXPECT_EQ(ports->outputs[0].tags, (std::vector<std::string>{"x", "y"}));
    EXPECT_EQ(ports->outputs[1].tags, (std::vector<std::string>{"z"}));
  }

  const json blank = TwoPorts({"a"}, {" \r\n"});
  wf = ParseUiWorkflow(blank);
  ASSERT_TRUE(wf.ok());
  auto ui_blank = DiscoverUiPorts(*wf);
  ASSERT_FALSE(ui_blank.ok());
  EXPECT_EQ(ui_blank.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ui_blank.status().where().node_id, "3");
  prompt = ConvertUiToApi(blank, V033Definitions());
  ASSERT_TRUE(prompt.ok()) << prompt.status().ToString();
  auto api_blank = DiscoverPorts(*prompt);
  ASSERT_FALSE(api_blank.ok());
  EXPECT_EQ(api_blank.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(api_blank.status().where().node_id, "3");
}

TEST(DiscoverWorkflowPorts, AcceptsBothFormats) {
  const json ui = Discomfort("testa.json");
  auto from_ui = DiscoverWorkflowPorts(ui, nullptr);
  ASSERT_TRUE(from_ui.ok());
  auto prompt = ConvertUiToApi(ui, V033Definitions());
  ASSERT_TRUE(prompt.ok());
  auto from_api = DiscoverWorkflowPorts(*prompt, &V033Definitions());
  ASSERT_TRUE(from_api.ok()) << from_api.status().ToString();
  EXPECT_EQ(Notation(*from_ui), Notation(*from_api));
}

// ---- order --------------------------------------------------------------------------------

TEST(TopologicalOrder, EveryLinkGoesForward) {
  auto wf = ParseUiWorkflow(Discomfort("discomfort_supir_upscaler.json"));
  ASSERT_TRUE(wf.ok());
  auto order = TopologicalOrder(wf->root);
  ASSERT_TRUE(order.ok()) << order.status().ToString();
  ASSERT_EQ(order->size(), wf->root.nodes.size());
  std::map<std::string, size_t> position;
  for (size_t i = 0; i < order->size(); ++i) position[(*order)[i]] = i;
  for (const auto& [id, link] : wf->root.links) {
    EXPECT_LT(position.at(link.origin_id), position.at(link.target_id)) << "link " << id;
  }
}

TEST(TopologicalOrder, CycleIsAnErrorListingItsNodes) {
  json ui = json::parse(R"json({"version": 0.4, "nodes": [
      {"id": 1, "type": "A"}, {"id": 2, "type": "B"}, {"id": 3, "type": "C"}, {"id": 4, "type": "D"}],
    "links": [[1, 1, 0, 2, 0, "X"], [2, 2, 0, 3, 0, "X"], [3, 3, 0, 2, 1, "X"], [4, 3, 0, 4, 0, "X"]]})json");
  auto wf = ParseUiWorkflow(ui);
  ASSERT_TRUE(wf.ok());
  auto order = TopologicalOrder(wf->root);
  ASSERT_FALSE(order.ok());
  EXPECT_EQ(order.status().code(), ErrorCode::kCycle);
  EXPECT_NE(order.status().message().find("2 -> 3 -> 2"), std::string::npos)
      << order.status().message();

  json prompt = {{"1", {{"class_type", "A"}, {"inputs", {{"x", {"2", 0}}}}}},
                 {"2", {{"class_type", "B"}, {"inputs", {{"x", {"1", 0}}}}}},
                 {"3", {{"class_type", "C"}, {"inputs", json::object()}}}};
  auto api_order = TopologicalOrderOfPrompt(prompt);
  ASSERT_FALSE(api_order.ok());
  EXPECT_NE(api_order.status().message().find("1 -> 2 -> 1"), std::string::npos)
      << api_order.status().message();
  prompt["1"]["inputs"]["x"] = json::array({"3", 0});
  api_order = TopologicalOrderOfPrompt(prompt);
  ASSERT_TRUE(api_order.ok());
  EXPECT_EQ(*api_order, (std::vector<std::string>{"3", "1", "2"}));
}

// ---- stitching ----------------------------------------------------------------------------

void ExpectConsistentUi(const json& ui) {
  auto wf = ParseUiWorkflow(ui);
  ASSERT_TRUE(wf.ok()) << wf.status().ToString();
  for (const auto& [id, link] : wf->root.links) {
    const UiNode* origin = wf->root.FindNode(link.origin_id);
    const UiNode* target = wf->root.FindNode(link.target_id);
    ASSERT_NE(origin, nullptr) << "link " << id;
    ASSERT_NE(target, nullptr) << "link " << id;
    ASSERT_LT(link.target_slot, static_cast<int>(target->inputs.size()));
    EXPECT_EQ(target->inputs[link.target_slot].link, id);
    ASSERT_LT(link.origin_slot, static_cast<int>(origin->outputs.size()));
    const auto& out_links = origin->outputs[link.origin_slot].links;
    EXPECT_NE(std::find(out_links.begin(), out_links.end(), id), out_links.end());
  }
  for (const UiNode& node : wf->root.nodes) {
    for (const UiInput& in : node.inputs) {
      if (in.link) {
        EXPECT_NE(wf->root.FindLink(*in.link), nullptr) << "node " << node.id;
      }
    }
  }
}

TEST(StitchWorkflows, OriginalTest4ChainsLoaderLatentAndSampler) {
  const std::vector<json> parts = {Discomfort("sdxl_load_model_and_lora.json"),
                                   Discomfort("latent_from_input_image.json"),
                                   Discomfort("sdxl_run_ksampler.json")};
  auto stitched = StitchWorkflows(parts, {}, {"load", "latent", "sample"});
  ASSERT_TRUE(stitched.ok()) << stitched.status().ToString();
  size_t node_count = 0;
  for (const json& p : parts) node_count += p["nodes"].size();
  EXPECT_EQ(stitched->workflow["nodes"].size(), node_count);
  EXPECT_EQ(stitched->workflow["last_node_id"], static_cast<int64_t>(node_count));
  ExpectConsistentUi(stitched->workflow);

  std::set<std::string> inputs, outputs, passthrus;
  for (const Port& p : stitched->ports.inputs) inputs.insert(p.unique_id);
  for (const Port& p : stitched->ports.outputs) outputs.insert(p.unique_id);
  for (const Port& p : stitched->ports.passthrus) passthrus.insert(p.unique_id);
  EXPECT_EQ(inputs, (std::set<std::string>{"model_name", "lora_name", "lora_strength",
                                           "input_image", "prompt", "denoise"}));
  EXPECT_EQ(outputs, (std::set<std::string>{"output_image"}));
  EXPECT_EQ(passthrus, (std::set<std::string>{"model", "clip", "vae", "latent"}));
  EXPECT_EQ(stitched->ports.passthrus.size(), 9u);  // both ends of each of the 5 joins (vae x3)
  EXPECT_EQ(stitched->execution_order.size(), node_count);

  // The stitched workflow converts, and the API-side discovery agrees.
  auto prompt = ConvertUiToApi(stitched->workflow, V033Definitions());
  ASSERT_TRUE(prompt.ok()) << prompt.status().ToString();
  auto api_ports = DiscoverPorts(*prompt, &V033Definitions().raw());
  ASSERT_TRUE(api_ports.ok()) << api_ports.status().ToString();
  EXPECT_EQ(Notation(*api_ports), Notation(stitched->ports));
  // ... and is what stitching the API prompts gives, ids aside.
  std::vector<json> prompts;
  for (const json& p : parts) prompts.push_back(*ConvertUiToApi(p, V033Definitions()));
  auto api_stitched = StitchWorkflows(prompts, {}, {}, &V033Definitions());
  ASSERT_TRUE(api_stitched.ok()) << api_stitched.status().ToString();
  EXPECT_EQ(api_stitched->workflow.size(), prompt->size());
  EXPECT_EQ(Notation(api_stitched->ports), Notation(stitched->ports));
}

TEST(StitchWorkflows, OriginalStitchTestDeletesLeftoverPorts) {
  StitchOptions options;
  options.delete_input_ports = true;
  options.delete_output_ports = true;
  auto stitched =
      StitchWorkflows({Discomfort("workflow1.json"), Discomfort("workflow2.json")}, options);
  ASSERT_TRUE(stitched.ok()) << stitched.status().ToString();
  ExpectConsistentUi(stitched->workflow);
  std::multiset<std::string> types;
  for (const json& n : stitched->workflow["nodes"]) types.insert(n["type"].get<std::string>());
  EXPECT_EQ(types,
            (std::multiset<std::string>{"CheckpointLoaderSimple", "CheckpointLoaderSimple"}));
  EXPECT_TRUE(stitched->workflow["links"].empty());
  EXPECT_TRUE(stitched->ports.inputs.empty());
  EXPECT_TRUE(stitched->ports.outputs.empty());
}

TEST(StitchWorkflows, IncompatiblePortTypesNameBothSides) {
  json consumer = Discomfort("latent_from_input_image.json");
  for (json& n : consumer["nodes"]) {
    if (n["type"] == "DiscomfortPort" && n["widgets_values"][0] == "input_image") {
      n["widgets_values"][0] = "model";  // an IMAGE input fed by a MODEL output
    }
  }
  auto stitched = StitchWorkflows({Discomfort("workflow1.json"), consumer}, {}, {"w1", "w2"});
  ASSERT_FALSE(stitched.ok());
  EXPECT_EQ(stitched.status().code(), ErrorCode::kTypeMismatch);
  const std::string& msg = stitched.status().message();
  EXPECT_NE(msg.find("w1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("w2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("MODEL"), std::string::npos) << msg;
  EXPECT_NE(msg.find("IMAGE"), std::string::npos) << msg;
}

TEST(StitchWorkflows, LaterOutputShadowsEarlierOneAndRepeatedInputsMerge) {
  // workflow1 and workflow2 both output `model`: the later one is the value, the earlier port goes.
  const json w1 = Discomfort("workflow1.json");
  auto stitched = StitchWorkflows({w1, Discomfort("workflow2.json")});
  ASSERT_TRUE(stitched.ok()) << stitched.status().ToString();
  ExpectConsistentUi(stitched->workflow);
  EXPECT_EQ(Notation(stitched->ports),
            (std::set<std::string>{"model:OUTPUT:MODEL/ref", "clip:OUTPUT:CLIP/ref",
                                   "vae:OUTPUT:VAE/ref", "model_name:INPUT:COMBO/val"}));
  const Port* model = stitched->ports.FindOutput("model");
  ASSERT_NE(model, nullptr);
  EXPECT_GT(std::stoll(model->node_id), static_cast<int64_t>(w1["nodes"].size()));

  // The same file twice: one `model_name` and one `prompt` INPUT feed both copies; the first
  // `output_image` is shadowed by the second.
  const json testa = Discomfort("testa.json");
  auto twice = StitchWorkflows({testa, testa});
  ASSERT_TRUE(twice.ok()) << twice.status().ToString();
  ExpectConsistentUi(twice->workflow);
  EXPECT_EQ(Notation(twice->ports), UiPortsOf(testa));
  EXPECT_EQ(twice->workflow["nodes"].size(), 2 * testa["nodes"].size() - 3);
  const Port* prompt = twice->ports.FindInput("prompt");
  ASSERT_NE(prompt, nullptr);
  EXPECT_EQ(prompt->consumers.size(), 2u);
  auto api = ConvertUiToApi(twice->workflow, V033Definitions());
  ASSERT_TRUE(api.ok()) << api.status().ToString();
  auto api_ports = DiscoverPorts(*api);
  ASSERT_TRUE(api_ports.ok()) << api_ports.status().ToString();

  // The API path gives the same result.
  const json testa_api = *ConvertUiToApi(testa, V033Definitions());
  auto twice_api = StitchWorkflows({testa_api, testa_api}, {}, {}, &V033Definitions());
  ASSERT_TRUE(twice_api.ok()) << twice_api.status().ToString();
  EXPECT_EQ(twice_api->workflow.size(), api->size());
  EXPECT_EQ(Notation(twice_api->ports), Notation(twice->ports));
}

TEST(StitchWorkflows, RejectsEmptyAndUnknownInput) {
  EXPECT_EQ(StitchWorkflows({}).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(StitchWorkflows({json::array()}).status().code(), ErrorCode::kParse);
  // A UI part among API parts needs definitions.
  auto prompt = ConvertUiToApi(Discomfort("workflow1.json"), V033Definitions());
  ASSERT_TRUE(prompt.ok());
  auto mixed = StitchWorkflows({*prompt, Discomfort("workflow2.json")});
  ASSERT_FALSE(mixed.ok());
  EXPECT_EQ(mixed.status().code(), ErrorCode::kInvalidArgument);
}

// ---- pruning ------------------------------------------------------------------------------

std::set<std::string> UiNodeIds(const json& ui) {
  std::set<std::string> ids;
  for (const json& n : ui["nodes"]) ids.insert(*NodeIdToString(n["id"]));
  return ids;
}

TEST(PruneToOutput, KeepsExactlyTheAncestors) {
  const json ui = Discomfort("sdxl_load_model_and_lora.json");
  auto vae = PruneToOutput(ui, "vae");
  ASSERT_TRUE(vae.ok()) << vae.status().ToString();
  EXPECT_EQ(UiNodeIds(*vae), (std::set<std::string>{"8", "1", "9"}));
  ExpectConsistentUi(*vae);
  auto clip = PruneToOutput(ui, "clip");
  ASSERT_TRUE(clip.ok());
  EXPECT_EQ(UiNodeIds(*clip), (std::set<std::string>{"7", "2", "1", "9", "10", "11"}));
  ExpectConsistentUi(*clip);

  auto prompt = ConvertUiToApi(ui, V033Definitions());
  ASSERT_TRUE(prompt.ok());
  auto api = PruneToOutput(*prompt, "vae");
  ASSERT_TRUE(api.ok()) << api.status().ToString();
  std::set<std::string> api_ids;
  for (const auto& [id, node] : api->items()) api_ids.insert(id);
  EXPECT_EQ(api_ids, (std::set<std::string>{"8", "1", "9"}));
  EXPECT_TRUE(ValidateApiPrompt(*api).ok());

  auto missing = PruneToOutput(ui, "model_name");  // an INPUT, not an OUTPUT
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(missing.status().message().find("clip"), std::string::npos);
}

// ---- reroutes -----------------------------------------------------------------------------

TEST(RemoveReroutes, CollapsesChainsOnARealWorkflow) {
  const json ui = Discomfort("discomfort_16-9_extender_with_flux.json");
  auto wf = ParseUiWorkflow(ui);
  ASSERT_TRUE(wf.ok());
  size_t reroutes = 0;
  for (const UiNode& n : wf->root.nodes) reroutes += n.type == "Reroute";
  ASSERT_EQ(reroutes, 6u);
  auto cleaned = RemoveReroutes(ui);
  ASSERT_TRUE(cleaned.ok()) << cleaned.status().ToString();
  EXPECT_EQ((*cleaned)["nodes"].size(), wf->root.nodes.size() - reroutes);
  ExpectConsistentUi(*cleaned);
  auto after = ParseUiWorkflow(*cleaned);
  ASSERT_TRUE(after.ok());
  // Every consumer keeps a link, now straight from a real node.
  size_t consumer_links_before = 0;
  for (const auto& [id, link] : wf->root.links) {
    const UiNode* t = wf->root.FindNode(link.target_id);
    consumer_links_before += t->type != "Reroute";
  }
  EXPECT_EQ(after->root.links.size(), consumer_links_before);
  // The ports are unchanged.
  EXPECT_EQ(UiPortsOf(*cleaned), UiPortsOf(ui));
}

TEST(RemoveReroutes, ConvertsToTheSamePrompt) {
  json ui = Discomfort("latent_from_input_image.json");
  // Put a two-reroute chain on the VAE link.
  auto wf = ParseUiWorkflow(ui);
  ASSERT_TRUE(wf.ok());
  const UiLink* vae_link = nullptr;
  for (const auto& [id, link] : wf->root.links) {
    const UiNode* t = wf->root.FindNode(link.target_id);
    if (t->type == "VAEEncode" && link.target_slot == 1) vae_link = &link;
  }
  ASSERT_NE(vae_link, nullptr);
  const json before = *ConvertUiToApi(ui, V033Definitions());
  for (json& l : ui["links"]) {
    if (l[0] == vae_link->id) l[3] = 100, l[4] = 0;
  }
  ui["nodes"].push_back({{"id", 100},
                         {"type", "Reroute"},
                         {"inputs", {{{"name", ""}, {"type", "*"}, {"link", vae_link->id}}}},
                         {"outputs", {{{"name", ""}, {"type", "VAE"}, {"links", {900}}}}}});
  ui["nodes"].push_back({{"id", 101},
                         {"type", "Reroute"},
                         {"inputs", {{{"name", ""}, {"type", "*"}, {"link", 900}}}},
                         {"outputs", {{{"name", ""}, {"type", "VAE"}, {"links", {901}}}}}});
  ui["links"].push_back({900, 100, 0, 101, 0, "*"});
  ui["links"].push_back({901, 101, 0, std::stoll(vae_link->target_id), 1, "VAE"});
  for (json& n : ui["nodes"]) {
    if (n["type"] == "VAEEncode") n["inputs"][1]["link"] = 901;
  }
  auto with_reroutes = ConvertUiToApi(ui, V033Definitions());
  ASSERT_TRUE(with_reroutes.ok()) << with_reroutes.status().ToString();
  EXPECT_EQ(*with_reroutes, before);
  auto cleaned = RemoveReroutes(ui);
  ASSERT_TRUE(cleaned.ok()) << cleaned.status().ToString();
  ExpectConsistentUi(*cleaned);
  auto after = ConvertUiToApi(*cleaned, V033Definitions());
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(*after, before);
}

// ---- validation ---------------------------------------------------------------------------

TEST(ValidateWorkflow, RealWorkflowsHaveNoProblems) {
  for (const char* file : {"sdxl_run_ksampler.json", "testa.json", "workflow1.json"}) {
    SCOPED_TRACE(file);
    const auto problems = ValidateWorkflow(Discomfort(file), &V033Definitions(), file);
    for (const Status& p : problems) ADD_FAILURE() << p.ToString();
  }
}

TEST(ValidateWorkflow, ReportsEveryProblemOfAPrompt) {
  json prompt = *ConvertUiToApi(Discomfort("testa.json"), V033Definitions());
  std::string decode, ksampler, loader;
  for (const auto& [id, node] : prompt.items()) {
    if (node["class_type"] == "VAEDecode") decode = id;
    if (node["class_type"] == "KSampler") ksampler = id;
    if (node["class_type"] == "CheckpointLoaderSimple") loader = id;
  }
  prompt[decode]["inputs"]["vae"] = json::array({loader, 0});     // MODEL into a VAE input
  prompt[ksampler]["inputs"]["model"] = json::array({"999", 0});  // missing node
  prompt[ksampler]["inputs"].erase("steps");                      // missing required input
  prompt["500"] = {{"class_type", "NotANode"}, {"inputs", json::object()}};  // unknown type
  const auto problems = ValidateWorkflow(prompt, &V033Definitions(), "p.json");
  std::set<std::pair<std::string, ErrorCode>> seen;
  for (const Status& p : problems) seen.insert({p.where().node_id, p.code()});
  EXPECT_TRUE(seen.count({decode, ErrorCode::kTypeMismatch}));
  EXPECT_TRUE(seen.count({ksampler, ErrorCode::kNotFound}));
  EXPECT_TRUE(seen.count({ksampler, ErrorCode::kValidation}));
  EXPECT_TRUE(seen.count({"500", ErrorCode::kNotFound}));
  EXPECT_EQ(problems.size(), 4u);
  for (const Status& p : problems) EXPECT_EQ(p.where().workflow, "p.json");
}

TEST(ValidateWorkflow, ReportsUiLinkProblemsAndCycles) {
  json ui = Discomfort("workflow1.json");
  ui["links"].push_back({77, 1234, 0, ui["nodes"][0]["id"], 0, "*"});
  ui["nodes"][0]["inputs"] = json::array({{{"name", "x"}, {"type", "*"}, {"link", 4242}}});
  const auto problems = ValidateWorkflow(ui, nullptr);
  ASSERT_GE(problems.size(), 2u);
  bool missing_node = false, missing_link = false;
  for (const Status& p : problems) {
    missing_node |= p.message().find("node 1234") != std::string::npos;
    missing_link |= p.message().find("link 4242") != std::string::npos;
  }
  EXPECT_TRUE(missing_node);
  EXPECT_TRUE(missing_link);
  EXPECT_EQ(ValidateWorkflow(json::array(), nullptr).size(), 1u);
}

// Found by tests/fuzz/api_prompt_fuzz and stitch_fuzz: a node may omit "inputs" (ComfyUI accepts
// that), and a DiscomfortPort without them was read through a missing key (an assertion in debug
// builds, undefined behaviour in release). It is a port without a unique_id: an error.
TEST(Reliability, PortWithoutInputsIsAnErrorNotACrash) {
  const json prompt = json::parse(R"({"1": {"class_type": "DiscomfortPort"},
    "2": {"class_type": "ImageBlur", "inputs": {"image": ["1", 0]}}})");
  auto ports = DiscoverPorts(prompt, &V033Definitions().raw());
  ASSERT_FALSE(ports.ok());
  EXPECT_EQ(ports.status().where().node_id, "1");
  auto stitched = StitchWorkflows({prompt, prompt}, {}, {}, &V033Definitions());
  EXPECT_FALSE(stitched.ok());
  EXPECT_FALSE(DiscoverWorkflowPorts(prompt, &V033Definitions()).ok());
}

// Found by tests/reliability/faults.py (bad input "huge numbers"): a number beyond double
// (1e400) is not a parse_error but an out_of_range, which escaped the re-parse that builds the
// message: std::terminate in `discomfort run`.
TEST(Reliability, NumberOverflowIsAParseError) {
  auto prompt = ParseApiPrompt(R"({"1": {"class_type": "ImageBlur", "inputs": {"sigma": 1e400}}})",
                               "big.json");
  ASSERT_FALSE(prompt.ok());
  EXPECT_EQ(prompt.status().code(), ErrorCode::kParse);
  const std::string path = ::testing::TempDir() + "/discomfort_number_overflow.json";
  {
    std::ofstream out(path);
    out << R"({"1": {"class_type": "ImageBlur", "inputs": {"sigma": -1e400}}})";
  }
  auto loaded = LoadJsonFile(path);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), ErrorCode::kParse);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace discomfort::graph
