// The one orchestration path (engine/run_request.h): what the CLI, the Python module and the C++
// SDK hand over becomes stages, loop options and seeded inputs the same way for all of them.
#include "engine/run_request.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "engine/checkpoint.h"
#include "engine/image_io.h"
#include "tests/engine/fake_executor.h"

namespace discomfort::engine {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::FakeExecutor;

// The real node definitions of ComfyUI v0.33.0, as the live registry would give them.
class SavedDefinitions : public NodeDefinitionSource {
 public:
  Result<json> ObjectInfo() override {
    ++calls;
    std::ifstream in(std::string(DISCOMFORT_SOURCE_DIR) + "/tests/data/object_info_v0.33.0.json");
    return json::parse(in);
  }
  int calls = 0;
};

json Link(const std::string& node) { return json::array({node, 0}); }

// INPUT `in` -> ImageBlur -> OUTPUT `out`: the INPUT port is typed IMAGE by the definitions.
json BlurPrompt(const std::string& in = "frame", const std::string& out = "frame") {
  return {{"1", {{"class_type", "DiscomfortPort"}, {"inputs", {{"unique_id", in}}}}},
          {"2",
           {{"class_type", "ImageBlur"},
            {"inputs", {{"image", Link("1")}, {"blur_radius", 1}, {"sigma", 1.0}}}}},
          {"3",
           {{"class_type", "DiscomfortPort"},
            {"inputs", {{"unique_id", out}, {"input_data", Link("2")}}}}}};
}

class RunRequestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("discomfort-run-request-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Write(const std::string& name, const json& doc) {
    std::ofstream(dir_ / name) << doc.dump();
    return (dir_ / name).string();
  }

  fs::path dir_;
  SavedDefinitions definitions_;
  WorkflowResolver resolver_{&definitions_};
};

TEST_F(RunRequestTest, APlanBecomesStagesWithTypedPortsSeededInputsAndParsedConditions) {
  Write("blur.json", BlurPrompt());
  ASSERT_TRUE(WriteImagePngs(at::full({1, 4, 4, 3}, 0.5), (dir_ / "seed").string()).ok());
  Write("values.json", json{{"a", 1}});
  RunRequest request;
  request.plan =
      json{{"max_iterations", 5},
           {"until", "iteration >= 2"},
           {"inputs", {{"frame", "@seed.png"}, {"settings", "@values.json"}, {"n", 3}}},
           {"iteration_timeout", 60},
           {"stages", {{{"name", "blur"}, {"workflows", {"blur.json"}}, {"when", "n > 1"}}}}};
  request.plan_base_dir = dir_.string();
  storage::Context context;
  auto run = PrepareRun(request, resolver_, context);
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  ASSERT_EQ(run->stages.size(), 1u);
  EXPECT_EQ(run->stages[0].workflows[0].ports.inputs.at(0).type,
            "IMAGE");  // typed by the definitions
  ASSERT_TRUE(run->stages[0].when.has_value());
  EXPECT_EQ(run->options.iterations, 5);
  ASSERT_TRUE(run->options.until.has_value());
  EXPECT_EQ(run->options.until->text(), "iteration >= 2");
  EXPECT_EQ(run->options.iteration_timeout, 60);
  EXPECT_EQ(context.Get("frame")->tensor().sizes(), (std::vector<int64_t>{1, 4, 4, 3}));
  EXPECT_EQ(context.Get("settings")->json(),
            (json{{"a", 1}}));  // @file.json, as the CLI always had
  EXPECT_EQ(context.Get("n")->json(), 3);
  EXPECT_EQ(definitions_.calls, 1);  // fetched once for the whole run
}

