// LoopRunner semantics with a fake executor: ordering, commit-on-success, versions, errors,
// cancellation and image output.
#include "engine/loop.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <set>

#include <unistd.h>

#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "engine/image_io.h"
#include "tests/engine/fake_executor.h"

namespace discomfort::engine {
namespace {

using nlohmann::json;
using testing::FakeExecutor;

json Link(const std::string& node) { return json::array({node, 0}); }

// INPUT `in` -> Op -> OUTPUT `out`
PreparedWorkflow Passing(const std::string& in, const std::string& out, const std::string& name,
                         size_t index) {
  json prompt = {{"1", {{"class_type", "DiscomfortPort"}, {"inputs", {{"unique_id", in}}}}},
                 {"2", {{"class_type", "Op"}, {"inputs", {{"x", Link("1")}}}}},
                 {"3",
                  {{"class_type", "DiscomfortPort"},
                   {"inputs", {{"unique_id", out}, {"input_data", Link("2")}}}}}};
  auto prepared = PrepareWorkflow({name, prompt}, index);
  EXPECT_TRUE(prepared.ok()) << prepared.status().ToString();
  return std::move(prepared).value();
}

// Adds `amount` to the single JSON input and returns it under the workflow's OUTPUT uid.
FakeExecutor::Body AddBody(int amount, int fail_on_call = -1) {
  auto calls = std::make_shared<int>(0);
  return [=](const ExecutionRequest& r) -> Result<ExecutionOutcome> {
    if ((*calls)++ == fail_on_call) {
      ErrorLocation where;
      where.node_id = "2";
      where.class_type = "Op";
      return Status(ErrorCode::kExecution, "boom", where);
    }
    ExecutionOutcome out;
    const std::string out_uid = (*r.prompt)["3"]["inputs"]["unique_id"];
    out.outputs[out_uid] =
        storage::Value::Json(r.inputs.begin()->second.json().get<int>() + amount);
    return out;
  };
}

TEST(PrepareWorkflowTest, RewritesPortsAndNamesSlots) {
  auto wf = Passing("a", "b", "wf.json", 3);
  EXPECT_EQ(wf.slot, "3:wf.json");
  EXPECT_EQ((*wf.executable_prompt)["1"]["class_type"], "DiscomfortContextLoader");
  EXPECT_EQ((*wf.executable_prompt)["3"]["class_type"], "DiscomfortContextSaver");
  EXPECT_EQ((*wf.executable_prompt)["3"]["inputs"]["input_data"], Link("2"));
  ASSERT_EQ(wf.ports.inputs.size(), 1u);
  EXPECT_EQ(wf.ports.inputs[0].unique_id, "a");
}

TEST(PrepareWorkflowTest, DuplicateInputPortsAreAnErrorNamingBothNodes) {
  json prompt = {{"1", {{"class_type", "DiscomfortPort"}, {"inputs", {{"unique_id", "a"}}}}},
                 {"2", {{"class_type", "DiscomfortPort"}, {"inputs", {{"unique_id", "a"}}}}},
                 {"3", {{"class_type", "Op"}, {"inputs", {{"x", Link("1")}, {"y", Link("2")}}}}}};
  auto prepared = PrepareWorkflow({"dup.json", prompt}, 0);
  ASSERT_FALSE(prepared.ok());
  EXPECT_EQ(prepared.status().code(), ErrorCode::kAlreadyExists);
  EXPECT_NE(prepared.status().message().find("1 and 2"), std::string::npos)
      << prepared.status().ToString();
  EXPECT_EQ(prepared.status().where().workflow, "dup.json");
}

TEST(LoopRunnerTest, WorkflowsRunInOrderAndSeeEarlierOutputsOfTheIteration) {
  FakeExecutor fake(AddBody(1));
  storage::Context context;
  ASSERT_TRUE(context.Put("a", storage::Value::Json(0)).ok());
  LoopRunner runner(fake, context);
  LoopOptions options;
  options.iterations = 3;
  auto result =
      runner.Run({Passing("a", "b", "first", 0), Passing("b", "a", "second", 1)}, options);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_EQ(fake.requests.size(), 6u);
  EXPECT_EQ(fake.requests[0].workflow_name, "first");
  EXPECT_EQ(fake.requests[1].workflow_name, "second");
  EXPECT_EQ(fake.requests[1].inputs.at("b").json(), 1);  // first's output of this iteration
  EXPECT_EQ(result->outputs.at("a").json(), 6);
  EXPECT_EQ(result->outputs.at("b").json(), 5);
  // Every value handed to a loader carries a version never used before: the cache key.
  std::set<uint64_t> versions;
  for (const auto& r : fake.requests) {
    for (const auto& [uid, v] : r.versions)
      EXPECT_TRUE(versions.insert(v).second) << uid << " " << v;
  }
}

TEST(LoopRunnerTest, ReportsKeptAreBoundedByMaxReports) {
  for (size_t max_reports : {size_t{0}, size_t{3}, std::numeric_limits<size_t>::max()}) {
    FakeExecutor fake(AddBody(1));
    storage::Context context;
    ASSERT_TRUE(context.Put("a", storage::Value::Json(0)).ok());
    LoopRunner runner(fake, context);
    LoopOptions options;
    options.iterations = 10;
    options.max_reports = max_reports;
    int delivered = 0;
    options.on_iteration = [&](const IterationReport&) { ++delivered; };
    auto result = runner.Run({Passing("a", "a", "wf", 0)}, options);
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    EXPECT_EQ(delivered, 10);  // every report still reaches on_iteration
    const size_t kept = std::min<size_t>(max_reports, 10);
    ASSERT_EQ(result->reports.size(), kept) << max_reports;
    for (size_t i = 0; i < kept; ++i) {
      EXPECT_EQ(result->reports[i].iteration, static_cast<int>(10 - kept + i));  // the last ones
    }
    EXPECT_EQ(result->outputs.at("a").json(), 10);
  }
}

TEST(LoopRunnerTest, FailureCommitsNothingOfThatIteration) {
  // Call 3 = iteration 1's second workflow fails: iteration 1's first output must not land.
  FakeExecutor fake(AddBody(1, /*fail_on_call=*/3));
  storage::Context context;
  ASSERT_TRUE(context.Put("a", storage::Value::Json(0)).ok());
  LoopRunner runner(fake, context);
  LoopOptions options;
  options.iterations = 5;
  auto result =
      runner.Run({Passing("a", "b", "first", 0), Passing("b", "a", "second", 1)}, options);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kExecution);
  EXPECT_EQ(result.status().where().iteration, 1);
  EXPECT_EQ(result.status().where().workflow, "second");
  EXPECT_EQ(result.status().where().node_id, "2");
  EXPECT_EQ(context.Get("a")->json(), 2);  // iteration 0's values
  EXPECT_EQ(context.Get("b")->json(), 1);
}

TEST(LoopRunnerTest, MissingInputNamesThePortAndStopsBeforeExecuting) {
  FakeExecutor fake(AddBody(1));
  storage::Context context;
  LoopRunner runner(fake, context);
  auto result = runner.Run({Passing("nowhere", "b", "wf", 0)}, {});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(result.status().where().port, "nowhere");
  EXPECT_NE(result.status().message().find("--set nowhere="), std::string::npos);
  EXPECT_TRUE(fake.requests.empty());
}

TEST(LoopRunnerTest, CancelStopsBetweenExecutionsKeepingFinishedIterations) {
  std::atomic<bool> cancel{false};
  int calls = 0;
  FakeExecutor fake([&](const ExecutionRequest& r) -> Result<ExecutionOutcome> {
    if (++calls == 2) cancel = true;  // cancelled during iteration 1
    ExecutionOutcome out;
    out.outputs["a"] = storage::Value::Json(r.inputs.at("a").json().get<int>() + 1);
    return out;
  });
  storage::Context context;
  ASSERT_TRUE(context.Put("a", storage::Value::Json(0)).ok());
  LoopRunner runner(fake, context);
  LoopOptions options;
  options.iterations = 10;
  options.cancel = &cancel;
  auto result = runner.Run({Passing("a", "a", "wf", 0)}, options);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kCancelled);
  EXPECT_EQ(result.status().where().iteration, 2);
  EXPECT_EQ(context.Get("a")->json(), 2);
}

