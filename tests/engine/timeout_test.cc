// The per-iteration timeout with a fake executor: an interruptible node is interrupted and the
// run ends with kTimeout naming iteration, workflow and node; a node that ignores the interrupt
// is abandoned after the grace period; the context stays at the last finished iteration and the
// engine runs again afterwards.
#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include <unistd.h>

#include <gtest/gtest.h>

#include "engine/loop.h"
#include "engine/sweep.h"
#include "engine/timed_execution.h"
#include "tests/engine/fake_executor.h"

namespace discomfort::engine {
namespace {

using nlohmann::json;
using testing::FakeExecutor;
using Clock = std::chrono::steady_clock;

json Link(const std::string& node) { return json::array({node, 0}); }

// INPUT counter -> Sleeper (node 2) -> OUTPUT counter
PreparedWorkflow Counter(const std::string& name = "counter.json") {
  json prompt = {{"1", {{"class_type", "DiscomfortPort"}, {"inputs", {{"unique_id", "counter"}}}}},
                 {"2", {{"class_type", "Sleeper"}, {"inputs", {{"x", Link("1")}}}}},
                 {"3",
                  {{"class_type", "DiscomfortPort"},
                   {"inputs", {{"unique_id", "counter"}, {"input_data", Link("2")}}}}}};
  auto prepared = PrepareWorkflow({name, prompt}, 0);
  EXPECT_TRUE(prepared.ok()) << prepared.status().ToString();
  return std::move(prepared).value();
}

int Input(const ExecutionRequest& r) { return r.inputs.at("counter").json().get<int>(); }

ExecutionOutcome Incremented(const ExecutionRequest& r) {
  ExecutionOutcome out;
  out.outputs["counter"] = storage::Value::Json(Input(r) + 1);
  return out;
}

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Node 2 "runs" until interrupted when the counter reaches `hang_at`, like a sampler checking
// ComfyUI's flag between steps; returns what the bridge returns for an interrupted prompt.
FakeExecutor::Body InterruptibleHangAt(FakeExecutor** self, int hang_at) {
  return [self, hang_at](const ExecutionRequest& r) -> Result<ExecutionOutcome> {
    if (Input(r) != hang_at) return Incremented(r);
    if (r.on_progress) r.on_progress("node_start", {{"node", "2"}});
    const auto give_up = Clock::now() + std::chrono::seconds(30);
    while (!(*self)->interrupted.load() && Clock::now() < give_up)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ErrorLocation where;
    where.node_id = "2";
    where.class_type = "Sleeper";
    return Status(ErrorCode::kCancelled, "interrupted", where);
  };
}

// A loop of `iterations` with a per-iteration limit and an interrupt grace, in seconds.
LoopOptions Timed(int iterations, double limit, double grace = 10) {
  LoopOptions options;
  options.iterations = iterations;
  options.iteration_timeout = limit;
  options.interrupt_grace = grace;
  return options;
}

TEST(IterationTimeoutTest, AnInterruptibleNodeIsInterruptedAndTheRunEndsWithATimeout) {
  FakeExecutor* self = nullptr;
  FakeExecutor fake(InterruptibleHangAt(&self, 2));
  self = &fake;
  storage::Context context;
  ASSERT_TRUE(context.Put("counter", storage::Value::Json(0)).ok());
  LoopRunner runner(fake, context);
  LoopOptions options = Timed(5, 0.3, 5);
  std::vector<json> events;
  options.on_event = [&events](const json& e) { events.push_back(e); };
  const auto start = Clock::now();
  auto result = runner.Run({Counter()}, options);
  const double took = SecondsSince(start);

  ASSERT_FALSE(result.ok());
  const Status& st = result.status();
  EXPECT_EQ(st.code(), ErrorCode::kTimeout) << st.ToString();
  EXPECT_EQ(st.where().iteration, 2);
  EXPECT_EQ(st.where().workflow, "counter.json");
  EXPECT_EQ(st.where().node_id, "2");
  EXPECT_EQ(st.where().class_type, "Sleeper");
  EXPECT_NE(st.message().find("0.3 s limit"), std::string::npos) << st.message();
  EXPECT_GE(fake.interrupts.load(), 1);
  EXPECT_LT(took, 3.0);  // the interrupt ended it, not the grace period
  // Iterations 0 and 1 finished: the context holds their result, not the interrupted one's.
  EXPECT_EQ(context.Get("counter")->json(), 2);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back()["event"], "error");
  EXPECT_EQ(events.back()["error"]["code"], "timeout");

