// WorkflowBuilder against the real ComfyUI v0.33.0 node definitions: every error a build step can
// report, a text-to-image graph built in code whose UI workflow converts back (by the frontend
// rules of graph::ToApiPrompt) to the prompt the builder emits, and its ports.
#include "graph/workflow_builder.h"

#include <set>

#include <gtest/gtest.h>

#include "graph/ui_to_api.h"
#include "graph/workflow_ops.h"
#include "test_util.h"

namespace discomfort::graph {
namespace {

using nlohmann::json;
using testing::V033Definitions;

bool Mentions(const Status& st, const std::string& text) {
  return st.message().find(text) != std::string::npos;
}

#define EXPECT_MENTIONS(st, text) EXPECT_TRUE(Mentions(st, text)) << (st).ToString()

TEST(WorkflowBuilder, UnknownClassIsNotFoundWithTheClosestName) {
  WorkflowBuilder b(V033Definitions());
  auto typo = b.AddNode("KSamplr");
  ASSERT_FALSE(typo.ok());
  EXPECT_EQ(typo.status().code(), ErrorCode::kNotFound);
  EXPECT_MENTIONS(typo.status(), "'KSamplr'");
  EXPECT_MENTIONS(typo.status(), "did you mean 'KSampler'?");
  EXPECT_EQ(typo.status().where().class_type, "KSamplr");

  auto lower = b.AddNode("checkpointloadersimple");
  ASSERT_FALSE(lower.ok());
  EXPECT_MENTIONS(lower.status(), "did you mean 'CheckpointLoaderSimple'?");

  auto nothing = b.AddNode("Zq9xW");
  ASSERT_FALSE(nothing.ok());
  EXPECT_MENTIONS(nothing.status(), "'Zq9xW'");
  EXPECT_FALSE(Mentions(nothing.status(), "did you mean"));
  EXPECT_EQ(b.size(), 0u);
}

TEST(WorkflowBuilder, SetChecksNamesKindsRangesAndCombos) {
  WorkflowBuilder b(V033Definitions());
  auto sampler = b.AddNode("KSampler");
  ASSERT_TRUE(sampler.ok());
  EXPECT_EQ(sampler->id, 1);

  Status st = b.Set(*sampler, "stepz", 20);
  EXPECT_EQ(st.code(), ErrorCode::kNotFound);
  EXPECT_MENTIONS(st, "no input 'stepz'");
  EXPECT_MENTIONS(st, "model, seed, steps, cfg, sampler_name, scheduler, positive, negative");
  EXPECT_EQ(st.where().node_id, "1");
  EXPECT_EQ(st.where().class_type, "KSampler");

  st = b.Set(*sampler, "steps", "20");
  EXPECT_EQ(st.code(), ErrorCode::kTypeMismatch);
  EXPECT_MENTIONS(st, "input 'steps' of node 1 (KSampler) is INT: expects an integer");
  EXPECT_EQ(b.Set(*sampler, "steps", 2.5).code(), ErrorCode::kTypeMismatch);
  EXPECT_EQ(b.Set(*sampler, "cfg", "high").code(), ErrorCode::kTypeMismatch);
  EXPECT_EQ(b.Set(*sampler, "sampler_name", 3).code(), ErrorCode::kTypeMismatch);
  auto text = b.AddNode("CLIPTextEncode");
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(b.Set(*text, "text", 5).code(), ErrorCode::kTypeMismatch);
  auto norm = b.AddNode("CFGNorm");
  ASSERT_TRUE(norm.ok());
  st = b.Set(*norm, "pre_cfg", 1);
  EXPECT_EQ(st.code(), ErrorCode::kTypeMismatch);
  EXPECT_MENTIONS(st, "expects a boolean");
  EXPECT_TRUE(b.Set(*norm, "pre_cfg", true).ok());

  st = b.Set(*sampler, "steps", 0);
  EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument);
  EXPECT_MENTIONS(st, "value 0 for input 'steps' of node 1 (KSampler) is out of range [1, 10000]");
  EXPECT_EQ(st.where().input_name, "steps");
  EXPECT_EQ(b.Set(*sampler, "cfg", 100.5).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(b.Set(*sampler, "seed", -1).code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(b.Set(*sampler, "seed", json(18446744073709551615ULL)).ok());  // the max itself
  EXPECT_TRUE(b.Set(*sampler, "cfg", 7).ok());  // an integer is a number

  st = b.Set(*sampler, "sampler_name", "bogus");
  EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument);
  EXPECT_MENTIONS(st, "\"bogus\" for input 'sampler_name' of node 1 (KSampler)");
  EXPECT_MENTIONS(st, "not one of the combo's values: euler, euler_cfg_pp");
  EXPECT_TRUE(b.Set(*sampler, "sampler_name", "heun").ok());

  st = b.Set(*sampler, "model", "x");
  EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument);
  EXPECT_MENTIONS(st, "is a MODEL socket");

