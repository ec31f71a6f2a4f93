// The bridge against a real ComfyUI: import, node definitions, validation errors, execution,
// tensors crossing by pointer.
#include "bridge/comfy_bridge.h"

#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "engine/loop.h"
#include "tests/bridge/comfy_environment.h"

namespace discomfort {
namespace {

using nlohmann::json;
using testing::Comfy;

TEST(ComfyBridgeTest, ImportsComfyUIAsLibrary) {
  const json& info = Comfy().info();
  EXPECT_FALSE(info.value("comfyui_version", "").empty());
  // ComfyUI's own choice: the CUDA device where torch sees one (the GPU variant), else the CPU.
  const std::string device = info.value("device", "");
  if (at::hasCUDA()) {
    EXPECT_EQ(device.rfind("cuda", 0), 0u) << device;
  } else {
    EXPECT_EQ(device, "cpu");
  }
  EXPECT_GT(info.value("node_count", 0), 100);
  EXPECT_FALSE(info.value("embedded_in_live_comfyui", true));
}

TEST(ComfyBridgeTest, ObjectInfoHasCoreV1AndV3NodesAndOurPort) {
  auto info = Comfy().ObjectInfo();
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  // Classic (V1) nodes.
  for (const char* name :
       {"KSampler", "CheckpointLoaderSimple", "SaveImage", "EmptyImage", "VAEDecode"}) {
    ASSERT_TRUE(info->contains(name)) << name;
  }
  EXPECT_EQ((*info)["KSampler"]["input"]["required"]["steps"][0], "INT");
  EXPECT_EQ((*info)["KSampler"]["input_order"]["required"][0], "model");
  EXPECT_TRUE((*info)["SaveImage"]["output_node"].get<bool>());
  // V3 nodes (comfy_api.latest io.ComfyNode) appear in the same shape.
  ASSERT_TRUE(info->contains("ImageBlur"));
  EXPECT_EQ((*info)["ImageBlur"]["output"][0], "IMAGE");
  EXPECT_EQ((*info)["ImageFlip"]["input"]["required"]["flip_method"][0], "COMBO");
  // DiscomfortPort, compatible with the original's saved workflows.
  const json& port = (*info)["DiscomfortPort"];
  EXPECT_EQ(port["input"]["required"]["unique_id"][0], "STRING");
  EXPECT_EQ(port["input"]["optional"]["tags"][0], "STRING");
  EXPECT_EQ(port["input"]["optional"]["input_data"][0], "*");
  EXPECT_EQ(port["output"], json::array({"*"}));
  EXPECT_EQ(port["output_name"], json::array({"output_data"}));
  EXPECT_TRUE(info->contains("DiscomfortContextLoader"));
  EXPECT_TRUE(info->contains("DiscomfortContextSaver"));
}

TEST(ComfyBridgeTest, ValidationErrorNamesUnknownNodeType) {
  json prompt = {
      {"1", {{"class_type", "NoSuchNode"}, {"inputs", json::object()}}},
      {"2", {{"class_type", "PreviewAny"}, {"inputs", {{"source", json::array({"1", 0})}}}}}};
  Status st = Comfy().Validate(prompt);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), ErrorCode::kValidation);
  EXPECT_NE(st.ToString().find("NoSuchNode"), std::string::npos) << st.ToString();
  EXPECT_EQ(st.where().node_id, "1") << st.ToString();
}

TEST(ComfyBridgeTest, ValidationErrorNamesNodeAndInputOfInvalidWidgetValue) {
  json prompt = {
      {"1",
       {{"class_type", "EmptyImage"},
        {"inputs", {{"width", 8}, {"height", 8}, {"batch_size", 1}, {"color", 0}}}}},
      {"2",
       {{"class_type", "ImageBlur"},
        {"inputs", {{"image", json::array({"1", 0})}, {"blur_radius", 99}, {"sigma", 1.0}}}}},
      {"3", {{"class_type", "PreviewImage"}, {"inputs", {{"images", json::array({"2", 0})}}}}}};
  Status st = Comfy().Validate(prompt);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), ErrorCode::kValidation);
  EXPECT_EQ(st.where().node_id, "2") << st.ToString();
  EXPECT_EQ(st.where().class_type, "ImageBlur");
  EXPECT_EQ(st.where().input_name, "blur_radius") << st.ToString();
}

