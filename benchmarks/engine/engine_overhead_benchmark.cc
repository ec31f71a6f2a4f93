// Engine overhead per iteration with a no-op executor: everything LoopRunner does around an
// execution (port lookup, type check, versions, commit, events off) — the goal is under
// 50 µs. The prompt is shared with each request, not copied (it was most of the overhead).
#include <benchmark/benchmark.h>

#include "engine/loop.h"
#include "tests/engine/fake_executor.h"

namespace discomfort::engine {
namespace {

using nlohmann::json;

PreparedWorkflow CarryWorkflow(int ports) {
  json prompt = json::object();
  for (int i = 0; i < ports; ++i) {
    const std::string uid = "v" + std::to_string(i);
    prompt[std::to_string(3 * i + 1)] = {{"class_type", "DiscomfortPort"},
                                         {"inputs", {{"unique_id", uid}}}};
    prompt[std::to_string(3 * i + 2)] = {
        {"class_type", "Op"}, {"inputs", {{"x", json::array({std::to_string(3 * i + 1), 0})}}}};
    prompt[std::to_string(3 * i + 3)] = {
        {"class_type", "DiscomfortPort"},
        {"inputs",
         {{"unique_id", uid}, {"input_data", json::array({std::to_string(3 * i + 2), 0})}}}};
  }
  return std::move(PrepareWorkflow({"bench.json", prompt}, 0)).value();
}

// range(1) = 1: with a per-iteration timeout, so each execution runs on a helper thread.
void BM_LoopIterationWithNoOpExecutor(benchmark::State& state) {
  const int ports = static_cast<int>(state.range(0));
  const bool timed = state.range(1) != 0;
  // Echoes every input back as the output of the same unique_id: the loop-carried case.
  testing::FakeExecutor fake([](const ExecutionRequest& r) -> Result<ExecutionOutcome> {
    ExecutionOutcome out;
    out.outputs = r.inputs;
    return out;
  });
  storage::Context context;
  for (int i = 0; i < ports; ++i)
    (void)context.Put("v" + std::to_string(i), storage::Value::Json(i));
  LoopRunner runner(fake, context);
  const std::vector<PreparedWorkflow> workflows = {CarryWorkflow(ports)};
  const int iterations_per_run = 1000;
  for (auto _ : state) {
    LoopOptions options;
    options.iterations = iterations_per_run;
    if (timed) options.iteration_timeout = 60;
    auto result = runner.Run(workflows, options);
    if (!result.ok()) state.SkipWithError(result.status().ToString().c_str());
    fake.requests.clear();
  }
  state.SetItemsProcessed(state.iterations() * iterations_per_run);
  state.counters["us_per_iteration"] = benchmark::Counter(
      static_cast<double>(state.iterations() * iterations_per_run),
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert, benchmark::Counter::kIs1000);
}
BENCHMARK(BM_LoopIterationWithNoOpExecutor)
    ->ArgNames({"ports", "timeout"})
    ->Args({1, 0})
    ->Args({8, 0})
    ->Args({1, 1})
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace discomfort::engine

BENCHMARK_MAIN();