  EXPECT_EQ(b.Set(NodeRef{9}, "steps", 1).code(), ErrorCode::kNotFound);

  // A combo listing no values (no model files where the definitions were dumped) takes any name.
  auto ckpt = b.AddNode("CheckpointLoaderSimple");
  ASSERT_TRUE(ckpt.ok());
  EXPECT_TRUE(b.Set(*ckpt, "ckpt_name", "any.safetensors").ok());
  EXPECT_EQ(b.Set(*ckpt, "ckpt_name", 1).code(), ErrorCode::kTypeMismatch);
}

TEST(WorkflowBuilder, UnsetWidgetsTakeDefaultsAndNullRestoresOne) {
  WorkflowBuilder b(V033Definitions());
  auto latent = b.AddNode("EmptyLatentImage");
  ASSERT_TRUE(latent.ok());
  ASSERT_TRUE(b.Set(*latent, "width", 768).ok());
  auto prompt = b.ToApiPrompt();
  ASSERT_TRUE(prompt.ok()) << prompt.status().ToString();
  EXPECT_EQ((*prompt)["1"]["inputs"], json({{"width", 768}, {"height", 512}, {"batch_size", 1}}));
  EXPECT_EQ((*prompt)["1"]["_meta"]["title"], "Empty Latent Image");
  ASSERT_TRUE(b.Set(*latent, "width", nullptr).ok());
  prompt = b.ToApiPrompt();
  ASSERT_TRUE(prompt.ok());
  EXPECT_EQ((*prompt)["1"]["inputs"]["width"], 512);
}

TEST(WorkflowBuilder, ConnectChecksOutputsInputsTypesAndLoops) {
  WorkflowBuilder b(V033Definitions());
  auto ckpt = b.AddNode("CheckpointLoaderSimple");
  auto sampler = b.AddNode("KSampler");
  auto decode = b.AddNode("VAEDecode");
  ASSERT_TRUE(ckpt.ok() && sampler.ok() && decode.ok());

  Status st = b.Connect(*ckpt, "CLIP", *sampler, "model");
  EXPECT_EQ(st.code(), ErrorCode::kTypeMismatch);
  EXPECT_MENTIONS(st,
                  "output 1 (CLIP) of node 1 (CheckpointLoaderSimple) to input 'model' of "
                  "node 2 (KSampler)");
  EXPECT_EQ(st.where().input_name, "model");

  st = b.Connect(*ckpt, 3, *sampler, "model");
  EXPECT_EQ(st.code(), ErrorCode::kNotFound);
  EXPECT_MENTIONS(st, "no output slot 3; its outputs: 0 MODEL (MODEL), 1 CLIP (CLIP), 2 VAE (VAE)");
  st = b.Connect(*ckpt, "UNET", *sampler, "model");
  EXPECT_EQ(st.code(), ErrorCode::kNotFound);
  EXPECT_MENTIONS(st, "no output 'UNET'");
  st = b.Connect(*ckpt, 0, *sampler, "unet");
  EXPECT_EQ(st.code(), ErrorCode::kNotFound);
  EXPECT_MENTIONS(st, "no input 'unet'; its inputs: model, seed");
  EXPECT_EQ(b.Connect(*ckpt, 0, NodeRef{7}, "model").code(), ErrorCode::kNotFound);

  ASSERT_TRUE(b.Connect(*ckpt, "MODEL", *sampler, "model").ok());
  ASSERT_TRUE(b.Connect(*sampler, 0, *decode, "samples").ok());
  // A node reading its own descendant: LATENT → KSampler.latent_image from the decode's chain.
  auto encode = b.AddNode("VAEEncode");
  ASSERT_TRUE(encode.ok());
  ASSERT_TRUE(b.Connect(*decode, 0, *encode, "pixels").ok());
  st = b.Connect(*encode, 0, *sampler, "latent_image");
  EXPECT_EQ(st.code(), ErrorCode::kCycle);
  EXPECT_MENTIONS(st, "would close a loop");
}

TEST(WorkflowBuilder, PortErrorsLeaveTheBuilderAsItWas) {
  WorkflowBuilder b(V033Definitions());
  auto latent = b.AddNode("EmptyLatentImage");
  auto decode = b.AddNode("VAEDecode");
  ASSERT_TRUE(latent.ok() && decode.ok());

  auto blank = b.AddOutputPort(" \t", *latent, 0);
  ASSERT_FALSE(blank.ok());
  EXPECT_EQ(blank.status().code(), ErrorCode::kInvalidArgument);
  auto comma = b.AddOutputPort("latent", *latent, 0, {"a,b"});
  ASSERT_FALSE(comma.ok());
  EXPECT_EQ(comma.status().code(), ErrorCode::kInvalidArgument);
  // A port whose link is refused: an INPUT port is "*", so the target input must exist.
  auto bad_input = b.AddInputPort("vae", *decode, "vea");
  ASSERT_FALSE(bad_input.ok());
  EXPECT_EQ(bad_input.status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(b.size(), 2u);

  auto first = b.AddInputPort("vae", *decode, "vae");
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto again = b.AddInputPort("vae", *decode, "samples");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), ErrorCode::kAlreadyExists);
  EXPECT_MENTIONS(again.status(), "INPUT port 'vae' already exists (node 3)");
  EXPECT_EQ(b.size(), 3u);
  auto prompt = b.ToApiPrompt();
  ASSERT_FALSE(prompt.ok());  // samples is still unlinked
  EXPECT_EQ(prompt.status().code(), ErrorCode::kValidation);
  EXPECT_EQ(prompt.status().where().input_name, "samples");
}

