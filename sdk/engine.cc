#include "discomfort/engine.h"

#include <dlfcn.h>

#include <filesystem>
#include <mutex>

#include <ATen/ATen.h>

#include "bridge/comfy_bridge.h"
#include "engine/logging.h"
#include "engine/run_request.h"
#include "engine/workflow_resolver.h"
#include "sdk/internal.h"
#include "sdk/libtorch_check.h"

namespace discomfort {

struct Engine::Impl {
  explicit Impl(std::unique_ptr<bridge::ComfyBridge> b)
      : bridge(std::move(b)), resolver(bridge.get()) {}
  std::unique_ptr<bridge::ComfyBridge> bridge;
  engine::WorkflowResolver resolver;
};

namespace {

std::mutex g_engine_mu;
std::weak_ptr<Engine> g_engine;

LogLevel FromEngineLevel(engine::LogLevel level) {
  switch (level) {
    case engine::LogLevel::kDebug:
      return LogLevel::kDebug;
    case engine::LogLevel::kInfo:
      return LogLevel::kInfo;
    case engine::LogLevel::kWarning:
      return LogLevel::kWarning;
    case engine::LogLevel::kError:
      break;
  }
  return LogLevel::kError;
}

std::vector<engine::WorkflowSpec> Specs(const std::vector<Workflow>& workflows) {
  std::vector<engine::WorkflowSpec> specs;
  for (const Workflow& w : workflows) specs.push_back({w.path, w.document, w.name});
  return specs;
}

std::map<std::string, Value> Wrap(const std::map<std::string, storage::Value>& values) {
  std::map<std::string, Value> out;
  for (const auto& [key, value] : values) out.emplace(key, ValueAccess::Wrap(value));
  return out;
}

// A host callback that throws must not unwind through the engine (or a TBB task): the run is
// cancelled and ends with this error instead.
class CallbackGuard {
 public:
  explicit CallbackGuard(const CancelToken& cancel) : cancel_(cancel) {}
  template <typename Fn>
  void Call(const char* what, Fn fn) {
    try {
      fn();
    } catch (const std::exception& e) {
      Record(std::string(what) + " threw: " + e.what());
    } catch (...) {
      Record(std::string(what) + " threw a non-standard exception");
    }
  }
  Status error() const {
    std::lock_guard<std::mutex> lock(mu_);
    return error_;
  }

 private:
  void Record(std::string message) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (error_.ok()) error_ = Status(ErrorCode::kInvalidArgument, std::move(message));
    }
    cancel_.Cancel();
  }
  CancelToken cancel_;
  mutable std::mutex mu_;
  Status error_;
};

}  // namespace

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

Result<std::shared_ptr<Engine>> Engine::Create(const EngineOptions& options) {
  std::lock_guard<std::mutex> lock(g_engine_mu);
  if (options.log_sink) {
    auto sink = options.log_sink;
    engine::SetLogSink([sink](engine::LogLevel level, const std::string& message) {
      sink(FromEngineLevel(level), message);
    });
  } else {
    engine::UseDiscomfortLogger();
  }
  engine::SetVerboseLogging(options.verbose);
  if (auto existing = g_engine.lock()) {
    if (!options.comfyui_path.empty()) {
      auto wanted = bridge::FindComfyUI(options.comfyui_path);
      if (!wanted.ok()) return wanted.TakeStatus();
      if (*wanted != existing->Info().value("comfyui_path", "")) {
        return Status(ErrorCode::kInvalidArgument,
                      "this process already runs ComfyUI from " +
                          existing->Info().value("comfyui_path", "") +
                          "; one ComfyUI per process, cannot also use " + *wanted);
      }
    }
    for (const std::string& path : options.extra_nodes)
      DISCOMFORT_RETURN_IF_ERROR(existing->LoadNodes(path));
    return existing;
  }
  DISCOMFORT_RETURN_IF_ERROR(CheckProcessLibtorch());
  bridge::BridgeOptions bridge_options;
  bridge_options.comfyui_path = options.comfyui_path;
  bridge_options.work_dir = options.work_dir;
  bridge_options.force_cpu = options.cpu;
  bridge_options.verbose = options.verbose;
  bridge_options.extra_node_paths = options.extra_nodes;
  DISCOMFORT_ASSIGN_OR_RETURN(std::unique_ptr<bridge::ComfyBridge> started,
                              bridge::ComfyBridge::Start(bridge_options));
  std::shared_ptr<Engine> created(new Engine(std::make_unique<Impl>(std::move(started))));
  g_engine = created;
  return created;
}

nlohmann::json Engine::Info() const { return impl_->bridge->info(); }

Result<nlohmann::json> Engine::ObjectInfo() {
  DISCOMFORT_ASSIGN_OR_RETURN(std::shared_ptr<const nlohmann::json> info,
                              impl_->resolver.ObjectInfo());
  return *info;
}

Status Engine::LoadNodes(const std::string& path) {
  DISCOMFORT_RETURN_IF_ERROR(impl_->bridge->LoadNodes(path));
  impl_->resolver.Forget();
  return Status::Ok();
}

Result<nlohmann::json> Engine::ToApi(const Workflow& workflow) {
  const engine::WorkflowSpec spec{workflow.path, workflow.document, workflow.name};
  if (spec.document) return impl_->resolver.ToApi(*spec.document, spec.DisplayName());
  return impl_->resolver.LoadApi(spec.path);
}

void Engine::Interrupt() { impl_->bridge->Interrupt(); }

