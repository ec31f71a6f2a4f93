// Port types inferred from ComfyUI's own node definitions: a context value of the wrong type is
// reported at its port before ComfyUI runs, not as an exception inside the node it feeds.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "engine/loop.h"
#include "tests/bridge/comfy_environment.h"

namespace discomfort {
namespace {

using nlohmann::json;
using testing::Comfy;

TEST(PortTypeTest, AStringFedToImageBlurIsReportedAtThePort) {
  auto info = Comfy().ObjectInfo();
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  json prompt = {
      {"1", {{"class_type", "DiscomfortPort"}, {"inputs", {{"unique_id", "frame"}}}}},
      {"2",
       {{"class_type", "ImageBlur"},
        {"inputs", {{"image", json::array({"1", 0})}, {"blur_radius", 1}, {"sigma", 1.0}}}}},
      {"3",
       {{"class_type", "DiscomfortPort"},
        {"inputs", {{"unique_id", "frame"}, {"input_data", json::array({"2", 0})}}}}}};
  auto prepared = engine::PrepareWorkflow({"blur.json", prompt}, 0, &*info);
  ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
  ASSERT_EQ(prepared->ports.FindInput("frame")->type, "IMAGE");

  storage::Context context;
  ASSERT_TRUE(context.Put("frame", storage::Value::Json("not an image")).ok());
  engine::LoopRunner runner(Comfy(), context);
  auto result = runner.Run({*prepared}, {});
  ASSERT_FALSE(result.ok());
  const Status& st = result.status();
  EXPECT_EQ(st.code(), ErrorCode::kTypeMismatch) << st.ToString();
  EXPECT_EQ(st.where().port, "frame");
  EXPECT_EQ(st.where().node_id, "1");
  EXPECT_EQ(st.where().workflow, "blur.json");
  EXPECT_NE(st.message().find("expects IMAGE (it feeds input 'image' of node 2)"),
            std::string::npos)
      << st.message();
  EXPECT_NE(st.message().find("STRING \"not an image\""), std::string::npos) << st.message();

  // The right type runs through ComfyUI.
  ASSERT_TRUE(context.Put("frame", storage::Value::Tensor(at::rand({1, 8, 8, 3}))).ok());
  auto ok = runner.Run({*prepared}, {});
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->outputs.at("frame").tensor().sizes(), (at::IntArrayRef{1, 8, 8, 3}));
}

}  // namespace
}  // namespace discomfort
