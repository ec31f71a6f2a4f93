// Context values are checked against the types of the INPUT ports they feed before anything
// executes: a wrong value is a kTypeMismatch naming the port, node, expected and actual type.
#include "engine/port_types.h"

#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "engine/loop.h"
#include "tests/engine/fake_executor.h"

namespace discomfort::engine {
namespace {

using nlohmann::json;
using testing::FakeExecutor;

json Link(const std::string& node) { return json::array({node, 0}); }

// The /object_info entries the ports' types are inferred from.
const json kObjectInfo = {
    {"Blur",
     {{"input",
       {{"required", {{"image", json::array({"IMAGE"})}, {"radius", json::array({"INT"})}}}}},
      {"output", json::array({"IMAGE"})}}},
    {"Sampler",
     {{"input",
       {{"required", {{"model", json::array({"MODEL"})}, {"cfg", json::array({"FLOAT"})}}}}},
      {"output", json::array({"LATENT"})}}},
    {"Either",
     {{"input", {{"required", {{"x", json::array({"IMAGE,MASK"})}}}}},
      {"output", json::array({"IMAGE"})}}},
    {"Custom",
     {{"input", {{"required", {{"x", json::array({"MY_TYPE"})}}}}},
      {"output", json::array({"IMAGE"})}}}};

json Port(const std::string& uid) {
  return {{"class_type", "DiscomfortPort"}, {"inputs", {{"unique_id", uid}}}};
}

// INPUT ports "image" (node 1 -> Blur.image) and "radius" (node 2 -> Blur.radius).
PreparedWorkflow BlurWorkflow(const json* object_info = &kObjectInfo) {
  json prompt = {
      {"1", Port("image")},
      {"2", Port("radius")},
      {"5", {{"class_type", "Blur"}, {"inputs", {{"image", Link("1")}, {"radius", Link("2")}}}}},
      {"6",
       {{"class_type", "DiscomfortPort"},
        {"inputs", {{"unique_id", "out"}, {"input_data", Link("5")}}}}}};
  auto prepared = PrepareWorkflow({"blur.json", prompt}, 0, object_info);
  EXPECT_TRUE(prepared.ok()) << prepared.status().ToString();
  return std::move(prepared).value();
}

FakeExecutor::Body Echo() {
  return [](const ExecutionRequest& r) -> Result<ExecutionOutcome> {
    ExecutionOutcome out;
    out.outputs["out"] = r.inputs.at("image");
    return out;
  };
}

TEST(PortTypeTest, AStringUnderAnImagePortIsAnErrorBeforeExecution) {
  PreparedWorkflow wf = BlurWorkflow();
  ASSERT_EQ(wf.ports.FindInput("image")->type, "IMAGE");
  FakeExecutor fake(Echo());
  storage::Context context;
  ASSERT_TRUE(context.Put("image", storage::Value::Json("not an image")).ok());
  ASSERT_TRUE(context.Put("radius", storage::Value::Json(3)).ok());
  LoopRunner runner(fake, context);
  LoopOptions options;
  options.iterations = 2;
  auto result = runner.Run({wf}, options);
  ASSERT_FALSE(result.ok());
  const Status& st = result.status();
  EXPECT_EQ(st.code(), ErrorCode::kTypeMismatch);
  EXPECT_EQ(st.where().port, "image");
  EXPECT_EQ(st.where().node_id, "1");
  EXPECT_EQ(st.where().iteration, 0);
  EXPECT_EQ(st.where().workflow, "blur.json");
  EXPECT_NE(st.message().find("expects IMAGE"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("input 'image' of node 5"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("STRING \"not an image\""), std::string::npos) << st.message();
  EXPECT_TRUE(fake.requests.empty());
}

TEST(PortTypeTest, MatchingValuesRunAndATensorUnderAnIntPortFails) {
  FakeExecutor fake(Echo());
  storage::Context context;
  ASSERT_TRUE(context.Put("image", storage::Value::Tensor(at::zeros({1, 4, 4, 3}))).ok());
  ASSERT_TRUE(context.Put("radius", storage::Value::Json(3)).ok());
  LoopRunner runner(fake, context);
  auto ok = runner.Run({BlurWorkflow()}, {});
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(fake.requests.size(), 1u);

  ASSERT_TRUE(context.Put("radius", storage::Value::Tensor(at::zeros({2, 2}))).ok());
  auto bad = runner.Run({BlurWorkflow()}, {});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kTypeMismatch);
  EXPECT_EQ(bad.status().where().port, "radius");
  EXPECT_EQ(bad.status().where().node_id, "2");
  EXPECT_NE(bad.status().message().find("expects INT"), std::string::npos)
      << bad.status().message();
  EXPECT_NE(bad.status().message().find("tensor [2, 2]"), std::string::npos)
      << bad.status().message();
  EXPECT_EQ(fake.requests.size(), 1u);

  // Without node definitions the types are unknown ("*") and anything is passed on.
  auto untyped = runner.Run({BlurWorkflow(nullptr)}, {});
  EXPECT_TRUE(untyped.ok()) << untyped.status().ToString();
}

TEST(PortTypeTest, ValuesProducedEarlierInTheIterationAreCheckedToo) {
  // Workflow A writes "image" as a STRING; workflow B reads it into Blur.image.
  auto first =
      PrepareWorkflow({"a.json",
                       {{"1", Port("seed")},
                        {"2",
                         {{"class_type", "DiscomfortPort"},
                          {"inputs", {{"unique_id", "image"}, {"input_data", Link("1")}}}}}}},
                      0, &kObjectInfo);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  FakeExecutor fake([](const ExecutionRequest& r) -> Result<ExecutionOutcome> {
    ExecutionOutcome out;
    if (r.inputs.count("seed")) out.outputs["image"] = storage::Value::Json("oops");
    return out;
  });
  storage::Context context;
  ASSERT_TRUE(context.Put("seed", storage::Value::Json(1)).ok());
  ASSERT_TRUE(context.Put("radius", storage::Value::Json(1)).ok());
  LoopRunner runner(fake, context);
  auto result = runner.Run({*first, BlurWorkflow()}, {});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kTypeMismatch);
  EXPECT_EQ(result.status().where().workflow, "blur.json");
  EXPECT_EQ(result.status().where().port, "image");
  EXPECT_EQ(fake.requests.size(), 1u);
}

graph::Port Typed(const std::string& type) {
  graph::Port port;
  port.unique_id = "p";
  port.node_id = "9";
  port.type = type;
  return port;
}

TEST(PortTypeTest, TheRulesPerType) {
  using storage::Value;
  const Value text = Value::Json("a"), integer = Value::Json(2), real = Value::Json(0.5),
              flag = Value::Json(true);
  const Value tensor = Value::Tensor(at::zeros({1, 2, 2, 3})),
              list = Value::Json(json::array({1, 2}));
  auto ok = [](const std::string& type, const Value& v) {
    return CheckPortValue(Typed(type), v).ok();
  };
  EXPECT_TRUE(ok("*", text));
  EXPECT_TRUE(ok("MY_TYPE", integer));  // custom types are not judged
  EXPECT_TRUE(ok("INT", integer));
  EXPECT_FALSE(ok("INT", text));
  EXPECT_FALSE(ok("INT", tensor));
  EXPECT_TRUE(ok("FLOAT", integer));
  EXPECT_TRUE(ok("FLOAT", real));
  EXPECT_FALSE(ok("FLOAT", flag));
  EXPECT_TRUE(ok("BOOLEAN", flag));
  EXPECT_FALSE(ok("BOOLEAN", integer));
  EXPECT_TRUE(ok("STRING", text));
  EXPECT_FALSE(ok("STRING", integer));
  EXPECT_TRUE(ok("COMBO", text));
  EXPECT_FALSE(ok("COMBO", tensor));
  EXPECT_TRUE(ok("IMAGE", tensor));
  EXPECT_FALSE(ok("IMAGE", list));
  EXPECT_FALSE(ok("MASK", real));
  EXPECT_TRUE(ok("IMAGE,MASK", tensor));
  EXPECT_FALSE(ok("IMAGE,MASK", text));
  EXPECT_TRUE(ok("INT,STRING", text));
  EXPECT_FALSE(ok("MODEL", text));
  EXPECT_FALSE(ok("LATENT", integer));
  EXPECT_TRUE(ok("LATENT", Value::Json(json::object())));
  Status st = CheckPortValue(Typed("MODEL"), text);
  EXPECT_EQ(st.code(), ErrorCode::kTypeMismatch);
  EXPECT_NE(st.message().find("INPUT port 'p' (node 9) expects MODEL"), std::string::npos)
      << st.message();
}

}  // namespace
}  // namespace discomfort::engine
