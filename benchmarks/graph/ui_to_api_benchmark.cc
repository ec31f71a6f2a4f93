// UI→API conversion and validation of a generated 1,000-node workflow (issue #3's goal: under
// 5 ms for convert + validate). The workflow is tests/graph/generated_workflow.h: 100 blocks of
// a text-to-image graph with a bypassed LoRA, a Reroute or a PrimitiveNode per block.
// Wall-clock times (UseRealTime): large workflows are parsed, emitted and validated on TBB's
// workers, which a CPU-time figure of the calling thread would leave out.
#include <cstdio>
#include <cstdlib>
#include <string>

#include <benchmark/benchmark.h>

#include "graph/node_definitions.h"
#include "graph/ui_to_api.h"
#include "graph/workflow.h"
#include "graph/workflow_ops.h"
#include "tests/graph/generated_workflow.h"

namespace discomfort::graph {
namespace {

using nlohmann::json;

const NodeDefinitions& Definitions() {
  static const NodeDefinitions defs = [] {
    auto loaded = NodeDefinitions::LoadFile(std::string(DISCOMFORT_SOURCE_DIR) +
                                            "/tests/data/object_info_v0.33.0.json");
    if (!loaded.ok()) {
      std::fprintf(stderr, "%s\n", loaded.status().ToString().c_str());
      std::abort();
    }
    return std::move(loaded).value();
  }();
  return defs;
}

int Blocks(const benchmark::State& state) {
  return static_cast<int>(state.range(0)) / testing::kGeneratedBlockNodes;
}

json ConvertOrDie(const json& ui) {
  auto prompt = ConvertUiToApi(ui, Definitions());
  if (!prompt.ok()) {
    std::fprintf(stderr, "%s\n", prompt.status().ToString().c_str());
    std::abort();
  }
  return std::move(prompt).value();
}

// The figure: parsed UI JSON in, validated API prompt out.
void BM_ConvertAndValidate(benchmark::State& state) {
  const json ui = testing::GeneratedWorkflow(Blocks(state));
  const NodeDefinitions& defs = Definitions();
  for (auto _ : state) {
    json prompt = ConvertOrDie(ui);
    auto problems = ValidateWorkflow(prompt, &defs);
    if (!problems.empty()) {
      state.SkipWithError(problems[0].ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(prompt);
  }
  state.counters["nodes"] = static_cast<double>(ui["nodes"].size());
}
BENCHMARK(BM_ConvertAndValidate)->Arg(1000)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Convert(benchmark::State& state) {
  const json ui = testing::GeneratedWorkflow(Blocks(state));
  for (auto _ : state) {
    json prompt = ConvertOrDie(ui);
    benchmark::DoNotOptimize(prompt);
  }
}
BENCHMARK(BM_Convert)->Arg(1000)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_ValidateApiPrompt(benchmark::State& state) {
  const json prompt = ConvertOrDie(testing::GeneratedWorkflow(Blocks(state)));
  const NodeDefinitions& defs = Definitions();
  for (auto _ : state) {
    auto problems = ValidateWorkflow(prompt, &defs);
    benchmark::DoNotOptimize(problems);
  }
}
BENCHMARK(BM_ValidateApiPrompt)->Arg(1000)->Unit(benchmark::kMillisecond)->UseRealTime();

// Validating the UI workflow itself (what `discomfort validate` does on a UI file).
void BM_ValidateUiWorkflow(benchmark::State& state) {
  const json ui = testing::GeneratedWorkflow(Blocks(state));
  const NodeDefinitions& defs = Definitions();
  for (auto _ : state) {
    auto problems = ValidateWorkflow(ui, &defs);
    benchmark::DoNotOptimize(problems);
  }
}
BENCHMARK(BM_ValidateUiWorkflow)->Arg(1000)->Unit(benchmark::kMillisecond)->UseRealTime();

// The UI model alone (the first half of a conversion).
void BM_ParseUiWorkflow(benchmark::State& state) {
  const json ui = testing::GeneratedWorkflow(Blocks(state));
  for (auto _ : state) {
    auto parsed = ParseUiWorkflow(ui);
    benchmark::DoNotOptimize(parsed);
  }
}
BENCHMARK(BM_ParseUiWorkflow)->Arg(1000)->Unit(benchmark::kMillisecond)->UseRealTime();

// Reference floor: a deep copy of the UI document and of the prompt it converts to (what
// allocating the same JSON trees costs on this machine, with nothing else done).
void BM_CopyUiAndPromptJson(benchmark::State& state) {
  const json ui = testing::GeneratedWorkflow(Blocks(state));
  const json prompt = ConvertOrDie(ui);
  for (auto _ : state) {
    json a = ui;
    json b = prompt;
    benchmark::DoNotOptimize(a);
    benchmark::DoNotOptimize(b);
  }
}
BENCHMARK(BM_CopyUiAndPromptJson)->Arg(1000)->Unit(benchmark::kMillisecond)->UseRealTime();

// From the file's text: JSON parsing included (what the CLI pays per file).
void BM_ParseConvertAndValidate(benchmark::State& state) {
  const std::string text = testing::GeneratedWorkflow(Blocks(state)).dump();
  const NodeDefinitions& defs = Definitions();
  for (auto _ : state) {
    json prompt = ConvertOrDie(json::parse(text));
    auto problems = ValidateWorkflow(prompt, &defs);
    benchmark::DoNotOptimize(problems);
  }
  state.counters["bytes"] = static_cast<double>(text.size());
}
BENCHMARK(BM_ParseConvertAndValidate)->Arg(1000)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace discomfort::graph

BENCHMARK_MAIN();
