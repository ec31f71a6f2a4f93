// Generated UI workflows of any size for the performance test and the benchmark
// (benchmarks/graph/): blocks of a typical text-to-image graph, so every conversion path that
// real files use is exercised (positional widgets with control slots, a Reroute, a PrimitiveNode
// pushing into a widget socket, a bypassed node, links through all of them).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace discomfort::graph::testing {

// Nodes per block of GeneratedWorkflow.
inline constexpr int kGeneratedBlockNodes = 10;

// `blocks` copies of: checkpoint -> LoRA (bypassed) -> two prompts -> KSampler (seed from a
// PrimitiveNode) -> VAEDecode (VAE through a Reroute) -> ImageScale -> SaveImage. Node ids are
// 1..blocks*10; the API prompt has 8 nodes per block (Reroute and PrimitiveNode are virtual, the
// LoRA is bypassed: its consumers read the checkpoint directly).
inline nlohmann::json GeneratedWorkflow(int blocks) {
  using nlohmann::json;
  json nodes = json::array();
  json links = json::array();
  int next_link = 1;
  for (int b = 0; b < blocks; ++b) {
    const int base = b * kGeneratedBlockNodes;
    const int ckpt = base + 1, lora = base + 2, pos = base + 3, neg = base + 4, latent = base + 5,
              sampler = base + 6, decode = base + 7, scale = base + 8, save = base + 9,
              extra = base + 10;
    // Reroute in even blocks, PrimitiveNode (seed) in odd ones.
    const bool reroute = b % 2 == 0;
    auto link = [&](int from, int from_slot, int to, int to_slot, const char* type) {
      const int id = next_link++;
      links.push_back({id, from, from_slot, to, to_slot, type});
      return id;
    };
    const int l_model = link(ckpt, 0, lora, 0, "MODEL");
    const int l_clip = link(ckpt, 1, lora, 1, "CLIP");
    const int l_model2 = link(lora, 0, sampler, 0, "MODEL");
    const int l_clip_pos = link(lora, 1, pos, 0, "CLIP");
    const int l_clip_neg = link(lora, 1, neg, 0, "CLIP");
    const int l_pos = link(pos, 0, sampler, 1, "CONDITIONING");
    const int l_neg = link(neg, 0, sampler, 2, "CONDITIONING");
    const int l_latent = link(latent, 0, sampler, 3, "LATENT");
    const int l_samples = link(sampler, 0, decode, 0, "LATENT");
    const int l_vae = reroute ? link(ckpt, 2, extra, 0, "VAE") : link(ckpt, 2, decode, 1, "VAE");
    const int l_vae2 = reroute ? link(extra, 0, decode, 1, "VAE") : 0;
    const int l_seed = reroute ? 0 : link(extra, 0, sampler, 4, "INT");
    const int l_image = link(decode, 0, scale, 0, "IMAGE");
    const int l_scaled = link(scale, 0, save, 0, "IMAGE");

    nodes.push_back({{"id", ckpt},
                     {"type", "CheckpointLoaderSimple"},
                     {"mode", 0},
                     {"widgets_values", {"sd_xl_base_1.0.safetensors"}},
                     {"outputs",
                      {{{"name", "MODEL"}, {"type", "MODEL"}, {"links", {l_model}}},
                       {{"name", "CLIP"}, {"type", "CLIP"}, {"links", {l_clip}}},
                       {{"name", "VAE"}, {"type", "VAE"}, {"links", {l_vae}}}}}});
    nodes.push_back(
        {{"id", lora},
         {"type", "LoraLoader"},
         {"mode", 4},
         {"widgets_values", {"detail.safetensors", 0.8, 0.8}},
         {"inputs",
          {{{"name", "model"}, {"type", "MODEL"}, {"link", l_model}},
           {{"name", "clip"}, {"type", "CLIP"}, {"link", l_clip}}}},
         {"outputs",
          {{{"name", "MODEL"}, {"type", "MODEL"}, {"links", {l_model2}}},
           {{"name", "CLIP"}, {"type", "CLIP"}, {"links", {l_clip_pos, l_clip_neg}}}}}});
    nodes.push_back(
        {{"id", pos},
         {"type", "CLIPTextEncode"},
         {"title", "Positive " + std::to_string(b)},
         {"widgets_values", {"a photo of a cat number " + std::to_string(b)}},
         {"inputs", {{{"name", "clip"}, {"type", "CLIP"}, {"link", l_clip_pos}}}},
         {"outputs", {{{"name", "CONDITIONING"}, {"type", "CONDITIONING"}, {"links", {l_pos}}}}}});
    nodes.push_back(
        {{"id", neg},
         {"type", "CLIPTextEncode"},
         {"widgets_values", {"blurry, low quality"}},
         {"inputs", {{{"name", "clip"}, {"type", "CLIP"}, {"link", l_clip_neg}}}},
         {"outputs", {{{"name", "CONDITIONING"}, {"type", "CONDITIONING"}, {"links", {l_neg}}}}}});
    nodes.push_back(
        {{"id", latent},
         {"type", "EmptyLatentImage"},
         {"widgets_values", {1024, 1024, 1}},
         {"outputs", {{{"name", "LATENT"}, {"type", "LATENT"}, {"links", {l_latent}}}}}});
    json sampler_inputs = {{{"name", "model"}, {"type", "MODEL"}, {"link", l_model2}},
                           {{"name", "positive"}, {"type", "CONDITIONING"}, {"link", l_pos}},
                           {{"name", "negative"}, {"type", "CONDITIONING"}, {"link", l_neg}},
                           {{"name", "latent_image"}, {"type", "LATENT"}, {"link", l_latent}},
                           {{"name", "seed"},
                            {"type", "INT"},
                            {"widget", {{"name", "seed"}}},
                            {"link", reroute ? json(nullptr) : json(l_seed)}}};
    nodes.push_back(
        {{"id", sampler},
         {"type", "KSampler"},
         {"widgets_values", {1000 + b, "randomize", 20, 7.5, "euler", "normal", 1}},
         {"inputs", sampler_inputs},
         {"outputs", {{{"name", "LATENT"}, {"type", "LATENT"}, {"links", {l_samples}}}}}});
    nodes.push_back({{"id", decode},
                     {"type", "VAEDecode"},
                     {"inputs",
                      {{{"name", "samples"}, {"type", "LATENT"}, {"link", l_samples}},
                       {{"name", "vae"}, {"type", "VAE"}, {"link", reroute ? l_vae2 : l_vae}}}},
                     {"outputs", {{{"name", "IMAGE"}, {"type", "IMAGE"}, {"links", {l_image}}}}}});
    nodes.push_back({{"id", scale},
                     {"type", "ImageScale"},
                     {"widgets_values", {"bilinear", 512, 512, "disabled"}},
                     {"inputs", {{{"name", "image"}, {"type", "IMAGE"}, {"link", l_image}}}},
                     {"outputs", {{{"name", "IMAGE"}, {"type", "IMAGE"}, {"links", {l_scaled}}}}}});
    nodes.push_back({{"id", save},
                     {"type", "SaveImage"},
                     {"widgets_values", {"block_" + std::to_string(b)}},
                     {"inputs", {{{"name", "images"}, {"type", "IMAGE"}, {"link", l_scaled}}}}});
    if (reroute) {
      nodes.push_back({{"id", extra},
                       {"type", "Reroute"},
                       {"inputs", {{{"name", ""}, {"type", "*"}, {"link", l_vae}}}},
                       {"outputs", {{{"name", ""}, {"type", "VAE"}, {"links", {l_vae2}}}}}});
    } else {
      nodes.push_back({{"id", extra},
                       {"type", "PrimitiveNode"},
                       {"widgets_values", {77 + b, "fixed"}},
                       {"outputs",
                        {{{"name", "INT"},
                          {"type", "INT"},
                          {"links", {l_seed}},
                          {"widget", {{"name", "seed"}}}}}}});
    }
  }
  return {{"version", 0.4},
          {"last_node_id", blocks * kGeneratedBlockNodes},
          {"last_link_id", next_link - 1},
          {"nodes", std::move(nodes)},
          {"links", std::move(links)},
          {"groups", json::array()},
          {"extra", json::object()}};
}

}  // namespace discomfort::graph::testing