  // The engine is usable at once: a run with no hang continues from the kept context.
  FakeExecutor plain(
      [](const ExecutionRequest& r) -> Result<ExecutionOutcome> { return Incremented(r); });
  LoopRunner again(plain, context);
  options.on_event = nullptr;
  options.iterations = 3;
  auto second = again.Run({Counter()}, options);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(context.Get("counter")->json(), 5);
  EXPECT_EQ(plain.interrupts.load(), 0);
}

// The deadline is measured on an injected clock: a node that "takes" an hour on that clock times
// out against a one-hour limit at once in real time, so the limit's logic is tested without
// waiting.
TEST(IterationTimeoutTest, DeadlinesFollowTheInjectedClock) {
  auto fake_now = std::make_shared<std::atomic<int64_t>>(0);  // nanoseconds on the fake clock
  auto clock = [fake_now] { return Clock::time_point(std::chrono::nanoseconds(fake_now->load())); };
  FakeExecutor* self = nullptr;
  FakeExecutor fake([&self, fake_now](const ExecutionRequest& r) -> Result<ExecutionOutcome> {
    if (Input(r) < 3) {
      fake_now->fetch_add(
          std::chrono::nanoseconds(std::chrono::minutes(50)).count());  // under the hour
      return Incremented(r);
    }
    if (r.on_progress) r.on_progress("node_start", {{"node", "2"}});
    fake_now->fetch_add(std::chrono::nanoseconds(std::chrono::minutes(61)).count());  // past it
    while (!self->interrupted.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ErrorLocation where;
    where.node_id = "2";
    return Status(ErrorCode::kCancelled, "interrupted", where);
  });
  self = &fake;
  storage::Context context;
  ASSERT_TRUE(context.Put("counter", storage::Value::Json(0)).ok());
  LoopOptions options = Timed(10, 3600, 5);
  options.clock = clock;
  const auto start = Clock::now();
  auto result = LoopRunner(fake, context).Run({Counter()}, options);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kTimeout) << result.status().ToString();
  EXPECT_EQ(result.status().where().iteration, 3);
  EXPECT_EQ(context.Get("counter")->json(), 3);  // three 50-minute iterations fitted the hour each
  EXPECT_LT(SecondsSince(start), 3.0);
}

TEST(IterationTimeoutTest, ANodeIgnoringTheInterruptIsAbandonedAfterTheGracePeriod) {
  std::atomic<bool> release{false};
  std::atomic<bool> finished{false};
  FakeExecutor fake([&](const ExecutionRequest& r) -> Result<ExecutionOutcome> {
    if (Input(r) != 1) return Incremented(r);
    r.on_progress("node_start", {{"node", "2"}});
    while (!release.load())
      std::this_thread::sleep_for(std::chrono::milliseconds(1));  // deaf to Interrupt()
    r.on_progress("node_start", {{"node", "3"}});  // must not reach the finished run's callbacks
    finished.store(true);
    return Incremented(r);
  });
  storage::Context context;
  ASSERT_TRUE(context.Put("counter", storage::Value::Json(0)).ok());
  LoopRunner runner(fake, context);
  LoopOptions options = Timed(4, 0.2, 0.3);
  std::atomic<int> events{0};
  options.on_event = [&events](const json&) { events.fetch_add(1); };
  const auto start = Clock::now();
  auto result = runner.Run({Counter()}, options);
  const double took = SecondsSince(start);

  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kTimeout) << result.status().ToString();
  EXPECT_EQ(result.status().where().iteration, 1);
  EXPECT_EQ(result.status().where().node_id, "2");
  EXPECT_NE(result.status().message().find("ignored the interrupt"), std::string::npos)
      << result.status().message();
  EXPECT_GE(took, 0.45);
  EXPECT_LT(took, 3.0);
  EXPECT_GE(fake.interrupts.load(), 1);
  EXPECT_FALSE(finished.load());
  EXPECT_EQ(context.Get("counter")->json(), 1);

  // While the node still runs nothing else may execute: a new run fails fast, naming it.
  Status busy = WaitForAbandonedExecution(0);
  EXPECT_EQ(busy.code(), ErrorCode::kTimeout);
  EXPECT_EQ(busy.where().node_id, "2");
  EXPECT_NE(busy.message().find("still runs"), std::string::npos) << busy.message();
  const size_t calls_before = fake.requests.size();
  options.iteration_timeout = 0;
  options.interrupt_grace = 0.05;
  auto blocked = runner.Run({Counter()}, options);
  ASSERT_FALSE(blocked.ok());
  EXPECT_EQ(blocked.status().code(), ErrorCode::kTimeout);
  EXPECT_EQ(fake.requests.size(), calls_before);

  // Once the node returns, its results are dropped and the engine runs again.
  const int events_before = events.load();
  release.store(true);
  EXPECT_TRUE(WaitForAbandonedExecution(10).ok());
  EXPECT_TRUE(finished.load());
  EXPECT_EQ(events.load(), events_before);  // the late node_start went nowhere
  EXPECT_EQ(context.Get("counter")->json(), 1);
  ASSERT_TRUE(context.Put("counter", storage::Value::Json(10)).ok());
  options.iterations = 2;
  auto after = runner.Run({Counter()}, options);
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(context.Get("counter")->json(), 12);
}

TEST(IterationTimeoutTest, FastIterationsUnderALimitRunNormally) {
  FakeExecutor fake(
      [](const ExecutionRequest& r) -> Result<ExecutionOutcome> { return Incremented(r); });
  storage::Context context;
  ASSERT_TRUE(context.Put("counter", storage::Value::Json(0)).ok());
  LoopRunner runner(fake, context);
  LoopOptions options = Timed(50, 5);
  auto result = runner.Run({Counter()}, options);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(context.Get("counter")->json(), 50);
  EXPECT_EQ(fake.interrupts.load(), 0);
  EXPECT_EQ(fake.requests.size(), 50u);
}