TEST(WorkflowBuilder, MissingRequiredInputsNameNodeAndInput) {
  WorkflowBuilder b(V033Definitions());
  auto ckpt = b.AddNode("CheckpointLoaderSimple");
  ASSERT_TRUE(ckpt.ok());
  auto prompt = b.ToApiPrompt();
  ASSERT_FALSE(prompt.ok());
  EXPECT_EQ(prompt.status().code(), ErrorCode::kValidation);
  EXPECT_MENTIONS(prompt.status(),
                  "required input 'ckpt_name' (COMBO) of node 1 (CheckpointLoaderSimple) has no "
                  "value");
  ASSERT_TRUE(b.Set(*ckpt, "ckpt_name", "sd15.safetensors").ok());
  auto sampler = b.AddNode("KSampler");
  ASSERT_TRUE(sampler.ok());
  prompt = b.ToApiPrompt();
  ASSERT_FALSE(prompt.ok());
  EXPECT_MENTIONS(prompt.status(),
                  "required input 'model' (MODEL) of node 2 (KSampler) is not linked");
  EXPECT_EQ(prompt.status().where().node_id, "2");
  EXPECT_EQ(prompt.status().where().input_name, "model");
  // The UI workflow of an unfinished graph is still written: the UI is where it can be finished.
  EXPECT_TRUE(b.ToUiWorkflow().ok());
}

struct Txt2Img {
  NodeRef ckpt, positive, negative, latent, sampler, decode, save;
  NodeRef prompt_port, seed_port, latent_port, image_port;
};

