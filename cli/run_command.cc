#include "cli/run_command.h"

#include <filesystem>
#include <iostream>
#include <limits>
#include <optional>

#include "cli/report_command.h"
#include "cli/session.h"
#include "engine/run_request.h"
#include "engine/workflow_resolver.h"
#include "storage/context.h"

#include <spdlog/spdlog.h>

namespace discomfort::cli {
namespace {

using nlohmann::json;

struct RunOptions {
  CommonOptions common;
  std::vector<std::string> workflows;
  std::string plan_path;
  int iterations = 1;
  bool iterations_given = false;
  std::string until;
  std::vector<std::string> sets;
  std::string out_dir;
  std::string events_path;
  bool json_summary = false;
  std::optional<double> max_ram_gb;
  std::optional<double> max_vram_gb;
  int checkpoint_every = 0;
  std::string checkpoint_dir;
  std::string resume_dir;                   // set by `discomfort resume`
  std::optional<double> iteration_timeout;  // seconds; unset: the plan's, else none
  std::optional<double> interrupt_grace;
  std::optional<int> save_every;  // unset: every iteration
  std::string trace_path;
  bool exact_executor = false;
  bool report = false;  // --report: events and trace into the output folder, then report.html
};

std::string Absolute(const std::string& path) {
  return path.empty() ? path : std::filesystem::absolute(path).lexically_normal().string();
}

json OptionalJson(const std::optional<double>& value) {
  return value ? json(*value) : json(nullptr);
}

// What `discomfort resume` needs to rebuild the run.
json RunManifest(const RunOptions& o) {
  std::vector<std::string> workflows;
  for (const auto& w : o.workflows) workflows.push_back(Absolute(w));
  std::vector<std::string> nodes;
  for (const auto& n : o.common.nodes) nodes.push_back(Absolute(n));
  return {{"discomfort_checkpoint", 1},
          {"workflows", workflows},
          {"plan", Absolute(o.plan_path)},
          {"iterations", o.iterations},
          {"iterations_given", o.iterations_given},
          {"until", o.until},
          {"out", Absolute(o.out_dir)},
          {"events", Absolute(o.events_path)},
          {"nodes", nodes},
          {"comfyui", o.common.comfyui},
          {"cpu", o.common.cpu},
          {"max_ram_gb", OptionalJson(o.max_ram_gb)},
          {"max_vram_gb", OptionalJson(o.max_vram_gb)},
          {"checkpoint_every", o.checkpoint_every},
          {"iteration_timeout", OptionalJson(o.iteration_timeout)},
          {"interrupt_grace", OptionalJson(o.interrupt_grace)},
          {"save_every", o.save_every ? json(*o.save_every) : json(nullptr)}};
}

Result<RunOptions> RunOptionsFromCheckpoint(const std::string& dir, const RunOptions& overrides) {
  engine::WorkflowResolver reader(nullptr);
  auto doc = reader.ReadJson(dir + "/run.json");
  if (!doc.ok())
    return Status(ErrorCode::kNotFound, "no checkpoint at " + dir + ": " + doc.status().message());
  const json& m = *doc;
  // json::value() throws on a present key of another type (a damaged run.json): a parse error.
  try {
    if (m.value("discomfort_checkpoint", 0) != 1) {
      return Status(ErrorCode::kParse, dir + "/run.json is not a Discomfort checkpoint");
    }
    RunOptions o;
    o.workflows = m.value("workflows", std::vector<std::string>{});
    o.plan_path = m.value("plan", "");
    o.iterations = overrides.iterations_given ? overrides.iterations : m.value("iterations", 1);
    o.iterations_given = overrides.iterations_given || m.value("iterations_given", false);
    o.until = m.value("until", "");
    o.out_dir = m.value("out", "");
    o.events_path = m.value("events", "");
    o.common = overrides.common;
    if (o.common.nodes.empty()) o.common.nodes = m.value("nodes", std::vector<std::string>{});
    if (o.common.comfyui.empty()) o.common.comfyui = m.value("comfyui", "");
    o.common.cpu = o.common.cpu || m.value("cpu", false);
    auto number = [&m](const char* key) -> std::optional<double> {
      if (m.contains(key) && m[key].is_number()) return m[key].get<double>();
      return std::nullopt;
    };
    o.max_ram_gb = number("max_ram_gb");
    o.max_vram_gb = number("max_vram_gb");
    o.checkpoint_every = overrides.checkpoint_every > 0 ? overrides.checkpoint_every
                                                        : m.value("checkpoint_every", 0);
    o.iteration_timeout =
        overrides.iteration_timeout ? overrides.iteration_timeout : number("iteration_timeout");
    o.interrupt_grace =
        overrides.interrupt_grace ? overrides.interrupt_grace : number("interrupt_grace");
    o.save_every = overrides.save_every;
    if (!o.save_every && m.contains("save_every") && m["save_every"].is_number_integer()) {
      o.save_every = m["save_every"].get<int>();
    }
    o.checkpoint_dir = dir;
    o.json_summary = overrides.json_summary;
    o.resume_dir = dir;
    return o;
  } catch (const json::exception& e) {
    return Status(ErrorCode::kParse, dir + "/run.json is damaged: " + e.what());
  }
}

engine::RunRequest MakeRequest(const RunOptions& o) {
  engine::RunRequest request;
  for (const auto& path : o.workflows)
    request.workflows.push_back(engine::WorkflowSpec::File(path));
  request.plan_path = o.plan_path;
  if (o.iterations_given || o.plan_path.empty()) request.iterations = o.iterations;
  request.until = o.until;
  request.set_values = o.sets;
  request.seed_inputs = o.resume_dir.empty();
  request.resume_from = o.resume_dir;
  request.iteration_timeout = o.iteration_timeout;
  request.interrupt_grace = o.interrupt_grace;
  request.save_every = o.save_every;
  request.max_vram_gb = o.max_vram_gb;
  request.output_dir = o.out_dir;
  request.trace_path = o.trace_path;
  request.exact_executor = o.exact_executor;
  if (o.checkpoint_every > 0) {
    request.checkpoint_every = o.checkpoint_every;
    request.checkpoint_dir = !o.checkpoint_dir.empty() ? o.checkpoint_dir
                             : o.out_dir.empty()       ? std::string("discomfort-checkpoint")
                                                       : o.out_dir + "/checkpoint";
    request.checkpoint_manifest = RunManifest(o);
  }
  return request;
}

int RunCommand(RunOptions o) {
  if (o.workflows.empty() == o.plan_path.empty()) {
    return Fail(
        Status(ErrorCode::kInvalidArgument, "give workflow files or --plan PLAN.json (not both)"));
  }
  if (o.report) {
    if (o.out_dir.empty())
      return Fail(
          Status(ErrorCode::kInvalidArgument, "--report needs --out DIR (the report's folder)"));
    if (o.events_path.empty()) o.events_path = o.out_dir + "/events.jsonl";
    if (o.trace_path.empty()) o.trace_path = o.out_dir + "/trace.json";
    if (Status st = storage::FileSystem::Default()->CreateDir(o.out_dir); !st.ok()) return Fail(st);
  }
  CatchStopSignals();
  auto bridge = StartBridge(o.common);
  if (!bridge.ok()) return Fail(bridge.status());
  engine::WorkflowResolver resolver(bridge->get());

  storage::ContextOptions context_options;
  context_options.max_ram_gb = o.max_ram_gb;
  storage::Context context(context_options);
  auto prepared = engine::PrepareRun(MakeRequest(o), resolver, context);
  if (!prepared.ok()) return Fail(prepared.status());
  engine::LoopOptions& loop = prepared->options;
  if (!o.resume_dir.empty()) {
    std::cerr << "[discomfort] resuming from " << o.resume_dir << " at iteration "
              << loop.first_iteration + 1 << "\n";
  }
  // A resumed run continues to the count it was started with.
  loop.checkpoint_manifest["iterations"] = loop.iterations;
  loop.checkpoint_manifest["iterations_given"] = true;
  loop.max_reports = 0;  // progress and --events stream them; a long run must not accumulate them
  EventLog events;
  if (Status st = events.Open(o.events_path); !st.ok()) return Fail(st);
  Progress progress(std::cerr, loop.iterations);
  loop.cancel = CancelFlag();
  loop.on_event = events.Sink();
  loop.on_iteration = [&progress](const engine::IterationReport& r) { progress.Iteration(r); };
  engine::LoopRunner runner(**bridge, context);
  std::optional<Result<engine::LoopResult>> result;
  {
    CancelWatcher watcher(**bridge);
    result.emplace(runner.RunStages(prepared->stages, loop));
  }
  progress.Finish();
  if (prepared->trace) {
    if (Status st = prepared->trace->Close(); !st.ok())
      spdlog::warn("[discomfort] the trace is incomplete: {}", st.ToString());
  }
  // A failed run gets its report too: it shows the iterations that finished and the error.
  if (o.report) WriteRunReport(o.out_dir, o.events_path, o.trace_path, o.until);
  if (!result->ok()) return Fail(result->status());
  const engine::LoopResult& done = result->value();
  if (done.stopped_by_until) {
    std::cerr << "[discomfort] stopped after " << done.iterations_completed
              << " iterations: until condition met\n";
  }
  if (o.json_summary) std::cout << OutputsSummary(done.outputs, done.files).dump() << std::endl;
  return 0;
}

}  // namespace

void AddRunCommands(CLI::App& app, int* exit_code) {
  static RunOptions run;
  CLI::App* run_cmd =
      app.add_subcommand("run", "run API- or UI-format workflows for N iterations, or a loop plan");
  run_cmd->add_option("workflows", run.workflows,
                      "workflow JSON files, run in order each iteration");
  run_cmd->add_option("--plan", run.plan_path,
                      "a loop plan (stages, when/until conditions, error policies; see README)");
  auto* iterations_opt = run_cmd
                             ->add_option("-n,--iterations", run.iterations,
                                          "number of iterations (the maximum with --until)")
                             ->check(CLI::NonNegativeNumber);
  run_cmd->add_option("--until", run.until,
                      "stop after the iteration where this condition holds, e.g. 'score > 0.9'");
  run_cmd->add_option(
      "--set", run.sets,
      "unique_id=VALUE put into the context first (JSON literal, @image.png, @file.json, or text)");
  run_cmd->add_option("-o,--out", run.out_dir, "folder for IMAGE outputs, one PNG per iteration");
  run_cmd
      ->add_option("--save-every", run.save_every,
                   "with --out, write the images of every K-th iteration only, and of the last one "
                   "(0: the last iteration only; default 1)")
      ->check(CLI::Range(0, std::numeric_limits<int>::max()));
  run_cmd->add_option("--events", run.events_path,
                      "append JSON-lines events (iterations, nodes, timings, errors) to FILE");
  run_cmd->add_flag("--json", run.json_summary,
                    "print the final OUTPUT values as one JSON object last on stdout");
  run_cmd->add_flag(
      "--report", run.report,
      "write OUT/report.html (iteration times, node costs, contact sheets and plots of the ports) "
      "from the run's events and trace, kept in OUT unless --events / --trace say otherwise");
  run_cmd->add_flag(
      "--exact-executor", run.exact_executor,
      "run ComfyUI's full prompt round every iteration instead of only the nodes whose inputs "
      "changed (same results; for comparison)");
  run_cmd->add_option(
      "--trace", run.trace_path,
      "write a Chrome trace (Perfetto, chrome://tracing) of iterations, stages, workflows, nodes, "
      "spills and PNG encodes to FILE");
  run_cmd->add_option("--max-ram-gb", run.max_ram_gb,
                      "RAM budget of the context; tensors beyond it spill to disk");
  run_cmd
      ->add_option(
          "--max-vram-gb", run.max_vram_gb,
          "budget of the context's GPU tensors (GiB); beyond it the least recently used spill "
          "(device -> pinned staging -> safetensors) and come back to the device when read")
      ->check(CLI::NonNegativeNumber);
  run_cmd
      ->add_option("--checkpoint-every", run.checkpoint_every,
                   "save a resumable checkpoint every K iterations")
      ->check(CLI::NonNegativeNumber);
  run_cmd->add_option("--checkpoint-dir", run.checkpoint_dir,
                      "checkpoint folder (default OUT/checkpoint)");
  run_cmd
      ->add_option(
          "--iteration-timeout", run.iteration_timeout,
          "end the run when an iteration takes longer than SECONDS: ComfyUI is interrupted, exit 1 "
          "with a timeout error (default: the plan's iteration_timeout, else none)")
      ->check(CLI::Range(0.0, 604800.0));
  run_cmd
      ->add_option(
          "--interrupt-grace", run.interrupt_grace,
          "seconds a node may ignore that interrupt before the run ends anyway (default 10)")
      ->check(CLI::Range(0.0, 604800.0));
  AddCommonOptions(run_cmd, &run.common);
  run_cmd->callback([exit_code, iterations_opt] {
    run.iterations_given = iterations_opt->count() > 0;
    *exit_code = RunCommand(run);
  });

  static RunOptions resume_overrides;
  static std::string resume_dir;
  CLI::App* resume_cmd = app.add_subcommand("resume", "continue a run from its checkpoint folder");
  resume_cmd->add_option("dir", resume_dir, "checkpoint folder written by run --checkpoint-every")
      ->required();
  auto* resume_iterations =
      resume_cmd
          ->add_option("-n,--iterations", resume_overrides.iterations, "new total iteration count")
          ->check(CLI::NonNegativeNumber);
  resume_cmd->add_flag("--json", resume_overrides.json_summary,
                       "print the final OUTPUT values as JSON last on stdout");
  AddCommonOptions(resume_cmd, &resume_overrides.common);
  resume_cmd->callback([exit_code, resume_iterations] {
    resume_overrides.iterations_given = resume_iterations->count() > 0;
    auto options = RunOptionsFromCheckpoint(resume_dir, resume_overrides);
    *exit_code = options.ok() ? RunCommand(*options) : Fail(options.status());
  });
}

}  // namespace discomfort::cli
