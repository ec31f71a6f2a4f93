// The run trace: valid Chrome trace-event JSON whose spans pair up and nest on every track, with
// iterations, stages, workflows, nodes, retries, spills and PNG encodes recorded.
#include "engine/trace.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "engine/loop.h"
#include "tests/engine/fake_executor.h"

namespace discomfort::engine {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::FakeExecutor;

json Link(const std::string& node) { return json::array({node, 0}); }

// Checks what a viewer needs: every B has its E on the same track, in nesting order, names and
// timestamps present, complete spans non-negative. Returns the events.
std::vector<json> ValidatedEvents(const std::string& path) {
  std::ifstream in(path);
  json doc = json::parse(in);
  EXPECT_TRUE(doc.contains("traceEvents"));
  std::vector<json> events = doc["traceEvents"];
  std::map<std::pair<int, int>, std::vector<std::string>> open;
  for (const json& e : events) {
    const std::string ph = e.at("ph");
    EXPECT_TRUE(e.contains("name") && e["name"].is_string() &&
                !e["name"].get<std::string>().empty())
        << e;
    EXPECT_TRUE(e.contains("pid") && e.contains("tid")) << e;
    if (ph == "M") continue;
    EXPECT_TRUE(e.contains("ts") && e["ts"].is_number_integer()) << e;
    auto& stack = open[{e["pid"].get<int>(), e["tid"].get<int>()}];
    if (ph == "B") stack.push_back(e["name"]);
    if (ph == "E") {
      EXPECT_FALSE(stack.empty()) << "an end without a begin: " << e;
      if (!stack.empty()) {
        EXPECT_EQ(stack.back(), e["name"]) << "spans overlap instead of nesting";
        stack.pop_back();
      }
    }
    if (ph == "X") EXPECT_GE(e.at("dur").get<int64_t>(), 0) << e;
  }
  for (const auto& [track, stack] : open)
    EXPECT_TRUE(stack.empty()) << stack.size() << " spans never ended";
  return events;
}

int Count(const std::vector<json>& events, const std::string& category, const std::string& ph) {
  int n = 0;
  for (const json& e : events) n += e.value("cat", "") == category && e["ph"] == ph;
  return n;
}

TEST(TraceTest, ALoopTraceHasPairedNestedSpansForEveryLevel) {
  const std::string dir =
      (fs::temp_directory_path() / ("discomfort-trace-" + std::to_string(::getpid()))).string();
  fs::remove_all(dir);
  fs::create_directories(dir);
  json prompt = {{"1", {{"class_type", "DiscomfortPort"}, {"inputs", {{"unique_id", "frame"}}}}},
                 {"2", {{"class_type", "ImageInvert"}, {"inputs", {{"image", Link("1")}}}}},
                 {"3",
                  {{"class_type", "DiscomfortPort"},
                   {"inputs", {{"unique_id", "frame"}, {"input_data", Link("2")}}}}}};
  auto wf = PrepareWorkflow({"invert.json", prompt}, 0);
  ASSERT_TRUE(wf.ok());
  int calls = 0;
  FakeExecutor executor([&](const ExecutionRequest& r) -> Result<ExecutionOutcome> {
    if (r.on_progress) r.on_progress("node_start", {{"node", "2"}});
    if (r.on_progress) r.on_progress("node_start", {{"node", "3"}});
    if (++calls == 2) return Status(ErrorCode::kExecution, "flaky");  // retried once
    ExecutionOutcome out;
    out.outputs["frame"] = storage::Value::Tensor(1 - r.inputs.at("frame").tensor());
    return out;
  });
  storage::ContextOptions tiny;
  tiny.max_ram_gb = 0;  // every tensor spills when stored and reloads when read
  storage::Context context(tiny);
  ASSERT_TRUE(context.Put("frame", storage::Value::Tensor(at::rand({1, 8, 8, 3}))).ok());
  auto trace = TraceSession::Open(dir + "/trace.json", &context);
  ASSERT_TRUE(trace.ok());
  Stage stage;
  stage.name = "main";
  stage.workflows = {*wf};
  stage.on_error = ErrorPolicy::kRetry;
  stage.retries = 1;
  LoopOptions options;
  options.iterations = 3;
  options.output_dir = dir + "/out";
  options.trace = (*trace)->writer();
  auto result = LoopRunner(executor, context).RunStages({stage}, options);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_TRUE((*trace)->Close().ok());

  const auto events = ValidatedEvents(dir + "/trace.json");
  EXPECT_EQ(Count(events, "iteration", "B"), 3);
  EXPECT_EQ(Count(events, "stage", "B"), 3);
  EXPECT_EQ(Count(events, "workflow", "B"), 4);  // one retry
  EXPECT_EQ(Count(events, "node", "X"), 8);
  EXPECT_EQ(Count(events, "stage", "i"), 1);  // the retry
  EXPECT_EQ(Count(events, "failure", "i"), 1);
  EXPECT_EQ(Count(events, "png", "X"), 3);  // one image per iteration
  EXPECT_GE(Count(events, "spill", "X"), 3);
  EXPECT_GE(Count(events, "reload", "X"), 3);
  bool named = false;
  for (const json& e : events) named = named || e.value("name", "") == "ImageInvert #2";
  EXPECT_TRUE(named) << "node spans are named by class and id";
  for (const json& e : events) {
    if (e.value("cat", "") == "spill") {
      EXPECT_EQ(e["args"]["bytes"], 8 * 8 * 3 * 4);
    }
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace discomfort::engine
