// Loops against a real ComfyUI: values checked numerically per iteration, several ports,
// workflows sharing the context, and failures that leave the context at the last good
// iteration while the engine keeps working.
#include "engine/loop.h"

#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "tests/bridge/comfy_environment.h"

namespace discomfort {
namespace {

using nlohmann::json;
using testing::Comfy;

json Link(const std::string& node, int slot = 0) { return json::array({node, slot}); }
json Port(const std::string& uid) {
  return {{"class_type", "DiscomfortPort"}, {"inputs", {{"unique_id", uid}}}};
}
json Port(const std::string& uid, const json& source) {
  return {{"class_type", "DiscomfortPort"},
          {"inputs", {{"unique_id", uid}, {"input_data", source}}}};
}
json Add(const json& value, const json& amount) {
  return {{"class_type", "DiscomfortTestAdd"}, {"inputs", {{"value", value}, {"amount", amount}}}};
}

// counter -> +amount -> counter
json CounterWorkflow(int amount, int fail_at = -1) {
  return {{"1", Port("counter")},
          {"2", Add(Link("1"), amount)},
          {"3",
           {{"class_type", "DiscomfortTestFailAt"},
            {"inputs", {{"value", Link("2")}, {"fail_at", fail_at}}}}},
          {"4", Port("counter", Link("3"))}};
}

engine::PreparedWorkflow Prepare(const json& prompt, const std::string& name, size_t index = 0) {
  auto prepared = engine::PrepareWorkflow({name, prompt}, index);
  EXPECT_TRUE(prepared.ok()) << prepared.status().ToString();
  return std::move(prepared).value();
}

int64_t JsonInt(const storage::Context& context, const std::string& key) {
  auto v = context.Get(key);
  EXPECT_TRUE(v.ok()) << key;
  if (!v.ok() || !v->is_json()) return INT64_MIN;
  return v->json().get<int64_t>();
}

TEST(LoopTest, SingleRunProducesTheNodeOutput) {
  json prompt = {
      {"1",
       {{"class_type", "EmptyImage"},
        {"inputs", {{"width", 6}, {"height", 4}, {"batch_size", 1}, {"color", 0xFF0000}}}}},
      {"2", Port("image", Link("1"))}};
  storage::Context context;
  engine::LoopRunner runner(Comfy(), context);
  auto result = runner.Run({Prepare(prompt, "single.json")}, {});
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  const at::Tensor& image = result->outputs.at("image").tensor();
  ASSERT_EQ(image.sizes(), (at::IntArrayRef{1, 4, 6, 3}));
  EXPECT_TRUE(at::allclose(image.select(3, 0), at::ones({1, 4, 6})));
  EXPECT_TRUE(at::allclose(image.select(3, 1), at::zeros({1, 4, 6})));
  EXPECT_TRUE(context.Contains("image"));
}

TEST(LoopTest, TenIterationsCarryACounter) {
  storage::Context context;
  ASSERT_TRUE(context.Put("counter", storage::Value::Json(5)).ok());
  std::vector<int64_t> seen;
  engine::LoopOptions options;
  options.iterations = 10;
  options.on_iteration = [&](const engine::IterationReport&) {
    seen.push_back(JsonInt(context, "counter"));
  };
  engine::LoopRunner runner(Comfy(), context);
  auto result = runner.Run({Prepare(CounterWorkflow(3), "counter.json")}, options);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_EQ(seen.size(), 10u);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(seen[i], 5 + 3 * (i + 1)) << "iteration " << i;
  EXPECT_EQ(result->outputs.at("counter").json(), 35);
  EXPECT_EQ(result->iterations_completed, 10);
}

TEST(LoopTest, ImageChangesByAKnownRuleEachIteration) {
  // frame' = 0.5 * frame + 0.5 * white  =>  1 - frame_n = (1 - frame_0) / 2^n
  json prompt = {
      {"1", Port("frame")},
      {"2",
       {{"class_type", "EmptyImage"},
        {"inputs", {{"width", 8}, {"height", 8}, {"batch_size", 1}, {"color", 0xFFFFFF}}}}},
      {"3",
       {{"class_type", "ImageBlend"},
        {"inputs",
         {{"image1", Link("1")},
          {"image2", Link("2")},
          {"blend_factor", 0.5},
          {"blend_mode", "normal"}}}}},
      {"4", Port("frame", Link("3"))}};
  storage::Context context;
  at::Tensor frame0 = at::rand({1, 8, 8, 3});
  ASSERT_TRUE(context.Put("frame", storage::Value::Tensor(frame0)).ok());
  int checked = 0;
  engine::LoopOptions options;
  options.iterations = 10;
  options.on_iteration = [&](const engine::IterationReport& report) {
    auto v = context.Get("frame");
    ASSERT_TRUE(v.ok() && v->is_tensor());
    at::Tensor expected = 1.0 - (1.0 - frame0) / std::pow(2.0, report.iteration + 1);
    EXPECT_TRUE(at::allclose(v->tensor(), expected, 1e-5, 1e-6))
        << "iteration " << report.iteration;
    ++checked;
  };
  engine::LoopRunner runner(Comfy(), context);
  auto result = runner.Run({Prepare(prompt, "blend.json")}, options);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(checked, 10);
}

TEST(LoopTest, MultipleInputAndOutputPorts) {
  json prompt = {
      {"1", Port("a")},
      {"2", Port("b")},
      {"3", Port("greeting")},
      {"4", Add(Link("1"), Link("2"))},
      {"5", Add(Link("1"), 1)},
      {"6",
       {{"class_type", "StringConcatenate"},
        {"inputs", {{"string_a", Link("3")}, {"string_b", "world"}, {"delimiter", ", "}}}}},
      {"7", Port("sum", Link("4"))},
      {"8", Port("a_plus_one", Link("5"))},
      {"9", Port("text", Link("6"))}};
  storage::Context context;
  ASSERT_TRUE(context.Put("a", storage::Value::Json(20)).ok());
  ASSERT_TRUE(context.Put("b", storage::Value::Json(22)).ok());
  ASSERT_TRUE(context.Put("greeting", storage::Value::Json("hello")).ok());
  engine::LoopRunner runner(Comfy(), context);
  auto result = runner.Run({Prepare(prompt, "ports.json")}, {});
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->outputs.at("sum").json(), 42);
  EXPECT_EQ(result->outputs.at("a_plus_one").json(), 21);
  EXPECT_EQ(result->outputs.at("text").json(), "hello, world");
}

TEST(LoopTest, TwoWorkflowsShareTheContextWithinAnIteration) {
  json first = {{"1", Port("x")}, {"2", Add(Link("1"), 1)}, {"3", Port("x", Link("2"))}};
  json second = {{"1", Port("x")}, {"2", Add(Link("1"), 100)}, {"3", Port("y", Link("2"))}};
  storage::Context context;
  ASSERT_TRUE(context.Put("x", storage::Value::Json(0)).ok());
  std::vector<std::pair<int64_t, int64_t>> seen;
  engine::LoopOptions options;
  options.iterations = 3;
  options.on_iteration = [&](const engine::IterationReport&) {
    seen.emplace_back(JsonInt(context, "x"), JsonInt(context, "y"));
  };
  engine::LoopRunner runner(Comfy(), context);
  auto result =
      runner.Run({Prepare(first, "first.json", 0), Prepare(second, "second.json", 1)}, options);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_EQ(seen.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(seen[i].first, i + 1);
    EXPECT_EQ(seen[i].second, i + 101);  // the second workflow saw this iteration's x
  }
}

TEST(LoopTest, BuiltInIterationKeysAreReadableByPorts) {
  json prompt = {{"1", Port("iteration")},
                 {"2", Port("iterations")},
                 {"3", Add(Link("1"), Link("2"))},
                 {"4", Port("seen", Link("3"))}};
  storage::Context context;
  engine::LoopOptions options;
  options.iterations = 4;
  engine::LoopRunner runner(Comfy(), context);
  auto result = runner.Run({Prepare(prompt, "iter.json")}, options);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->outputs.at("seen").json(), 3 + 4);
}