TEST(ComfyBridgeTest, TensorCrossesByPointerThroughARealNode) {
  // frame -> ImageCrop (full size: a view) -> OUTPUT, and frame -> OUTPUT directly.
  json prompt = {
      {"1", {{"class_type", "DiscomfortPort"}, {"inputs", {{"unique_id", "in"}}}}},
      {"2",
       {{"class_type", "ImageCrop"},
        {"inputs",
         {{"image", json::array({"1", 0})}, {"width", 16}, {"height", 8}, {"x", 0}, {"y", 0}}}}},
      {"3",
       {{"class_type", "DiscomfortPort"},
        {"inputs", {{"unique_id", "cropped"}, {"input_data", json::array({"2", 0})}}}}},
      {"4",
       {{"class_type", "DiscomfortPort"},
        {"inputs", {{"unique_id", "same"}, {"input_data", json::array({"1", 0})}}}}}};
  auto prepared = engine::PrepareWorkflow({"pointer.json", prompt}, 0);
  ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
  at::Tensor image = at::rand({1, 8, 16, 3});
  storage::Context context;
  ASSERT_TRUE(context.Put("in", storage::Value::Tensor(image)).ok());
  engine::LoopRunner runner(Comfy(), context);
  engine::LoopOptions options;
  auto result = runner.Run({*prepared}, options);
  ASSERT_TRUE(result.ok()) << result.status().ToString();

  const at::Tensor& same = result->outputs.at("same").tensor();
  EXPECT_EQ(same.unsafeGetTensorImpl(), image.unsafeGetTensorImpl());  // the very same tensor
  const at::Tensor& cropped = result->outputs.at("cropped").tensor();
  EXPECT_EQ(cropped.data_ptr(), image.data_ptr());
  EXPECT_TRUE(cropped.storage().is_alias_of(image.storage()));
  EXPECT_TRUE(at::equal(cropped, image));
}

TEST(ComfyBridgeTest, UnknownSlotExecutorsAreIndependentAndResettable) {
  json prompt = {{"1", {{"class_type", "DiscomfortPort"}, {"inputs", {{"unique_id", "v"}}}}},
                 {"2",
                  {{"class_type", "DiscomfortTestAdd"},
                   {"inputs", {{"value", json::array({"1", 0})}, {"amount", 2}}}}},
                 {"3",
                  {{"class_type", "DiscomfortPort"},
                   {"inputs", {{"unique_id", "v"}, {"input_data", json::array({"2", 0})}}}}}};
  auto prepared = engine::PrepareWorkflow({"add.json", prompt}, 7);
  ASSERT_TRUE(prepared.ok());
  engine::ExecutionRequest request;
  request.slot = prepared->slot;
  request.prompt = prepared->executable_prompt;
  request.inputs["v"] = storage::Value::Json(40);
  request.versions["v"] = 1;
  auto outcome = Comfy().Execute(request);
  ASSERT_TRUE(outcome.ok()) << outcome.status().ToString();
  EXPECT_EQ(outcome->outputs.at("v").json(), 42);
  EXPECT_FALSE(outcome->node_times.empty());
  Comfy().ResetSlot(prepared->slot);
  outcome = Comfy().Execute(request);
  ASSERT_TRUE(outcome.ok()) << outcome.status().ToString();
  EXPECT_EQ(outcome->outputs.at("v").json(), 42);
}

// Found by tests/reliability/faults.py (bad input): an input value nested 50,000 deep crashed the
// CLI with SIGSEGV (JsonToPython recursed off the stack). Now a typed error.
TEST(ComfyBridgeTest, DeeplyNestedInputIsAnErrorNotACrash) {
  json deep = json::array();
  for (int i = 0; i < 5000; ++i) deep = json::array({std::move(deep)});
  json prompt = {{"1",
                  {{"class_type", "ImageBlur"},
                   {"inputs", {{"image", deep}, {"blur_radius", 1}, {"sigma", 1.0}}}}}};
  Status st = Comfy().Validate(prompt);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("nested deeper"), std::string::npos) << st.ToString();
}

}  // namespace
}  // namespace discomfort