TEST(IterationTimeoutTest, ATimeoutIsNotRetriedOrSkippedAndLeavesACheckpoint) {
  namespace fs = std::filesystem;
  const fs::path dir =
      fs::temp_directory_path() / ("discomfort-timeout-ckpt-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  FakeExecutor* self = nullptr;
  FakeExecutor fake(InterruptibleHangAt(&self, 3));
  self = &fake;
  storage::Context context;
  ASSERT_TRUE(context.Put("counter", storage::Value::Json(0)).ok());
  LoopRunner runner(fake, context);
  Stage stage;
  stage.name = "main";
  stage.workflows = {Counter()};
  stage.on_error = ErrorPolicy::kRetry;
  stage.retries = 3;
  Stage skipping = stage;
  skipping.name = "skipping";
  skipping.on_error = ErrorPolicy::kSkip;
  LoopOptions options = Timed(10, 0.2);
  options.checkpoint_every = 100;  // only the one written when the run ends early
  options.checkpoint_dir = dir.string();
  for (const Stage& s : {stage, skipping}) {
    ASSERT_TRUE(context.Put("counter", storage::Value::Json(0)).ok());
    fake.requests.clear();
    auto result = runner.RunStages({s}, options);
    ASSERT_FALSE(result.ok()) << s.name;
    EXPECT_EQ(result.status().code(), ErrorCode::kTimeout) << s.name;
    EXPECT_EQ(fake.requests.size(), 4u) << s.name;  // iterations 0-2, then one attempt of 3
    storage::Context restored;
    auto cp = LoadCheckpoint(dir.string(), restored);
    ASSERT_TRUE(cp.ok()) << cp.status().ToString();
    EXPECT_EQ(cp->next_iteration, 3);
    EXPECT_EQ(restored.Get("counter")->json(), 3);
  }
  fs::remove_all(dir);
}

TEST(IterationTimeoutTest, CancellingDuringATimedExecutionInterruptsIt) {
  std::atomic<bool> cancel{false};
  FakeExecutor* self = nullptr;
  FakeExecutor fake(InterruptibleHangAt(&self, 1));
  self = &fake;
  storage::Context context;
  ASSERT_TRUE(context.Put("counter", storage::Value::Json(0)).ok());
  LoopRunner runner(fake, context);
  LoopOptions options = Timed(3, 60);
  options.cancel = &cancel;
  std::thread canceller([&cancel] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    cancel.store(true);
  });
  const auto start = Clock::now();
  auto result = runner.Run({Counter()}, options);
  canceller.join();
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kCancelled) << result.status().ToString();
  EXPECT_LT(SecondsSince(start), 5.0);
  EXPECT_EQ(context.Get("counter")->json(), 1);
}

TEST(IterationTimeoutTest, BadLimitsAreRejected) {
  FakeExecutor fake(
      [](const ExecutionRequest& r) -> Result<ExecutionOutcome> { return Incremented(r); });
  storage::Context context;
  LoopRunner runner(fake, context);
  for (double bad : {-1.0, 1e300, std::nan("")}) {
    LoopOptions options;
    options.iteration_timeout = bad;
    auto result = runner.Run({Counter()}, options);
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().code(), ErrorCode::kInvalidArgument);
  }
}

// In a sweep, the point whose iteration hangs fails with kTimeout and the other points run.
TEST(IterationTimeoutTest, ASweepPointThatHangsFailsWithATimeoutAndTheSweepGoesOn) {
  FakeExecutor* self = nullptr;
  FakeExecutor fake(InterruptibleHangAt(&self, 2));
  self = &fake;
  storage::Context parent;
  std::vector<SweepPoint> points;
  for (int k = 0; k < 4; ++k) points.push_back({k, {{"counter", k}}, ""});
  SweepOptions options;
  options.pipeline = false;
  options.iteration_timeout = 0.3;
  options.interrupt_grace = 5;
  std::map<int, SweepPointResult> results;
  options.on_point = [&results](const SweepPointResult& r) { results[r.point.index] = r; };
  SweepRunner runner(fake, parent);
  const auto start = Clock::now();
  auto summary = runner.Run({Counter()}, points, options);
  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  EXPECT_LT(SecondsSince(start), 5.0);
  EXPECT_EQ(summary->points, 4);
  EXPECT_EQ(summary->failed, 1);
  ASSERT_EQ(results.size(), 4u);
  EXPECT_EQ(results[2].status.code(), ErrorCode::kTimeout) << results[2].status.ToString();
  for (int k : {0, 1, 3}) {
    ASSERT_TRUE(results[k].status.ok()) << k << ": " << results[k].status.ToString();
    EXPECT_EQ(results[k].outputs.at("counter").json().get<int>(), k + 1);
  }
}

}  // namespace
}  // namespace discomfort::engine