// The IMAGE under `frame`, halved: iteration k's output has mean 0.5^(k+1) from an all-ones start.
FakeExecutor::Body HalvesTheFrame() {
  return [](const ExecutionRequest& r) -> Result<ExecutionOutcome> {
    ExecutionOutcome out;
    out.outputs["frame"] =
        storage::Value::Tensor((r.inputs.at("frame").tensor() * 0.5).contiguous());
    return out;
  };
}

TEST(LoopRunnerTest, ImageOutputsAreWrittenAsPngPerIteration) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("discomfort-loop-png-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  FakeExecutor fake(HalvesTheFrame());
  storage::Context context;
  ASSERT_TRUE(context.Put("frame", storage::Value::Tensor(at::ones({1, 5, 7, 3}))).ok());
  LoopRunner runner(fake, context);
  LoopOptions options;
  options.iterations = 2;
  options.output_dir = dir.string();
  auto result = runner.Run({Passing("frame", "frame", "wf", 0)}, options);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_EQ(result->files.at("frame").size(), 1u);
  EXPECT_EQ(result->files.at("frame")[0], (dir / "frame_00001.png").string());
  auto first = ReadPngAsImage((dir / "frame_00000.png").string());
  auto second = ReadPngAsImage((dir / "frame_00001.png").string());
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_NEAR(first->mean().item<double>(), 0.5, 1.0 / 255);
  EXPECT_NEAR(second->mean().item<double>(), 0.25, 1.0 / 255);
  std::filesystem::remove_all(dir);
}

