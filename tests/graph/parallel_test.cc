// ForEachIndex, and the graph functions that use it on large workflows: what they report must be
// what a serial pass reports (the lowest failing index), whatever the workers' timing.
#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <tbb/task_arena.h>

#include "generated_workflow.h"
#include "graph/parallel.h"
#include "graph/ui_to_api.h"
#include "graph/workflow.h"
#include "graph/workflow_ops.h"
#include "test_util.h"

namespace discomfort::graph {
namespace {

using nlohmann::json;

Status FailAt(size_t i, size_t bad) {
  if (i != bad) return Status::Ok();
  return Status(ErrorCode::kParse, "item " + std::to_string(i));
}

TEST(ForEachIndex, VisitsEveryItemOnceSeriallyAndInParallel) {
  for (size_t n : {size_t{0}, size_t{10}, kParallelMinItems - 1, kParallelMinItems, size_t{5000}}) {
    std::vector<std::atomic<int>> visits(n);
    size_t failed_at = 12345;
    Status st = ForEachIndex(
        n,
        [&](size_t i) {
          visits[i].fetch_add(1);
          return Status::Ok();
        },
        &failed_at);
    EXPECT_TRUE(st.ok()) << n;
    EXPECT_EQ(failed_at, n);
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(visits[i].load(), 1) << "item " << i << " of " << n;
  }
}

TEST(ForEachIndex, ReportsTheLowestFailingIndex) {
  for (size_t n : {size_t{100}, size_t{5000}}) {
    size_t failed_at = 0;
    Status st = ForEachIndex(
        n,
        [&](size_t i) {
          if (i == n - 3 || i == n - 20 || i == 70) {
            return Status(ErrorCode::kParse, "item " + std::to_string(i));
          }
          return Status::Ok();
        },
        &failed_at);
    EXPECT_EQ(st.code(), ErrorCode::kParse);
    EXPECT_EQ(st.message(), "item 70") << n;
    EXPECT_EQ(failed_at, 70u);
  }
  EXPECT_EQ(ForEachIndex(3000, [](size_t i) { return FailAt(i, 2999); }).message(), "item 2999");
}

TEST(ForEachIndex, AnEscapingExceptionBecomesAnInternalError) {
  for (size_t n : {size_t{10}, size_t{5000}}) {
    Status st = ForEachIndex(n, [&](size_t i) -> Status {
      if (i == n - 1) throw std::runtime_error("boom");
      return Status::Ok();
    });
    EXPECT_EQ(st.code(), ErrorCode::kInternal);
    EXPECT_NE(st.message().find("boom"), std::string::npos) << st.message();
  }
}

// A thread waiting inside ForEachIndex runs only ForEachIndex's own chunks. Were it to pick up
// other tasks of its arena (a sweep's execute stage takes the GIL), a caller holding the GIL would
// deadlock. Set-up: when a worker takes one of the loop's chunks, another thread enqueues tasks
// into the arena and the worker holds that chunk, so the caller runs out of chunks and waits
// while those tasks are there to be taken.
TEST(ForEachIndex, AWaitingCallerRunsNoOtherTask) {
  constexpr int kOthers = 50;
  tbb::task_arena arena(2);
  std::atomic<bool> inside{false}, stolen{false}, enqueued{false};
  std::atomic<int> ran_on_caller{0}, others_done{0};
  std::thread::id caller;
  auto spin = [](std::chrono::microseconds how_long) {
    const auto until = std::chrono::steady_clock::now() + how_long;
    while (std::chrono::steady_clock::now() < until) {
    }
  };
  std::thread feeder([&] {
    while (!stolen.load()) std::this_thread::yield();
    for (int k = 0; k < kOthers; ++k) {
      arena.enqueue([&] {
        if (inside.load() && std::this_thread::get_id() == caller) ran_on_caller.fetch_add(1);
        others_done.fetch_add(1);
      });
    }
    enqueued = true;
  });
  arena.execute([&] {
    caller = std::this_thread::get_id();
    inside = true;
    Status st = ForEachIndex(2000, [&](size_t) {
      if (std::this_thread::get_id() != caller && !stolen.exchange(true)) {
        while (!enqueued.load()) std::this_thread::yield();
        spin(std::chrono::milliseconds(20));  // the caller finishes its chunks meanwhile
      }
      spin(std::chrono::microseconds(2));
      return Status::Ok();
    });
    inside = false;
    EXPECT_TRUE(st.ok());
  });
  if (!stolen.load()) stolen = true;  // no worker took a chunk: release the feeder
  feeder.join();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (others_done.load() < kOthers && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(others_done.load(), kOthers);
  EXPECT_EQ(ran_on_caller.load(), 0);
}

// The generated blocks are independent, so the first 20 blocks of a 1,000-node workflow (parsed,
// emitted and validated on the workers) must convert exactly as the 200-node workflow of those
// blocks alone does (which stays on one thread).
TEST(LargeWorkflow, ParallelConversionEqualsTheSerialOne) {
  const NodeDefinitions& defs = testing::V033Definitions();
  auto large = ConvertUiToApi(testing::GeneratedWorkflow(100), defs);
  auto small = ConvertUiToApi(testing::GeneratedWorkflow(20), defs);
  ASSERT_TRUE(large.ok()) << large.status().ToString();
  ASSERT_TRUE(small.ok()) << small.status().ToString();
  ASSERT_EQ(small->size(), 160u);
  for (const auto& [id, node] : small->items()) {
    ASSERT_TRUE(large->contains(id)) << id;
    EXPECT_EQ((*large)[id], node) << "node " << id;
  }
  // And the same document converts to the same prompt every time.
  for (int run = 0; run < 5; ++run) {
    auto again = ConvertUiToApi(testing::GeneratedWorkflow(100), defs);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(*again, *large);
  }
}

TEST(LargeWorkflow, ParseReportsTheFirstBadNodeInDocumentOrder) {
  json ui = testing::GeneratedWorkflow(100);
  ui["nodes"][900]["mode"] = "often";
  ui["nodes"][400]["mode"] = "never";
  auto wf = ParseUiWorkflow(ui);
  ASSERT_FALSE(wf.ok());
  EXPECT_EQ(wf.status().where().json_pointer, "/nodes/400/mode");

  // A duplicate id before the bad node is reported first, as a serial parse finds it first.
  ui["nodes"][300]["id"] = ui["nodes"][10]["id"];
  wf = ParseUiWorkflow(ui);
  ASSERT_FALSE(wf.ok());
  EXPECT_EQ(wf.status().code(), ErrorCode::kParse);
  EXPECT_EQ(wf.status().where().json_pointer, "/nodes/300");
  EXPECT_NE(wf.status().message().find("duplicate node id 11"), std::string::npos)
      << wf.status().message();

  json links_bad = testing::GeneratedWorkflow(100);
  links_bad["links"][1000][2] = "x";
  links_bad["links"][500][4] = "y";
  wf = ParseUiWorkflow(links_bad);
  ASSERT_FALSE(wf.ok());
  EXPECT_EQ(wf.status().where().json_pointer, "/links/500");
}

TEST(LargeWorkflow, ConversionReportsTheFirstBadNodeInGraphOrder) {
  json ui = testing::GeneratedWorkflow(100);
  // KSamplers of blocks 60 and 30 (ids 606 and 306, at indexes 605 and 305): a seed that is text.
  ui["nodes"][605]["widgets_values"][0] = "sixty";
  ui["nodes"][305]["widgets_values"][0] = "thirty";
  auto prompt = ConvertUiToApi(ui, testing::V033Definitions());
  ASSERT_FALSE(prompt.ok());
  EXPECT_EQ(prompt.status().code(), ErrorCode::kTypeMismatch);
  EXPECT_EQ(prompt.status().where().node_id, "306");
  EXPECT_EQ(prompt.status().where().json_pointer, "/nodes/305/widgets_values/0");
}

TEST(LargeWorkflow, ValidationListsEveryProblemInPromptOrder) {
  const NodeDefinitions& defs = testing::V033Definitions();
  auto prompt = ConvertUiToApi(testing::GeneratedWorkflow(100), defs);
  ASSERT_TRUE(prompt.ok());
  (*prompt)["906"]["inputs"].erase("model");
  (*prompt)["306"]["inputs"]["positive"] = json::array({"99999", 0});
  (*prompt)["506"]["inputs"].erase("model");
  const std::vector<Status> problems = ValidateWorkflow(*prompt, &defs);
  ASSERT_EQ(problems.size(), 3u);
  // Prompt order is the map's: "306" < "506" < "906".
  EXPECT_EQ(problems[0].where().node_id, "306");
  EXPECT_EQ(problems[0].code(), ErrorCode::kNotFound);
  EXPECT_EQ(problems[1].where().node_id, "506");
  EXPECT_EQ(problems[1].where().input_name, "model");
  EXPECT_EQ(problems[2].where().node_id, "906");
}

// The model borrows from the document; a temporary document is kept alive by the result.
TEST(ParseUiWorkflow, ATemporaryDocumentIsOwnedByTheResult) {
  auto wf = ParseUiWorkflow(testing::GeneratedWorkflow(1));
  ASSERT_TRUE(wf.ok());
  ASSERT_NE(wf->owned_document, nullptr);
  const UiNode* sampler = wf->root.FindNode("6");
  ASSERT_NE(sampler, nullptr);
  EXPECT_EQ((*sampler->widgets_values)[0], 1000);
  json doc = testing::GeneratedWorkflow(1);
  auto borrowed = ParseUiWorkflow(doc);
  ASSERT_TRUE(borrowed.ok());
  EXPECT_EQ(borrowed->owned_document, nullptr);
  EXPECT_EQ(borrowed->root.FindNode("6")->widgets_values, &doc["nodes"][5]["widgets_values"]);
}

}  // namespace
}  // namespace discomfort::graph
