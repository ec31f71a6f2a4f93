// The C++ SDK against the real ComfyUI: tensors by pointer, typed errors, cancellation, the log
// sink, sweeps with shards, and several host threads running loops on one Engine at once.
#include "discomfort/discomfort.h"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "sdk/libtorch_check.h"

namespace {

using discomfort::Context;
using discomfort::Engine;
using discomfort::ErrorCode;
using discomfort::RunOptions;
using discomfort::Workflow;
using nlohmann::json;

json Link(const std::string& node) { return json::array({node, 0}); }
json Port(const std::string& uid, std::optional<json> source = std::nullopt) {
  json inputs = {{"unique_id", uid}};
  if (source) inputs["input_data"] = *source;
  return {{"class_type", "DiscomfortPort"}, {"inputs", inputs}};
}

// counter -> +amount -> (raises when it equals fail_at) -> counter
json Counter(int amount, int fail_at = -1) {
  return {{"1", Port("counter")},
          {"2",
           {{"class_type", "DiscomfortTestAdd"},
            {"inputs", {{"value", Link("1")}, {"amount", amount}}}}},
          {"3",
           {{"class_type", "DiscomfortTestFailAt"},
            {"inputs", {{"value", Link("2")}, {"fail_at", fail_at}}}}},
          {"4", Port("counter", Link("3"))}};
}

struct LogLines {
  std::mutex mu;
  std::vector<std::string> lines;
};
LogLines g_log;

std::shared_ptr<Engine> TheEngine() {
  static std::shared_ptr<Engine> engine = [] {
    discomfort::EngineOptions options;
    options.work_dir = (std::filesystem::temp_directory_path() /
                        ("discomfort-sdk-tests-" + std::to_string(::getpid())))
                           .string();
    options.extra_nodes = {std::string(DISCOMFORT_SOURCE_DIR) +
                           "/tests/bridge/nodes/discomfort_test_nodes.py"};
    options.log_sink = [](discomfort::LogLevel, const std::string& line) {
      std::lock_guard<std::mutex> lock(g_log.mu);
      g_log.lines.push_back(line);
    };
    auto created = Engine::Create(options);
    if (!created.ok()) {
      ADD_FAILURE() << created.status().ToString() << "\n" << created.status().traceback();
      return std::shared_ptr<Engine>();
    }
    return created.value();
  }();
  return engine;
}

class SdkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    engine_ = TheEngine();
    ASSERT_NE(engine_, nullptr);
  }
  std::shared_ptr<Engine> engine_;
};

TEST_F(SdkTest, ATensorCrossesByPointerBothWays) {
  Context context;
  at::Tensor frame = at::rand({1, 16, 16, 3});
  ASSERT_TRUE(context.Put("frame", frame).ok());
  RunOptions run;
  run.workflows = {
      Workflow::Document("pass.json", {{"1", Port("frame")}, {"2", Port("same", Link("1"))}})};
  auto result = engine_->Run(context, run);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_TRUE(result->outputs.at("same").is_tensor());
  EXPECT_EQ(result->outputs.at("same").tensor().data_ptr(), frame.data_ptr());  // the very storage
  EXPECT_EQ(context.Get("same")->tensor().data_ptr(), frame.data_ptr());
}