TEST_F(RunRequestTest, RequestValuesOverrideThePlans) {
  Write("blur.json", BlurPrompt());
  RunRequest request;
  request.plan = json{{"max_iterations", 5},
                      {"until", "iteration >= 2"},
                      {"stages", {{{"workflows", {"blur.json"}}}}}};
  request.plan_base_dir = dir_.string();
  request.iterations = 9;
  request.until = "iteration >= 7";
  request.save_every = 3;
  request.set_values = {"frame=@" + (dir_ / "missing.png").string()};
  storage::Context context;
  auto failed = PrepareRun(request, resolver_, context);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().where().port,
            "frame");  // a --set value that cannot load names its port
  request.set_values = {"n=4", "label=hello"};
  auto run = PrepareRun(request, resolver_, context);
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  EXPECT_EQ(run->options.iterations, 9);
  EXPECT_EQ(run->options.until->text(), "iteration >= 7");
  EXPECT_EQ(run->options.save_every, 3);
  EXPECT_EQ(context.Get("n")->json(), 4);
  EXPECT_EQ(context.Get("label")->json(), "hello");
}

TEST_F(RunRequestTest, ErrorsPointIntoThePlanAndNameTheWorkflow) {
  storage::Context context;
  RunRequest request;
  request.plan =
      json{{"max_iterations", 1}, {"until", "x >"}, {"stages", {{{"workflows", {"a.json"}}}}}};
  auto bad_until = PrepareRun(request, resolver_, context);
  ASSERT_FALSE(bad_until.ok());
  EXPECT_EQ(bad_until.status().where().json_pointer, "/until");
  request.plan = json{{"max_iterations", 1}, {"stages", {{{"workflows", {"missing.json"}}}}}};
  request.plan_base_dir = dir_.string();
  auto missing = PrepareRun(request, resolver_, context);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().ToString().find("missing.json"), std::string::npos)
      << missing.status().ToString();
  request.plan = json{{"max_iterations", 1},
                      {"inputs", {{"frame", "@nope.png"}}},
                      {"stages", {{{"workflows", {"blur.json"}}}}}};
  Write("blur.json", BlurPrompt());
  auto bad_input = PrepareRun(request, resolver_, context);
  ASSERT_FALSE(bad_input.ok());
  EXPECT_EQ(bad_input.status().where().json_pointer, "/inputs/frame");
  RunRequest both;
  both.plan = json::object();
  both.workflows.push_back(WorkflowSpec::File("x.json"));
  EXPECT_EQ(PrepareRun(both, resolver_, context).status().code(), ErrorCode::kInvalidArgument);
}

TEST_F(RunRequestTest, DocumentsAndFilesPrepareAlikeAndAWrongTypedValueIsCaughtAtItsPort) {
  const std::string path = Write("blur.json", BlurPrompt());
  RunRequest from_file, from_document;
  from_file.workflows.push_back(WorkflowSpec::File(path));
  from_document.workflows.push_back(WorkflowSpec::Document("blur.json", BlurPrompt()));
  storage::Context context;
  auto a = PrepareRun(from_file, resolver_, context);
  auto b = PrepareRun(from_document, resolver_, context);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a->stages[0].workflows[0].executable_prompt,
            *b->stages[0].workflows[0].executable_prompt);
  EXPECT_EQ(a->stages[0].workflows[0].slot, b->stages[0].workflows[0].slot);
  ASSERT_TRUE(context.Put("frame", storage::Value::Json("not an image")).ok());
  FakeExecutor executor(
      [](const ExecutionRequest&) -> Result<ExecutionOutcome> { return ExecutionOutcome{}; });
  auto result = LoopRunner(executor, context).RunStages(a->stages, a->options);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kTypeMismatch);
  EXPECT_EQ(result.status().where().port, "frame");
  EXPECT_TRUE(executor.requests.empty());
}

TEST_F(RunRequestTest, ResumingLoadsTheCheckpointInsteadOfSeedingInputs) {
  Write("blur.json", BlurPrompt());
  storage::Context saved;
  ASSERT_TRUE(saved.Put("n", storage::Value::Json(41)).ok());
  ASSERT_TRUE(SaveCheckpoint(saved, (dir_ / "ckpt").string(), json::object(), 4).ok());
  RunRequest request;
  request.plan = json{
      {"max_iterations", 6}, {"inputs", {{"n", 0}}}, {"stages", {{{"workflows", {"blur.json"}}}}}};
  request.plan_base_dir = dir_.string();
  request.seed_inputs = false;
  request.resume_from = (dir_ / "ckpt").string();
  storage::Context context;
  auto run = PrepareRun(request, resolver_, context);
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  EXPECT_EQ(run->options.first_iteration, 4);
  EXPECT_EQ(context.Get("n")->json(), 41);
}