Txt2Img BuildTxt2Img(WorkflowBuilder* b) {
  Txt2Img g;
  auto add = [&](const std::string& cls, const std::string& title = "") {
    auto node = b->AddNode(cls, title);
    EXPECT_TRUE(node.ok()) << node.status().ToString();
    return node.ok() ? *node : NodeRef{};
  };
  auto ok = [](const Status& st) { EXPECT_TRUE(st.ok()) << st.ToString(); };
  g.ckpt = add("CheckpointLoaderSimple");
  g.positive = add("CLIPTextEncode", "Positive");
  g.negative = add("CLIPTextEncode", "Negative");
  g.latent = add("EmptyLatentImage");
  g.sampler = add("KSampler");
  g.decode = add("VAEDecode");
  g.save = add("SaveImage");
  ok(b->Set(g.ckpt, "ckpt_name", "sd15.safetensors"));
  ok(b->Set(g.positive, "text", "a lighthouse at dusk, oil painting"));
  ok(b->Set(g.negative, "text", "blurry"));
  ok(b->Set(g.latent, "width", 768));
  ok(b->Set(g.sampler, "seed", 42));
  ok(b->Set(g.sampler, "steps", 25));
  ok(b->Set(g.sampler, "cfg", 6.5));
  ok(b->Set(g.sampler, "sampler_name", "dpmpp_2m"));
  ok(b->Set(g.sampler, "scheduler", "karras"));
  ok(b->Set(g.save, "filename_prefix", "builder/txt2img"));
  ok(b->Connect(g.ckpt, "MODEL", g.sampler, "model"));
  ok(b->Connect(g.ckpt, "CLIP", g.positive, "clip"));
  ok(b->Connect(g.ckpt, 1, g.negative, "clip"));
  ok(b->Connect(g.positive, 0, g.sampler, "positive"));
  ok(b->Connect(g.negative, "CONDITIONING", g.sampler, "negative"));
  ok(b->Connect(g.sampler, "LATENT", g.decode, "samples"));
  ok(b->Connect(g.ckpt, "VAE", g.decode, "vae"));
  ok(b->Connect(g.decode, "IMAGE", g.save, "images"));
  auto port = [&](Result<NodeRef> r) {
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : NodeRef{};
  };
  g.prompt_port = port(b->AddInputPort("prompt", g.positive, "text", {"text", "user"}));
  g.seed_port = port(b->AddInputPort("seed", g.sampler, "seed"));
  g.latent_port =
      port(b->AddPassthroughPort("latent", g.latent, "LATENT", g.sampler, "latent_image"));
  g.image_port = port(b->AddOutputPort("image", g.decode, 0));
  return g;
}

TEST(WorkflowBuilder, Txt2ImgPromptHasEveryValueAndLink) {
  WorkflowBuilder b(V033Definitions());
  const Txt2Img g = BuildTxt2Img(&b);
  auto prompt = b.ToApiPrompt();
  ASSERT_TRUE(prompt.ok()) << prompt.status().ToString();
  ASSERT_EQ(prompt->size(), 11u);
  const json& sampler = (*prompt)[std::to_string(g.sampler.id)];
  EXPECT_EQ(sampler["class_type"], "KSampler");
  EXPECT_EQ(sampler["inputs"],
            json({{"model", {"1", 0}},
                  {"seed", {std::to_string(g.seed_port.id), 0}},  // the port's link wins
                  {"steps", 25},
                  {"cfg", 6.5},
                  {"sampler_name", "dpmpp_2m"},
                  {"scheduler", "karras"},
                  {"positive", {"2", 0}},
                  {"negative", {"3", 0}},
                  {"latent_image", {std::to_string(g.latent_port.id), 0}},
                  {"denoise", 1.0}}));
  EXPECT_EQ((*prompt)["2"]["_meta"]["title"], "Positive");
  EXPECT_EQ((*prompt)[std::to_string(g.prompt_port.id)],
            json({{"class_type", "DiscomfortPort"},
                  {"inputs", {{"unique_id", "prompt"}, {"tags", "text, user"}}},
                  {"_meta", {{"title", "Discomfort Port"}}}}));
  EXPECT_EQ((*prompt)[std::to_string(g.image_port.id)]["inputs"]["input_data"],
            json({std::to_string(g.decode.id), 0}));
  EXPECT_TRUE(ValidateWorkflow(*prompt, &V033Definitions(), "built").empty());
}