TEST_F(SdkTest, LoopsCarryStateAndFailuresKeepTheLastGoodIteration) {
  Context context;
  ASSERT_TRUE(context.Put("counter", 5).ok());
  RunOptions run;
  run.workflows = {Workflow::Document("counter.json", Counter(3, /*fail_at=*/17))};
  run.iterations = 10;
  std::vector<int> seen;
  run.on_iteration = [&](const discomfort::IterationInfo& info) { seen.push_back(info.iteration); };
  auto result = engine_->Run(context, run);
  ASSERT_FALSE(result.ok());
  const discomfort::Status& st = result.status();
  EXPECT_EQ(st.code(), ErrorCode::kExecution) << st.ToString();
  EXPECT_EQ(st.where().iteration, 3);
  EXPECT_EQ(st.where().node_id, "3");
  EXPECT_EQ(st.where().class_type, "DiscomfortTestFailAt");
  EXPECT_EQ(st.where().workflow, "counter.json");
  EXPECT_EQ(context.Get("counter")->json(), 14);  // 5 + 3 * 3: iterations 0..2 committed
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 2}));
  // The engine works on.
  run.workflows = {Workflow::Document("counter.json", Counter(1))};
  run.iterations = 2;
  run.on_iteration = nullptr;
  auto again = engine_->Run(context, run);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->outputs.at("counter").json(), 16);
}

TEST_F(SdkTest, ErrorsNameWhatWentWrongAndWhere) {
  Context context;
  RunOptions run;
  run.workflows = {Workflow::Document(
      "unknown.json", {{"1", {{"class_type", "NoSuchNode"}, {"inputs", json::object()}}}})};
  auto unknown = engine_->Run(context, run);
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().ToString().find("NoSuchNode"), std::string::npos)
      << unknown.status().ToString();
  run.workflows = {Workflow::Document("counter.json", Counter(1))};
  auto missing = engine_->Run(context, run);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(missing.status().where().port, "counter");
  run.workflows = {Workflow::File("/no/such/workflow.json")};
  EXPECT_FALSE(engine_->Run(context, run).ok());
  run.until = "counter >";
  run.workflows = {Workflow::Document("counter.json", Counter(1))};
  auto bad_until = engine_->Run(context, run);
  ASSERT_FALSE(bad_until.ok());
  EXPECT_EQ(bad_until.status().code(), ErrorCode::kInvalidArgument);
}

TEST_F(SdkTest, UntilCallbacksCancelTokensAndThrowingCallbacks) {
  Context context;
  ASSERT_TRUE(context.Put("counter", 0).ok());
  RunOptions run;
  run.workflows = {Workflow::Document("counter.json", Counter(2))};
  run.iterations = 100;
  run.until_callback = [](const Context& c) { return c.Get("counter")->json().get<int>() >= 6; };
  auto until = engine_->Run(context, run);
  ASSERT_TRUE(until.ok()) << until.status().ToString();
  EXPECT_TRUE(until->stopped_by_until);
  EXPECT_EQ(until->iterations_completed, 3);

  run.until_callback = nullptr;
  discomfort::CancelToken cancel;
  run.cancel = cancel;
  run.on_iteration = [&](const discomfort::IterationInfo& info) {
    if (info.iteration == 1) cancel.Cancel();
  };
  auto cancelled = engine_->Run(context, run);
  ASSERT_FALSE(cancelled.ok());
  EXPECT_EQ(cancelled.status().code(), ErrorCode::kCancelled);
  EXPECT_EQ(context.Get("counter")->json(), 10);  // 6 + 2 iterations of +2

  run.cancel = discomfort::CancelToken();
  run.on_iteration = [](const discomfort::IterationInfo&) { throw std::runtime_error("host bug"); };
  auto threw = engine_->Run(context, run);
  ASSERT_FALSE(threw.ok());
  EXPECT_NE(threw.status().message().find("host bug"), std::string::npos)
      << threw.status().ToString();
}