TEST(LoopTest, NodeRaisingMidLoopKeepsLastGoodIterationAndEngineRecovers) {
  storage::Context context;
  ASSERT_TRUE(context.Put("counter", storage::Value::Json(0)).ok());
  engine::LoopOptions options;
  options.iterations = 10;
  engine::LoopRunner runner(Comfy(), context);
  // Iteration 4 (0-based) computes 5 and the test node raises.
  auto failing = Prepare(CounterWorkflow(1, /*fail_at=*/5), "fails.json");
  auto result = runner.Run({failing}, options);
  ASSERT_FALSE(result.ok());
  const Status& st = result.status();
  EXPECT_EQ(st.code(), ErrorCode::kExecution) << st.ToString();
  EXPECT_EQ(st.where().iteration, 4);
  EXPECT_EQ(st.where().node_id, "3");
  EXPECT_EQ(st.where().class_type, "DiscomfortTestFailAt");
  EXPECT_EQ(st.where().workflow, "fails.json");
  EXPECT_NE(st.message().find("test failure: value reached 5"), std::string::npos) << st.message();
  EXPECT_NE(st.traceback().find("RuntimeError"), std::string::npos);
  EXPECT_EQ(JsonInt(context, "counter"), 4);  // as of the last finished iteration

  // The engine keeps working: the next request continues from the context.
  options.iterations = 3;
  auto next = runner.Run({Prepare(CounterWorkflow(1), "ok.json")}, options);
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  EXPECT_EQ(JsonInt(context, "counter"), 7);
}