TEST(ShardTest, ShardsAreDisjointAndTogetherTheWholeSweep) {
  const std::vector<GridAxis> grid = {{"seed", {1, 2, 3, 4, 5}}, {"cfg", {5.0, 7.5}}};
  const auto all = MakeSweepPoints(grid, {});
  ASSERT_EQ(all.size(), 10u);
  for (int n : {1, 2, 3, 4, 10, 13}) {
    std::set<int> seen;
    for (int k = 1; k <= n; ++k) {
      auto shard = ParseShard(std::to_string(k) + "/" + std::to_string(n));
      ASSERT_TRUE(shard.ok());
      for (const SweepPoint& p : MakeSweepPoints(grid, {}, *shard)) {
        EXPECT_TRUE(seen.insert(p.index).second)
            << "point " << p.index << " in two shards of " << n;
        EXPECT_EQ(p.params,
                  all[p.index].params);  // same point, same global index (same file names)
      }
    }
    EXPECT_EQ(seen.size(), all.size()) << n << " shards";
  }
}

TEST(ShardTest, BadShardsAreClearErrors) {
  for (const char* text : {"0/0", "3/2", "a/b", "0/3", "1/", "/2", "2", "1/2/3", "-1/2", "1/0"}) {
    auto shard = ParseShard(text);
    ASSERT_FALSE(shard.ok()) << text;
    EXPECT_EQ(shard.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(shard.status().message().find("K/N"), std::string::npos) << shard.status().message();
  }
  EXPECT_TRUE(ParseShard("2/2").ok());
}

TEST_F(RunRequestTest, APreparedSweepHoldsOnlyItsShardAndSeedsTheParent) {
  const std::string path = Write("blur.json", BlurPrompt());
  SweepRequest request;
  request.workflows.push_back(WorkflowSpec::File(path));
  request.grid = {{"seed", {1, 2, 3, 4, 5}}};
  request.shard = Shard{2, 2};
  request.set_values = {"n=7"};
  storage::Context parent;
  auto sweep = PrepareSweep(request, resolver_, parent);
  ASSERT_TRUE(sweep.ok()) << sweep.status().ToString();
  ASSERT_EQ(sweep->points.size(), 2u);
  EXPECT_EQ(sweep->points[0].index, 1);
  EXPECT_EQ(sweep->points[1].index, 3);
  EXPECT_EQ(parent.Get("n")->json(), 7);
  request.grid.clear();
  EXPECT_EQ(PrepareSweep(request, resolver_, parent).status().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace discomfort::engine

namespace discomfort::engine {
namespace {

// The device budget reaches the context from the request (CLI --max-vram-gb, Python
// max_device_gb, SDK RunOptions) or from the plan's max_vram_gb; the request's wins.
TEST_F(RunRequestTest, TheDeviceBudgetComesFromTheRequestOrThePlan) {
  Write("blur.json", BlurPrompt());
  RunRequest request;
  request.plan =
      json{{"max_iterations", 1}, {"max_vram_gb", 2}, {"stages", {{{"workflows", {"blur.json"}}}}}};
  request.plan_base_dir = dir_.string();
  storage::Context from_plan;
  ASSERT_TRUE(PrepareRun(request, resolver_, from_plan).ok());
  EXPECT_EQ(from_plan.GetUsage().device_budget_bytes, uint64_t{2} << 30);
  request.max_vram_gb = 0.5;
  storage::Context from_request;
  ASSERT_TRUE(PrepareRun(request, resolver_, from_request).ok());
  EXPECT_EQ(from_request.GetUsage().device_budget_bytes, uint64_t{1} << 29);
  request.plan = json{
      {"max_iterations", 1}, {"max_vram_gb", -1}, {"stages", {{{"workflows", {"blur.json"}}}}}};
  auto bad = PrepareRun(request, resolver_, from_request);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().where().json_pointer, "/max_vram_gb");
}

}  // namespace
}  // namespace discomfort::engine
