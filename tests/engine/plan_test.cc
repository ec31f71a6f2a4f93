// Loop plans: parsing, and stages with when / until / error policies on a fake executor.
#include "engine/plan.h"

#include <gtest/gtest.h>

#include "tests/engine/fake_executor.h"

namespace discomfort::engine {
namespace {

using nlohmann::json;
using testing::FakeExecutor;

json Link(const std::string& node) { return json::array({node, 0}); }

// INPUT in -> Op(tag) -> OUTPUT out
json Workflow(const std::string& in, const std::string& out, const std::string& tag) {
  return {{"1", {{"class_type", "DiscomfortPort"}, {"inputs", {{"unique_id", in}}}}},
          {"2", {{"class_type", "Op"}, {"inputs", {{"x", Link("1")}, {"tag", tag}}}}},
          {"3",
           {{"class_type", "DiscomfortPort"},
            {"inputs", {{"unique_id", out}, {"input_data", Link("2")}}}}}};
}

// Workflows named "<in>-><out>:<tag>"; the executor adds 1 (tag "inc") or fails (tag "fail").
WorkflowLoader Loader() {
  return [](const std::string& path) -> Result<json> {
    const auto arrow = path.find("->"), colon = path.find(':');
    if (arrow == std::string::npos || colon == std::string::npos)
      return Status(ErrorCode::kNotFound, "no such workflow " + path);
    return Workflow(path.substr(0, arrow), path.substr(arrow + 2, colon - arrow - 2),
                    path.substr(colon + 1));
  };
}

FakeExecutor::Body Interpreter(int* failures_left = nullptr) {
  return [failures_left](const ExecutionRequest& r) -> Result<ExecutionOutcome> {
    const std::string tag = (*r.prompt)["2"]["inputs"]["tag"];
    if (tag == "fail" || (tag == "flaky" && failures_left != nullptr && (*failures_left)-- > 0)) {
      ErrorLocation where;
      where.node_id = "2";
      where.class_type = "Op";
      return Status(ErrorCode::kExecution, "op failed", where);
    }
    ExecutionOutcome out;
    out.outputs[(*r.prompt)["3"]["inputs"]["unique_id"]] =
        storage::Value::Json(r.inputs.begin()->second.json().get<int>() + 1);
    return out;
  };
}

LoopPlan Parse(const json& doc) {
  auto plan = ParseLoopPlan(doc, "");
  EXPECT_TRUE(plan.ok()) << plan.status().ToString();
  return plan.ok() ? *plan : LoopPlan{};
}

TEST(LoopPlanTest, ParsesAndResolvesPathsAgainstThePlanFolder) {
  json doc = {{"max_iterations", 5},
              {"until", "x > 3"},
              {"inputs", {{"x", 0}}},
              {"stages",
               {{{"name", "a"},
                 {"workflows", {"one.json", "/abs/two.json"}},
                 {"when", "iteration % 2 == 0"},
                 {"on_error", "retry"},
                 {"retries", 2}}}}};
  auto plan = ParseLoopPlan(doc, "/plans");
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(plan->max_iterations, 5);
  EXPECT_EQ(plan->stages[0].workflows,
            (std::vector<std::string>{"/plans/one.json", "/abs/two.json"}));
  EXPECT_EQ(plan->stages[0].on_error, ErrorPolicy::kRetry);
  EXPECT_EQ(plan->stages[0].retries, 2);
  auto again = ParseLoopPlan(LoopPlanToJson(*plan), "");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(LoopPlanToJson(*again), LoopPlanToJson(*plan));
}

TEST(LoopPlanTest, ErrorsPointIntoThePlan) {
  struct Case {
    json doc;
    std::string pointer;
  };
  const json ok_stage = {{"workflows", {"a.json"}}};
  for (const Case& c :
       {Case{{{"stages", {ok_stage}}}, "/max_iterations"},
        Case{{{"max_iterations", 1}, {"stages", json::array()}}, "/stages"},
        Case{{{"max_iterations", 1},
              {"stages", {ok_stage, {{"workflows", {"b.json"}}, {"when", "x >"}}}}},
             "/stages/1/when"},
        Case{{{"max_iterations", 1},
              {"stages", {{{"workflows", {"b.json"}}, {"on_error", "ignore"}}}}},
             "/stages/0/on_error"},
        Case{{{"max_iterations", 1}, {"stages", {ok_stage}}, {"extra", 1}}, "/extra"},
        Case{{{"max_iterations", 1}, {"until", 3}, {"stages", {ok_stage}}}, "/until"}}) {
    auto plan = ParseLoopPlan(c.doc, "");
    ASSERT_FALSE(plan.ok()) << c.doc.dump();
    EXPECT_EQ(plan.status().where().json_pointer, c.pointer) << plan.status().ToString();
  }
}

TEST(LoopPlanTest, IterationTimeoutAndGraceAreReadAndChecked) {
  const json stage = {{"workflows", {"a.json"}}};
  auto plan = ParseLoopPlan({{"max_iterations", 2},
                             {"iteration_timeout", 30.5},
                             {"interrupt_grace", 3},
                             {"stages", {stage}}},
                            "");
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(plan->iteration_timeout, 30.5);
  EXPECT_EQ(plan->interrupt_grace, 3);
  EXPECT_EQ(LoopPlanToJson(*plan)["iteration_timeout"], 30.5);
  EXPECT_EQ(LoopPlanToJson(*ParseLoopPlan(LoopPlanToJson(*plan), "")), LoopPlanToJson(*plan));
  auto unset = ParseLoopPlan({{"max_iterations", 2}, {"stages", {stage}}}, "");
  ASSERT_TRUE(unset.ok());
  EXPECT_EQ(unset->iteration_timeout, 0);  // no limit
  EXPECT_EQ(unset->interrupt_grace, LoopOptions().interrupt_grace);
  for (const json& bad : {json("10"), json(-1), json(1e9), json(nullptr)}) {
    auto parsed =
        ParseLoopPlan({{"max_iterations", 2}, {"iteration_timeout", bad}, {"stages", {stage}}}, "");
    ASSERT_FALSE(parsed.ok()) << bad.dump();
    EXPECT_EQ(parsed.status().where().json_pointer, "/iteration_timeout");
  }
}

// Found by tests/fuzz/plan_condition_fuzz: a non-string on_error or name made json::value()
// throw out of ParseLoopPlan (std::terminate in `discomfort run --plan`).
TEST(LoopPlanTest, WrongTypesAreErrorsNotExceptions) {
  for (const char* stage : {R"({"workflows": ["a.json"], "on_error": 8})",
                            R"({"workflows": ["a.json"], "on_error": null})",
                            R"({"workflows": ["a.json"], "name": ["x"]})"}) {
    json plan = {{"max_iterations", 1}, {"stages", json::array({json::parse(stage)})}};
    Result<LoopPlan> parsed(Status{});
    ASSERT_NO_THROW(parsed = ParseLoopPlan(plan, "/p")) << stage;
    ASSERT_FALSE(parsed.ok()) << stage;
    EXPECT_EQ(parsed.status().code(), ErrorCode::kInvalidArgument) << stage;
    EXPECT_EQ(parsed.status().where().json_pointer.rfind("/stages/0/", 0), 0u) << stage;
  }
}

TEST(LoopPlanTest, WhenSelectsStagesAndUntilStopsEarly) {
  LoopPlan plan =
      Parse({{"max_iterations", 100},
             {"until", "b >= 3"},
             {"stages",
              {{{"name", "every"}, {"workflows", {"a->a:inc"}}},
               {{"name", "even"}, {"workflows", {"a->b:inc"}}, {"when", "iteration % 2 == 0"}}}}});
  auto stages = PrepareStages(plan, Loader());
  ASSERT_TRUE(stages.ok()) << stages.status().ToString();
  FakeExecutor fake(Interpreter());
  storage::Context context;
  ASSERT_TRUE(context.Put("a", storage::Value::Json(0)).ok());
  std::vector<json> events;
  LoopOptions options;
  options.iterations = plan.max_iterations;
  options.until = plan.until;
  options.on_event = [&](const json& e) { events.push_back(e); };
  LoopRunner runner(fake, context);
  auto result = runner.RunStages(*stages, options);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  // b = a + 1 computed on iterations 0, 2, 4 with a = 1, 3, 5 -> 2, 4 (>= 3 after iteration 2).
  EXPECT_TRUE(result->stopped_by_until);
  EXPECT_EQ(result->iterations_completed, 3);
  EXPECT_EQ(context.Get("b")->json(), 4);
  EXPECT_EQ(context.Get("a")->json(), 3);
  int skipped = 0;
  for (const auto& e : events) skipped += e["event"] == "stage_skipped";
  EXPECT_EQ(skipped, 1);  // iteration 1
  EXPECT_EQ(events.front()["event"], "run_start");
  EXPECT_EQ(events.back()["event"], "run_done");
}

TEST(LoopPlanTest, SkipPolicyDropsOnlyTheFailedStage) {
  LoopPlan plan =
      Parse({{"max_iterations", 3},
             {"stages",
              {{{"name", "good"}, {"workflows", {"a->a:inc"}}},
               {{"name", "bad"}, {"workflows", {"a->b:fail"}}, {"on_error", "skip"}}}}});
  auto stages = PrepareStages(plan, Loader());
  ASSERT_TRUE(stages.ok());
  FakeExecutor fake(Interpreter());
  storage::Context context;
  ASSERT_TRUE(context.Put("a", storage::Value::Json(0)).ok());
  LoopOptions options;
  options.iterations = 3;
  LoopRunner runner(fake, context);
  auto result = runner.RunStages(*stages, options);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(context.Get("a")->json(), 3);
  EXPECT_FALSE(context.Contains("b"));
  EXPECT_EQ(result->reports[0].stages_failed, (std::vector<std::string>{"bad"}));
}

TEST(LoopPlanTest, RetryPolicyRetriesThenStops) {
  LoopPlan plan = Parse({{"max_iterations", 2},
                         {"stages",
                          {{{"name", "flaky"},
                            {"workflows", {"a->a:flaky"}},
                            {"on_error", "retry"},
                            {"retries", 2}}}}});
  auto stages = PrepareStages(plan, Loader());
  ASSERT_TRUE(stages.ok());
  int failures_left = 2;  // two failures, then success: within the retry budget
  FakeExecutor fake(Interpreter(&failures_left));
  storage::Context context;
  ASSERT_TRUE(context.Put("a", storage::Value::Json(0)).ok());
  LoopOptions options;
  options.iterations = 2;
  LoopRunner runner(fake, context);
  auto result = runner.RunStages(*stages, options);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(context.Get("a")->json(), 2);
  EXPECT_EQ(fake.requests.size(), 4u);

  failures_left = 5;  // more failures than retries: the stage's error stops the loop
  auto failed = runner.RunStages(*stages, options);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), ErrorCode::kExecution);
  EXPECT_EQ(failed.status().where().stage, "flaky");
  EXPECT_EQ(context.Get("a")->json(), 2);
}

TEST(LoopPlanTest, UnknownWorkflowNamesStageAndFile) {
  LoopPlan plan = Parse(
      {{"max_iterations", 1}, {"stages", {{{"name", "s"}, {"workflows", {"missing.json"}}}}}});
  auto stages = PrepareStages(plan, Loader());
  ASSERT_FALSE(stages.ok());
  EXPECT_EQ(stages.status().where().stage, "s");
  EXPECT_EQ(stages.status().where().workflow, "missing.json");
}

}  // namespace
}  // namespace discomfort::engine