TEST(WorkflowBuilder, Txt2ImgUiWorkflowConvertsBackToTheSamePrompt) {
  WorkflowBuilder b(V033Definitions());
  const Txt2Img g = BuildTxt2Img(&b);
  auto prompt = b.ToApiPrompt();
  auto ui = b.ToUiWorkflow();
  ASSERT_TRUE(prompt.ok()) << prompt.status().ToString();
  ASSERT_TRUE(ui.ok()) << ui.status().ToString();
  EXPECT_EQ(DetectFormat(*ui), WorkflowFormat::kUiV04);
  auto converted = ToApiPrompt(*ui, &V033Definitions());
  ASSERT_TRUE(converted.ok()) << converted.status().ToString();
  EXPECT_EQ(*converted, *prompt) << "converted:\n"
                                 << converted->dump(1) << "\nbuilt:\n"
                                 << prompt->dump(1);
  for (const Status& problem : ValidateWorkflow(*ui, &V033Definitions(), "built.json")) {
    ADD_FAILURE() << problem.ToString();
  }

  // The frontend's saved shape.
  EXPECT_EQ((*ui)["version"], 0.4);
  EXPECT_EQ((*ui)["last_node_id"], 11);
  EXPECT_EQ((*ui)["last_link_id"], (*ui)["links"].size());
  EXPECT_EQ((*ui)["groups"], json::array());
  EXPECT_EQ((*ui)["config"], json::object());
  EXPECT_EQ((*ui)["extra"], json({{"ds", {{"scale", 1}, {"offset", {0, 0}}}}}));
  const json& sampler = (*ui)["nodes"][g.sampler.id - 1];
  EXPECT_EQ(sampler["type"], "KSampler");
  EXPECT_EQ(sampler["properties"], json({{"Node name for S&R", "KSampler"}}));
  EXPECT_EQ(sampler["mode"], 0);
  EXPECT_EQ(sampler["flags"], json::object());
  // Positional widgets, the seed's control_after_generate slot right after it.
  EXPECT_EQ(sampler["widgets_values"], json({42, "fixed", 25, 6.5, "dpmpp_2m", "karras", 1.0}));
  // Sockets, then widget sockets; the seed's socket carries the port's link.
  ASSERT_EQ(sampler["inputs"].size(), 10u);
  EXPECT_EQ(sampler["inputs"][0]["name"], "model");
  EXPECT_FALSE(sampler["inputs"][0].contains("widget"));
  EXPECT_EQ(sampler["inputs"][4]["name"], "seed");
  EXPECT_EQ(sampler["inputs"][4]["widget"], json({{"name", "seed"}}));
  EXPECT_TRUE(sampler["inputs"][4]["link"].is_number_integer());
  EXPECT_TRUE(sampler["inputs"][5]["link"].is_null());
  EXPECT_EQ(sampler["outputs"][0]["slot_index"], 0);
  EXPECT_EQ((*ui)["nodes"][g.positive.id - 1]["title"], "Positive");
  EXPECT_FALSE((*ui)["nodes"][g.ckpt.id - 1].contains("title"));

  // Every link as [id, from, from_slot, to, to_slot, type], agreeing with both nodes' fields.
  std::set<int64_t> link_ids;
  for (const json& link : (*ui)["links"]) {
    ASSERT_EQ(link.size(), 6u);
    link_ids.insert(link[0].get<int64_t>());
    const json& from = (*ui)["nodes"][link[1].get<int>() - 1];
    const json& to = (*ui)["nodes"][link[3].get<int>() - 1];
    EXPECT_EQ(to["inputs"][link[4].get<int>()]["link"], link[0]);
    const json& out_links = from["outputs"][link[2].get<int>()]["links"];
    EXPECT_NE(std::find(out_links.begin(), out_links.end(), link[0]), out_links.end());
    EXPECT_NE(link[5], "*") << link.dump();
    // Left to right: a node sits in a column right of everything it reads from.
    EXPECT_LT(from["pos"][0].get<int>() + from["size"][0].get<int>(), to["pos"][0].get<int>())
        << link.dump();
  }
  EXPECT_EQ(link_ids.size(), (*ui)["links"].size());
  // Nodes of one column do not overlap.
  for (const json& a : (*ui)["nodes"]) {
    for (const json& c : (*ui)["nodes"]) {
      if (a["id"] >= c["id"] || a["pos"][0] != c["pos"][0]) continue;
      const int a_top = a["pos"][1], c_top = c["pos"][1];
      const int a_bottom = a_top + a["size"][1].get<int>(),
                c_bottom = c_top + c["size"][1].get<int>();
      EXPECT_TRUE(a_bottom < c_top || c_bottom < a_top) << a["id"] << " and " << c["id"];
    }
  }
  // `order` is an execution order.
  for (const json& link : (*ui)["links"]) {
    EXPECT_LT((*ui)["nodes"][link[1].get<int>() - 1]["order"].get<int>(),
              (*ui)["nodes"][link[3].get<int>() - 1]["order"].get<int>());
  }
}