// --save-every: only every K-th iteration's images and the last iteration's, also when `until`
// stops the run between two saves; 0 writes the last only.
TEST(LoopRunnerTest, SaveEveryWritesEveryKthAndTheLastIteration) {
  namespace fs = std::filesystem;
  struct Case {
    int save_every;
    int iterations;
    const char* until;  // stop condition, or nullptr
    std::set<std::string> expected;
  };
  const std::vector<Case> cases = {
      {3, 7, nullptr, {"frame_00002.png", "frame_00005.png", "frame_00006.png"}},
      {0, 7, nullptr, {"frame_00006.png"}},
      {3, 7, "iteration >= 3", {"frame_00002.png", "frame_00003.png"}},
      {1, 3, nullptr, {"frame_00000.png", "frame_00001.png", "frame_00002.png"}},
  };
  for (const Case& c : cases) {
    const fs::path dir =
        fs::temp_directory_path() / ("discomfort-save-every-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    FakeExecutor fake(HalvesTheFrame());
    storage::Context context;
    ASSERT_TRUE(context.Put("frame", storage::Value::Tensor(at::ones({1, 4, 4, 3}))).ok());
    LoopRunner runner(fake, context);
    LoopOptions options;
    options.iterations = c.iterations;
    options.output_dir = dir.string();
    options.save_every = c.save_every;
    if (c.until != nullptr) {
      auto until = Condition::Parse(c.until);
      ASSERT_TRUE(until.ok()) << until.status().ToString();
      options.until = *until;
    }
    auto result = runner.Run({Passing("frame", "frame", "wf", 0)}, options);
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    std::set<std::string> written;
    for (const auto& entry : fs::directory_iterator(dir))
      written.insert(entry.path().filename().string());
    EXPECT_EQ(written, c.expected)
        << "save_every " << c.save_every << (c.until ? " with until" : "");
    // result.files names the last iteration's images, which hold the final value.
    ASSERT_EQ(result->files.at("frame").size(), 1u);
    EXPECT_EQ(fs::path(result->files.at("frame")[0]).filename().string(), *c.expected.rbegin());
    auto last = ReadPngAsImage(result->files.at("frame")[0]);
    ASSERT_TRUE(last.ok()) << last.status().ToString();
    const double expected_mean = std::pow(0.5, result->iterations_completed);
    EXPECT_NEAR(last->mean().item<double>(), expected_mean, 1.0 / 255);
    fs::remove_all(dir);
  }
  LoopOptions bad;
  bad.save_every = -1;
  FakeExecutor fake(
      [](const ExecutionRequest&) -> Result<ExecutionOutcome> { return ExecutionOutcome{}; });
  storage::Context context;
  LoopRunner runner(fake, context);
  auto result = runner.Run({Passing("frame", "frame", "wf", 0)}, bad);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kInvalidArgument);
}

