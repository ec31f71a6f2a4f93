#include "cli/sweep_command.h"

#include <chrono>
#include <filesystem>
#include <iostream>
#include <optional>

#include "bridge/distributed.h"
#include "cli/report_command.h"
#include "cli/session.h"
#include "engine/run_request.h"
#include "engine/workflow_resolver.h"
#include "storage/context.h"

namespace discomfort::cli {
namespace {

using nlohmann::json;

struct SweepCliOptions {
  CommonOptions common;
  std::vector<std::string> workflows;
  std::vector<std::string> grid;
  std::string images_dir;
  std::string image_port = "image";
  std::string shard;
  int iterations = 1;
  std::vector<std::string> sets;
  std::string out_dir;
  std::string events_path;
  std::string trace_path;
  bool exact_executor = false;
  bool report = false;
  bool no_pipeline = false;
  int in_flight = 4;
  double iteration_timeout = 0;
  double interrupt_grace = 10;
  // Ray scale-out
  std::string ray;  // auto, HOST:PORT or local:N
  int workers_per_node = 1;
  std::string setup;
  bool collect = false;
  int max_retries = 3;
};

std::string Absolute(const std::string& path) {
  return path.empty() ? path : std::filesystem::absolute(path).lexically_normal().string();
}

// The sweep on a Ray cluster: the engine makes the points here; the driver (Python, in the
// embedded interpreter) hands them to one warm engine per worker slot.
int DistributedSweep(const SweepCliOptions& o, const engine::SweepRequest& request) {
  std::vector<std::string> images;
  if (!o.images_dir.empty()) {
    auto listed = engine::ListImages(o.images_dir);
    if (!listed.ok()) return Fail(listed.status());
    images = std::move(listed).value();
  }
  json points = json::array();
  for (const engine::SweepPoint& p : engine::MakeSweepPoints(request.grid, images, request.shard)) {
    json point = {{"index", p.index}, {"params", p.params}, {"image", nullptr}};
    if (!p.image_path.empty()) point["image"] = Absolute(p.image_path);
    points.push_back(std::move(point));
  }
  std::vector<std::string> workflows, nodes;
  for (const auto& w : o.workflows) workflows.push_back(Absolute(w));
  for (const auto& n : o.common.nodes) nodes.push_back(Absolute(n));
  const json config = {{"address", o.ray},
                       {"workers_per_node", o.workers_per_node},
                       {"points", points},
                       {"workflows", workflows},
                       {"iterations", o.iterations},
                       {"set_values", o.sets},
                       {"image_port", o.image_port},
                       {"output_dir", Absolute(o.out_dir)},
                       {"collect", o.collect},
                       {"setup", o.setup.empty() ? json(nullptr) : json(Absolute(o.setup))},
                       {"iteration_timeout", o.iteration_timeout},
                       {"interrupt_grace", o.interrupt_grace},
                       {"max_retries", o.max_retries},
                       {"comfyui_path", o.common.comfyui},
                       {"cpu", o.common.cpu},
                       {"extra_nodes", nodes}};
  EventLog events;
  if (Status st = events.Open(o.events_path); !st.ok()) return Fail(st);
  auto sink = events.Sink();
  auto rc = bridge::RunDistributedSweep(config, CancelFlag(), [&sink](const json& line) {
    std::cout << line.dump() << std::endl;
    if (sink) sink(line);
  });
  if (!rc.ok()) return Fail(rc.status());
  return *rc;
}

// Everything the command line says, checked before ComfyUI starts (seconds) so a typo fails fast.
Result<engine::SweepRequest> MakeRequest(const SweepCliOptions& o) {
  if (o.grid.empty() == o.images_dir.empty()) {
    return Status(ErrorCode::kInvalidArgument,
                  "give --grid key=VALUES (one or more) or --images DIR");
  }
  engine::SweepRequest request;
  for (const auto& path : o.workflows)
    request.workflows.push_back(engine::WorkflowSpec::File(path));
  for (const auto& text : o.grid) {
    DISCOMFORT_ASSIGN_OR_RETURN(engine::GridAxis axis, engine::ParseGridAxis(text));
    request.grid.push_back(std::move(axis));
  }
  request.images_dir = o.images_dir;
  if (!o.shard.empty()) {
    DISCOMFORT_ASSIGN_OR_RETURN(engine::Shard shard, engine::ParseShard(o.shard));
    request.shard = shard;
  }
  request.set_values = o.sets;
  request.trace_path = o.trace_path;
  engine::SweepOptions& options = request.options;
  options.iterations_per_point = o.iterations;
  options.image_port = o.image_port;
  options.output_dir = o.out_dir;
  options.pipeline = !o.no_pipeline;
  options.max_in_flight = o.in_flight;
  options.iteration_timeout = o.iteration_timeout;
  options.interrupt_grace = o.interrupt_grace;
  options.exact_executor = o.exact_executor;
  return request;
}

int SweepCommand(SweepCliOptions o) {
  if (o.report) {
    if (o.out_dir.empty())
      return Fail(
          Status(ErrorCode::kInvalidArgument, "--report needs --out DIR (the report's folder)"));
    if (o.events_path.empty()) o.events_path = o.out_dir + "/events.jsonl";
    if (o.trace_path.empty() && o.ray.empty()) o.trace_path = o.out_dir + "/trace.json";
    if (Status st = storage::FileSystem::Default()->CreateDir(o.out_dir); !st.ok()) return Fail(st);
  }
  auto request = MakeRequest(o);
  if (!request.ok()) return Fail(request.status());
  CatchStopSignals();
  if (!o.ray.empty()) {
    const int rc = DistributedSweep(o, *request);
    if (o.report) WriteRunReport(o.out_dir, o.events_path, "", "");
    return rc;
  }
  auto bridge = StartBridge(o.common);
  if (!bridge.ok()) return Fail(bridge.status());
  engine::WorkflowResolver resolver(bridge->get());
  storage::Context parent;
  auto prepared = engine::PrepareSweep(*request, resolver, parent);
  if (!prepared.ok()) return Fail(prepared.status());
  EventLog events;
  if (Status st = events.Open(o.events_path); !st.ok()) return Fail(st);
  auto sink = events.Sink();

  engine::SweepOptions& options = prepared->options;
  options.cancel = CancelFlag();
  options.on_point = [&](const engine::SweepPointResult& r) {
    json line = {
        {"event", "point_done"},
        {"point", r.point.index},
        {"params", r.point.params},
        {"seconds", r.seconds},
        {"ok", r.status.ok()},
        {"time", std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
                     .count()}};
    if (!r.point.image_path.empty()) line["image"] = r.point.image_path;
    if (r.status.ok()) {
      line["outputs"] = OutputsSummary(r.outputs, {});
      line["files"] = r.files;
    } else {
      line["error"] = r.status.ToJson();
      std::cerr << "[discomfort] point " << r.point.index << ": " << r.status.ToString() << "\n";
    }
    std::cout << line.dump() << std::endl;
    if (sink) sink(line);
  };
  engine::SweepRunner runner(**bridge, parent);
  std::optional<Result<engine::SweepResult>> result;
  {
    CancelWatcher watcher(**bridge);
    result.emplace(runner.Run(prepared->workflows, prepared->points, options));
  }
  if (prepared->trace)
    prepared->trace->Close().IgnoreError();  // a sweep's result stands without its trace
  if (o.report) WriteRunReport(o.out_dir, o.events_path, o.trace_path, "");
  if (!result->ok()) return Fail(result->status());
  const engine::SweepResult& done = result->value();
  std::cerr << "[discomfort] sweep: " << done.points << " points, " << done.failed << " failed, "
            << FormatSeconds(done.seconds) << (options.pipeline ? " (pipelined)" : "") << "\n";
  return done.failed == 0 ? 0 : 1;
}

}  // namespace

void AddSweepCommand(CLI::App& app, int* exit_code) {
  static SweepCliOptions sweep;
  CLI::App* cmd =
      app.add_subcommand("sweep", "independent runs over a parameter grid or a folder of images");
  cmd->add_option("workflows", sweep.workflows, "workflow JSON files")->required();
  cmd->add_option("--grid", sweep.grid,
                  "key=VALUES: seed=1..8, cfg=5,7.5, name=a,b (repeat for a product)");
  cmd->add_option("--images", sweep.images_dir, "run once per .png in this folder");
  cmd->add_option("--image-port", sweep.image_port,
                  "INPUT port that receives each image (default: image)");
  cmd->add_option(
      "--shard", sweep.shard,
      "K/N: run only part K of N (1 <= K <= N) of the points, with the same output names; the N "
      "parts together are the whole sweep");
  cmd->add_option("-n,--iterations", sweep.iterations, "iterations per point")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--set", sweep.sets, "unique_id=VALUE shared by every point");
  cmd->add_option("-o,--out", sweep.out_dir, "folder for outputs: point_<index>/<unique_id>.png");
  cmd->add_option("--events", sweep.events_path, "append JSON-lines events to FILE");
  cmd->add_option(
      "--trace", sweep.trace_path,
      "write a Chrome trace of each point's decode / execute / encode and its nodes to FILE");
  cmd->add_flag("--report", sweep.report,
                "write OUT/report.html (the outputs laid out by parameter values)");
  cmd->add_flag("--exact-executor", sweep.exact_executor,
                "ComfyUI's full prompt round for every execution");
  cmd->add_flag("--no-pipeline", sweep.no_pipeline,
                "decode / execute / encode one point at a time");
  cmd->add_option("--in-flight", sweep.in_flight, "points alive at once in the pipeline")
      ->check(CLI::PositiveNumber);
  cmd->add_option(
         "--iteration-timeout", sweep.iteration_timeout,
         "a point whose iteration takes longer than SECONDS is interrupted and reported as failed "
         "with a timeout error; the sweep goes on (default: none)")
      ->check(CLI::Range(0.0, 604800.0));
  cmd->add_option("--interrupt-grace", sweep.interrupt_grace,
                  "seconds a node may ignore that interrupt (default 10)")
      ->check(CLI::Range(0.0, 604800.0));
  cmd->add_option(
      "--ray", sweep.ray,
      "run the points on a Ray cluster: auto, HOST:PORT, or local:N (a local cluster of N worker "
      "nodes for this run); needs pip install 'discomfort[ray]'");
  cmd->add_option("--workers-per-node", sweep.workers_per_node,
                  "with --ray: engines (actors) per node (default 1)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--setup", sweep.setup,
                  "with --ray: a workflow run once per actor; its OUTPUT values (MODEL, CLIP, VAE "
                  "...) feed every "
                  "point that actor runs");
  cmd->add_flag(
      "--collect", sweep.collect,
      "with --ray: ship output images back to this machine (when --out is not a shared path)");
  cmd->add_option(
         "--max-retries", sweep.max_retries,
         "with --ray: how often a point lost with its node runs again elsewhere (default 3)")
      ->check(CLI::NonNegativeNumber);
  AddCommonOptions(cmd, &sweep.common);
  cmd->callback([exit_code] { *exit_code = SweepCommand(sweep); });
}

}  // namespace discomfort::cli