std::set<std::string> PortNotation(const PortSet& ports) {
  std::set<std::string> out;
  for (const auto* group : {&ports.inputs, &ports.outputs, &ports.passthrus, &ports.unconnected}) {
    for (const Port& p : *group) {
      std::string tags;
      for (const std::string& t : p.tags) tags += "#" + t;
      out.insert(p.unique_id + ":" + PortModeName(p.mode) + ":" + p.type + tags);
    }
  }
  return out;
}

TEST(WorkflowBuilder, Txt2ImgPortsAreDiscoveredInBothFormats) {
  WorkflowBuilder b(V033Definitions());
  BuildTxt2Img(&b);
  auto prompt = b.ToApiPrompt();
  auto ui = b.ToUiWorkflow();
  ASSERT_TRUE(prompt.ok() && ui.ok());
  const std::set<std::string> expected = {"prompt:INPUT:STRING#text#user", "seed:INPUT:INT",
                                          "latent:PASSTHRU:LATENT", "image:OUTPUT:IMAGE"};
  auto from_api = DiscoverPorts(*prompt, &V033Definitions().raw());
  ASSERT_TRUE(from_api.ok()) << from_api.status().ToString();
  EXPECT_EQ(PortNotation(*from_api), expected);
  auto from_ui = DiscoverWorkflowPorts(*ui, &V033Definitions(), "built.json");
  ASSERT_TRUE(from_ui.ok()) << from_ui.status().ToString();
  EXPECT_EQ(PortNotation(*from_ui), expected);
}

TEST(WorkflowBuilder, DynamicComboOptionsAndUploadWidgetsRoundTrip) {
  WorkflowBuilder b(V033Definitions());
  auto load = b.AddNode("LoadAudio");
  auto save = b.AddNode("SaveAudioAdvanced");
  ASSERT_TRUE(load.ok() && save.ok());
  ASSERT_TRUE(b.Set(*load, "audio", "voice.wav").ok());
  ASSERT_TRUE(b.Connect(*load, 0, *save, "audio").ok());
  // The chosen option's widgets exist only while it is chosen.
  EXPECT_EQ(b.Set(*save, "format.quality", "320k").code(), ErrorCode::kNotFound);
  ASSERT_TRUE(b.Set(*save, "format", "mp3").ok());
  Status st = b.Set(*save, "format.quality", "999k");
  EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument);
  EXPECT_MENTIONS(st, "not one of the combo's values: V0, 128k, 320k");
  ASSERT_TRUE(b.Set(*save, "format.quality", "320k").ok());
  EXPECT_EQ(b.Set(*save, "format", "wav").code(), ErrorCode::kInvalidArgument);

  auto prompt = b.ToApiPrompt();
  auto ui = b.ToUiWorkflow();
  ASSERT_TRUE(prompt.ok()) << prompt.status().ToString();
  ASSERT_TRUE(ui.ok());
  EXPECT_EQ((*prompt)["2"]["inputs"]["format.quality"], "320k");
  EXPECT_EQ((*prompt)["1"]["inputs"],
            json({{"audio", "voice.wav"}}));  // the upload button stays out
  EXPECT_EQ((*ui)["nodes"][0]["widgets_values"], json({"voice.wav", ""}));
  EXPECT_EQ((*ui)["nodes"][1]["widgets_values"], json({"audio/ComfyUI", "mp3", "320k"}));
  auto converted = ToApiPrompt(*ui, &V033Definitions());
  ASSERT_TRUE(converted.ok()) << converted.status().ToString();
  EXPECT_EQ(*converted, *prompt);

  ASSERT_TRUE(b.Set(*save, "format", "flac").ok());
  prompt = b.ToApiPrompt();
  ASSERT_TRUE(prompt.ok());
  EXPECT_FALSE((*prompt)["2"]["inputs"].contains("format.quality"));
}

}  // namespace
}  // namespace discomfort::graph