// The values an iteration reads stay in memory while its workflows run: with a budget of 0 every
// unpinned tensor spills at once, yet the executor finds its input resident, pinned, and it stays
// so when the budget is enforced mid-execution (another thread storing a value does that).
TEST(LoopRunnerTest, InputsArePinnedWhileTheirWorkflowRuns) {
  storage::ContextOptions tiny;
  tiny.max_ram_gb = 0;
  storage::Context context(tiny);
  ASSERT_TRUE(context.Put("frame", storage::Value::Tensor(at::ones({1, 8, 8, 3}))).ok());
  ASSERT_TRUE(context.Info("frame")->on_disk);
  int checked = 0;
  FakeExecutor executor([&](const ExecutionRequest& r) -> Result<ExecutionOutcome> {
    EXPECT_TRUE(
        context.Put("other", storage::Value::Tensor(at::zeros({64}))).ok());  // enforces the budget
    auto info = context.Info("frame");
    EXPECT_FALSE(info->on_disk) << "the input was spilled while its workflow ran";
    EXPECT_EQ(info->pins, 1);
    ++checked;
    ExecutionOutcome out;
    out.outputs["frame"] = storage::Value::Tensor(r.inputs.at("frame").tensor() + 1);
    return out;
  });
  LoopRunner runner(executor, context);
  LoopOptions options;
  options.iterations = 3;
  auto result = runner.Run({Passing("frame", "frame", "wf", 0)}, options);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(checked, 3);
  EXPECT_EQ(context.Info("frame")->pins, 0);  // released after each execution
  // and spillable again (the run's final outputs read it back from the context: mapped, resident)
  ASSERT_TRUE(context.Put("other", storage::Value::Tensor(at::zeros({64}))).ok());
  EXPECT_TRUE(context.Info("frame")->on_disk);
  EXPECT_EQ(context.Get("frame")->tensor().sum().item<float>(), 4 * 8 * 8 * 3);
}

// The loop keeps no value of its own once an iteration is committed: a tensor the budget spilled
// leaves RAM (a model let go of for its recipe is freed the same way), and the run's final outputs
// are what the context holds at the end, here read back from the spill file.
TEST(LoopRunnerTest, OutputsTheBudgetSpilledLeaveRam) {
  storage::ContextOptions tiny;
  tiny.max_ram_gb = 0;
  storage::Context context(tiny);
  ASSERT_TRUE(context.Put("frame", storage::Value::Tensor(at::ones({1, 8, 8, 3}))).ok());
  std::vector<c10::weak_intrusive_ptr<c10::StorageImpl>> produced;
  FakeExecutor executor([&](const ExecutionRequest& r) -> Result<ExecutionOutcome> {
    at::Tensor next = r.inputs.at("frame").tensor() + 1;
    produced.push_back(next.storage().getWeakStorageImpl());
    ExecutionOutcome out;
    out.outputs["frame"] = storage::Value::Tensor(next);
    return out;
  });
  LoopRunner runner(executor, context);
  LoopOptions options;
  options.iterations = 3;
  auto result = runner.Run({Passing("frame", "frame", "wf", 0)}, options);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_EQ(produced.size(), 3u);
  for (size_t i = 0; i < produced.size(); ++i) {
    EXPECT_TRUE(produced[i].expired()) << "iteration " << i << "'s output is still in RAM";
  }
  ASSERT_TRUE(result->outputs.count("frame"));
  EXPECT_EQ(result->outputs.at("frame").tensor().sum().item<float>(), 4 * 8 * 8 * 3);
}

}  // namespace
}  // namespace discomfort::engine