TEST(LoopTest, MissingInputPortValueIsANamedErrorAndChangesNothing) {
  storage::Context context;
  ASSERT_TRUE(context.Put("unrelated", storage::Value::Json("keep me")).ok());
  engine::LoopRunner runner(Comfy(), context);
  auto result = runner.Run({Prepare(CounterWorkflow(1), "needs_counter.json")}, {});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(result.status().where().port, "counter");
  EXPECT_EQ(result.status().where().node_id, "1");
  EXPECT_EQ(result.status().where().iteration, 0);
  EXPECT_FALSE(context.Contains("counter"));
  EXPECT_EQ(context.Get("unrelated")->json(), "keep me");
}

TEST(LoopTest, InvalidWorkflowIsAValidationErrorAndContextSurvives) {
  json prompt = CounterWorkflow(1);
  prompt["2"]["class_type"] = "DefinitelyNotANode";
  storage::Context context;
  ASSERT_TRUE(context.Put("counter", storage::Value::Json(10)).ok());
  engine::LoopRunner runner(Comfy(), context);
  auto result = runner.Run({Prepare(prompt, "unknown.json")}, {});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kValidation) << result.status().ToString();
  EXPECT_EQ(result.status().where().node_id, "2") << result.status().ToString();
  EXPECT_EQ(result.status().where().workflow, "unknown.json");
  EXPECT_EQ(JsonInt(context, "counter"), 10);

  // An invalid widget value, then a good run.
  json bad_value = CounterWorkflow(1);
  bad_value["2"]["inputs"]["amount"] = "not a number";
  result = runner.Run({Prepare(bad_value, "bad_value.json")}, {});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kValidation);
  EXPECT_EQ(result.status().where().input_name, "amount") << result.status().ToString();
  EXPECT_EQ(JsonInt(context, "counter"), 10);

  auto good = runner.Run({Prepare(CounterWorkflow(1), "good.json")}, {});
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  EXPECT_EQ(JsonInt(context, "counter"), 11);
}

TEST(LoopTest, LiveNodeEventsNameIterationWorkflowAndClass) {
  storage::Context context;
  ASSERT_TRUE(context.Put("counter", storage::Value::Json(0)).ok());
  std::vector<json> starts;
  engine::LoopOptions options;
  options.iterations = 2;
  options.on_event = [&](const json& e) {
    if (e["event"] == "node_start") starts.push_back(e);
  };
  engine::LoopRunner runner(Comfy(), context);
  auto result = runner.Run({Prepare(CounterWorkflow(1), "events.json", 9)}, options);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_EQ(starts.size(), 8u);  // 4 nodes x 2 iterations, in execution order
  EXPECT_EQ(starts[0]["node"], "1");
  EXPECT_EQ(starts[0]["class_type"], "DiscomfortContextLoader");
  EXPECT_EQ(starts[1]["class_type"], "DiscomfortTestAdd");
  EXPECT_EQ(starts[5]["iteration"], 1);
  EXPECT_EQ(starts[5]["workflow"], "events.json");
}

TEST(LoopTest, UnchangedInputsHitComfyUIsCache) {
  // The second run with the same context version re-executes nothing upstream of the saver.
  json prompt = {{"1", Port("v")}, {"2", Add(Link("1"), 1)}, {"3", Port("out", Link("2"))}};
  storage::Context context;
  ASSERT_TRUE(context.Put("v", storage::Value::Json(1)).ok());
  engine::LoopRunner runner(Comfy(), context);
  auto prepared = Prepare(prompt, "cache.json", 42);
  engine::LoopOptions options;
  options.iterations = 2;
  auto result = runner.Run({prepared}, options);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  auto executed = [](const engine::IterationReport& r, const std::string& node) {
    for (const auto& t : r.node_times) {
      if (t.node_id == node) return true;
    }
    return false;
  };
  EXPECT_TRUE(executed(result->reports[0], "2"));
  EXPECT_FALSE(executed(result->reports[1], "2"));  // v unchanged: cached
  EXPECT_TRUE(executed(result->reports[1], "3"));   // the saver always runs
}

}  // namespace
}  // namespace discomfort
