// The per-iteration timeout against the real ComfyUI: a node that checks the interrupt flag is
// stopped through PromptExecutor's interrupt; one that ignores it is abandoned after the grace
// period. Both end with kTimeout naming iteration, workflow and node, keep the context at the
// last finished iteration, and leave the engine able to run again.
#include <chrono>
#include <filesystem>
#include <thread>

#include <unistd.h>

#include <gtest/gtest.h>

#include "engine/loop.h"
#include "engine/timed_execution.h"
#include "tests/bridge/comfy_environment.h"

namespace discomfort {
namespace {

using nlohmann::json;
using testing::Comfy;
using Clock = std::chrono::steady_clock;

json Link(const std::string& node) { return json::array({node, 0}); }

// counter -> +1 -> HangAt(hang_at) -> counter
engine::PreparedWorkflow HangWorkflow(const std::string& name, int hang_at, double seconds,
                                      bool check_interrupt, const std::string& marker = "") {
  json prompt = {
      {"1", {{"class_type", "DiscomfortPort"}, {"inputs", {{"unique_id", "counter"}}}}},
      {"2",
       {{"class_type", "DiscomfortTestAdd"}, {"inputs", {{"value", Link("1")}, {"amount", 1}}}}},
      {"3",
       {{"class_type", "DiscomfortTestHangAt"},
        {"inputs",
         {{"value", Link("2")},
          {"hang_at", hang_at},
          {"seconds", seconds},
          {"check_interrupt", check_interrupt},
          {"marker", marker}}}}},
      {"4",
       {{"class_type", "DiscomfortPort"},
        {"inputs", {{"unique_id", "counter"}, {"input_data", Link("3")}}}}}};
  auto prepared = engine::PrepareWorkflow({name, prompt}, 0);
  EXPECT_TRUE(prepared.ok()) << prepared.status().ToString();
  return std::move(prepared).value();
}

int64_t Counter(const storage::Context& context) {
  return context.Get("counter")->json().get<int64_t>();
}

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

TEST(IterationTimeoutTest, AnInterruptibleNodeIsStoppedAndTheEngineRunsAgain) {
  storage::Context context;
  ASSERT_TRUE(context.Put("counter", storage::Value::Json(0)).ok());
  engine::LoopRunner runner(Comfy(), context);
  engine::LoopOptions options;
  options.iterations = 5;
  options.iteration_timeout = 2.0;
  options.interrupt_grace = 20;  // far beyond what the interrupt needs
  const auto start = Clock::now();
  // Iterations 0 and 1 give 1 and 2; iteration 2 reaches 3 and hangs for a minute.
  auto result = runner.Run({HangWorkflow("hang.json", 3, 60, true)}, options);
  const double took = SecondsSince(start);
  ASSERT_FALSE(result.ok());
  const Status& st = result.status();
  EXPECT_EQ(st.code(), ErrorCode::kTimeout) << st.ToString();
  EXPECT_EQ(st.where().iteration, 2);
  EXPECT_EQ(st.where().workflow, "hang.json");
  EXPECT_EQ(st.where().node_id, "3");
  EXPECT_EQ(st.where().class_type, "DiscomfortTestHangAt");
  EXPECT_NE(st.message().find("2 s limit; ComfyUI was interrupted in node 3"), std::string::npos)
      << st.message();
  EXPECT_LT(took, 15.0);  // ended by the interrupt, not by the grace period or the node
  EXPECT_EQ(Counter(context), 2);

  // ComfyUI's interrupt flag does not leak into the next run: it executes normally.
  options.iterations = 3;
  auto again = runner.Run({HangWorkflow("hang.json", -1, 60, true)}, options);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(Counter(context), 5);
}

TEST(IterationTimeoutTest, ANodeIgnoringTheInterruptIsAbandonedWithoutWedging) {
  const std::string marker =
      (std::filesystem::temp_directory_path() / ("discomfort-deaf-" + std::to_string(::getpid())))
          .string();
  std::filesystem::remove(marker);
  storage::Context context;
  ASSERT_TRUE(context.Put("counter", storage::Value::Json(0)).ok());
  engine::LoopRunner runner(Comfy(), context);
  engine::LoopOptions options;
  options.iterations = 3;
  options.iteration_timeout = 1.0;
  options.interrupt_grace = 1.0;
  const auto start = Clock::now();
  // Iteration 0 gives 1; iteration 1 reaches 2 and sleeps 6 s, deaf to the interrupt.
  auto result = runner.Run({HangWorkflow("deaf.json", 2, 6, false, marker)}, options);
  const double took = SecondsSince(start);
  ASSERT_FALSE(result.ok());
  const Status& st = result.status();
  EXPECT_EQ(st.code(), ErrorCode::kTimeout) << st.ToString();
  EXPECT_EQ(st.where().iteration, 1);
  EXPECT_EQ(st.where().workflow, "deaf.json");
  EXPECT_EQ(st.where().node_id, "3");
  EXPECT_NE(st.message().find("ignored the interrupt"), std::string::npos) << st.message();
  EXPECT_LT(took, 5.0);  // the engine returned while the node still sleeps
  EXPECT_FALSE(std::filesystem::exists(marker));
  EXPECT_EQ(Counter(context), 1);

  // Nothing else may execute meanwhile; once the node returns, its result is dropped and the
  // engine runs again.
  Status busy = engine::WaitForAbandonedExecution(0);
  EXPECT_EQ(busy.code(), ErrorCode::kTimeout);
  EXPECT_NE(busy.message().find("node 3 (DiscomfortTestHangAt)"), std::string::npos)
      << busy.message();
  ASSERT_TRUE(engine::WaitForAbandonedExecution(60).ok());
  EXPECT_TRUE(std::filesystem::exists(marker));
  EXPECT_EQ(Counter(context), 1);
  options.iterations = 2;
  auto again = runner.Run({HangWorkflow("deaf.json", -1, 6, false)}, options);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(Counter(context), 3);
  std::filesystem::remove(marker);
}

}  // namespace
}  // namespace discomfort