TEST_F(SdkTest, SweepShardsTogetherAreTheWholeSweep) {
  Context parent;
  discomfort::SweepOptions sweep;
  sweep.workflows = {Workflow::Document("counter.json", Counter(10))};
  sweep.grid = {{"counter", {1, 2, 3, 4, 5}}};
  auto whole = engine_->Sweep(parent, sweep);
  ASSERT_TRUE(whole.ok()) << whole.status().ToString();
  ASSERT_EQ(whole->results.size(), 5u);
  std::map<int, int> by_index;
  for (const auto& p : whole->results)
    by_index[p.index] = p.outputs.at("counter").json().get<int>();
  std::set<int> covered;
  for (const char* shard : {"1/2", "2/2"}) {
    sweep.shard = shard;
    auto part = engine_->Sweep(parent, sweep);
    ASSERT_TRUE(part.ok()) << part.status().ToString();
    for (const auto& p : part->results) {
      EXPECT_TRUE(covered.insert(p.index).second);
      EXPECT_EQ(p.outputs.at("counter").json().get<int>(), by_index.at(p.index));
    }
  }
  EXPECT_EQ(covered.size(), 5u);
  sweep.shard = "3/2";
  auto bad = engine_->Sweep(parent, sweep);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kInvalidArgument);
}

// Several host threads, one Engine, a Context each: the results equal running the same loops one
// after another.
TEST_F(SdkTest, ThreadsRunDifferentLoopsAtOnceWithTheSequentialResults) {
  constexpr int kThreads = 4;
  auto run_loop = [this](int t, Context& context) -> std::pair<int, long> {
    RunOptions run;
    run.workflows = {
        Workflow::Document("counter.json", Counter(t + 1)),
        Workflow::Document("pass.json", {{"1", Port("frame")}, {"2", Port("frame", Link("1"))}})};
    run.iterations = 6 + t;
    auto result = engine_->Run(context, run);
    EXPECT_TRUE(result.ok()) << result.status().ToString();
    if (!result.ok()) return {-1, 0};
    return {result->outputs.at("counter").json().get<int>(),
            static_cast<long>(result->outputs.at("frame").tensor().sum().item<double>())};
  };
  auto seed = [](int t, Context& context) {
    ASSERT_TRUE(context.Put("counter", 100 * t).ok());
    ASSERT_TRUE(context.Put("frame", at::full({1, 4, 4, 3}, static_cast<double>(t))).ok());
  };
  std::vector<std::pair<int, long>> sequential(kThreads), parallel(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    Context context;
    seed(t, context);
    sequential[t] = run_loop(t, context);
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Context context;
      seed(t, context);
      parallel[t] = run_loop(t, context);
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(parallel, sequential);
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(sequential[t].first, 100 * t + (t + 1) * (6 + t));
}

TEST_F(SdkTest, TheLogSinkReceivesTheEnginesLines) {
  // A stage whose node fails under on_error "skip": the engine logs a warning naming the stage.
  const auto dir =
      std::filesystem::temp_directory_path() / ("discomfort-sdk-log-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "fails.json") << Counter(1, /*fail_at=*/1).dump();
  Context context;
  ASSERT_TRUE(context.Put("counter", 0).ok());
  RunOptions run;
  run.plan =
      json{{"max_iterations", 1},
           {"stages", {{{"name", "flaky"}, {"workflows", {"fails.json"}}, {"on_error", "skip"}}}}};
  run.plan_base_dir = dir.string();
  auto result = engine_->Run(context, run);
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  std::lock_guard<std::mutex> lock(g_log.mu);
  bool found = false;
  for (const auto& line : g_log.lines)
    found = found || line.find("stage 'flaky' skipped") != std::string::npos;
  EXPECT_TRUE(found) << g_log.lines.size() << " lines received";
}

TEST(LibtorchCheckTest, AnotherLibtorchIsRefusedClearly) {
  EXPECT_TRUE(discomfort::CheckProcessLibtorch().ok())
      << discomfort::CheckProcessLibtorch().ToString();
  auto st =
      discomfort::CompareLibtorch("/opt/other-torch/lib/libtorch_cpu.so", DISCOMFORT_TORCH_LIB_DIR);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("/opt/other-torch/lib"), std::string::npos);
  EXPECT_NE(st.message().find("two libtorch copies"), std::string::npos);
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const int rc = RUN_ALL_TESTS();
  std::fflush(nullptr);
  std::_Exit(rc);  // the embedded interpreter is never finalized (torch / ComfyUI threads)
}