Result<WorkflowBuilder> Engine::NewWorkflow() {
  DISCOMFORT_ASSIGN_OR_RETURN(std::shared_ptr<const graph::NodeDefinitions> defs,
                              impl_->resolver.Definitions());
  return BuilderAccess::Make(std::move(defs));
}

Result<RunResult> Engine::Run(Context& context, const RunOptions& options) {
  engine::RunRequest request;
  request.workflows = Specs(options.workflows);
  request.plan = options.plan;
  request.plan_path = options.plan_path;
  request.plan_base_dir = options.plan_base_dir;
  request.iterations = options.iterations;
  request.until = options.until;
  CallbackGuard guard(options.cancel);
  if (options.until_callback) {
    request.until_condition = engine::Condition::FromCallback(
        [&](const storage::Context&) -> Result<bool> {
          bool stop = false;
          guard.Call("until_callback", [&] { stop = options.until_callback(context); });
          if (!guard.error().ok()) return guard.error();
          return stop;
        },
        "C++ callback");
  }
  request.set_values = options.set_values;
  request.seed_inputs = options.resume_from.empty();
  request.resume_from = options.resume_from;
  request.iteration_timeout = options.iteration_timeout;
  request.interrupt_grace = options.interrupt_grace;
  request.save_every = options.save_every;
  request.max_vram_gb = options.max_vram_gb;
  request.output_dir = options.output_dir;
  request.checkpoint_every = options.checkpoint_every;
  request.checkpoint_dir = options.checkpoint_dir;
  request.trace_path = options.trace_path;
  request.exact_executor = options.exact_executor;

  storage::Context& store = ContextAccess::Of(context);
  DISCOMFORT_ASSIGN_OR_RETURN(engine::PreparedRun prepared,
                              engine::PrepareRun(request, impl_->resolver, store));
  engine::LoopOptions& loop = prepared.options;
  loop.cancel = options.cancel.flag();
  loop.max_reports = 0;  // delivered through on_iteration; a long run must not accumulate them
  if (options.on_iteration) {
    loop.on_iteration = [&](const engine::IterationReport& r) {
      IterationInfo info{r.iteration, r.seconds, r.files, r.stages_run, r.stages_failed};
      guard.Call("on_iteration", [&] { options.on_iteration(info); });
    };
  }
  if (options.on_event) {
    loop.on_event = [&](const nlohmann::json& event) {
      guard.Call("on_event", [&] { options.on_event(event); });
    };
  }
  auto result = engine::LoopRunner(*impl_->bridge, store).RunStages(prepared.stages, loop);
  if (prepared.trace) {
    if (Status st = prepared.trace->Close(); !st.ok() && result.ok()) return st;
  }
  if (!guard.error().ok()) return guard.error();
  if (!result.ok()) return result.TakeStatus();
  RunResult out;
  out.iterations_completed = result->iterations_completed;
  out.stopped_by_until = result->stopped_by_until;
  out.outputs = Wrap(result->outputs);
  out.files = result->files;
  return out;
}

Result<SweepResult> Engine::Sweep(Context& parent, const SweepOptions& options) {
  engine::SweepRequest request;
  request.workflows = Specs(options.workflows);
  for (const auto& [key, values] : options.grid) request.grid.push_back({key, values});
  request.images = options.images;
  request.images_dir = options.images_dir;
  if (!options.shard.empty()) {
    DISCOMFORT_ASSIGN_OR_RETURN(engine::Shard shard, engine::ParseShard(options.shard));
    request.shard = shard;
  }
  request.set_values = options.set_values;
  request.trace_path = options.trace_path;
  engine::SweepOptions& sweep = request.options;
  sweep.iterations_per_point = options.iterations;
  sweep.image_port = options.image_port;
  sweep.output_dir = options.output_dir;
  sweep.pipeline = options.pipeline;
  sweep.exact_executor = options.exact_executor;
  sweep.max_in_flight = options.max_in_flight;
  if (options.iteration_timeout) sweep.iteration_timeout = *options.iteration_timeout;
  if (options.interrupt_grace) sweep.interrupt_grace = *options.interrupt_grace;

  storage::Context& store = ContextAccess::Of(parent);
  DISCOMFORT_ASSIGN_OR_RETURN(engine::PreparedSweep prepared,
                              engine::PrepareSweep(request, impl_->resolver, store));
  CallbackGuard guard(options.cancel);
  SweepResult out;
  prepared.options.cancel = options.cancel.flag();
  prepared.options.on_point = [&](const engine::SweepPointResult& r) {
    PointResult point;
    point.index = r.point.index;
    point.params = nlohmann::json(r.point.params);
    point.image = r.point.image_path;
    point.status = r.status;
    point.outputs = Wrap(r.outputs);
    point.files = r.files;
    point.seconds = r.seconds;
    if (options.on_point) guard.Call("on_point", [&] { options.on_point(point); });
    out.results.push_back(std::move(point));
  };
  auto summary = engine::SweepRunner(*impl_->bridge, store)
                     .Run(prepared.workflows, prepared.points, prepared.options);
  if (prepared.trace)
    prepared.trace->Close().IgnoreError();  // the sweep's result stands without its trace
  if (!guard.error().ok()) return guard.error();
  if (!summary.ok()) return summary.TakeStatus();
  out.points = summary->points;
  out.failed = summary->failed;
  out.seconds = summary->seconds;
  return out;
}

}  // namespace discomfort
