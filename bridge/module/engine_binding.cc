#include "bridge/module/engine_binding.h"

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <pybind11/functional.h>
#include <pybind11/stl.h>

#include "bridge/comfy_bridge.h"
#include "bridge/module/context_binding.h"
#include "bridge/module/status_translation.h"
#include "bridge/module/without_gil.h"
#include "bridge/python_errors.h"
#include "bridge/value_convert.h"
#include "engine/run_request.h"
#include "engine/workflow_resolver.h"

namespace py = pybind11;
using nlohmann::json;

namespace discomfort::pymodule {
namespace {

class CancelToken {
 public:
  void Cancel() { flag_.store(true); }
  bool cancelled() const { return flag_.load(); }
  const std::atomic<bool>* flag() const { return &flag_; }

 private:
  std::atomic<bool> flag_{false};
};

using Workflows = std::vector<std::pair<std::string, py::object>>;

std::vector<engine::WorkflowSpec> WorkflowSpecs(const Workflows& workflows) {
  std::vector<engine::WorkflowSpec> specs;
  for (const auto& [name, doc] : workflows) {
    specs.push_back(engine::WorkflowSpec::Document(name, ToJsonOrRaise(doc, "a workflow")));
  }
  return specs;
}

// A callback that raises stops the run; its exception is re-raised to the caller afterwards.
class Callbacks {
 public:
  explicit Callbacks(std::shared_ptr<CancelToken> cancel) : cancel_(std::move(cancel)) {}

  template <typename MakeArg>
  void Call(const py::object& fn, MakeArg make_arg) {
    if (fn.is_none() || error_) return;
    py::gil_scoped_acquire gil;
    try {
      fn(make_arg());
    } catch (py::error_already_set& e) {
      error_.emplace(std::move(e));
      cancel_->Cancel();
    }
  }
  void RethrowIfFailed() {
    if (error_) throw std::move(*error_);
  }

 private:
  std::shared_ptr<CancelToken> cancel_;
  std::optional<py::error_already_set> error_;
};

py::dict IterationToDict(const engine::IterationReport& r) {
  py::dict d;
  d["iteration"] = r.iteration;
  d["seconds"] = r.seconds;
  d["files"] = r.files;
  d["stages_run"] = r.stages_run;
  d["stages_failed"] = r.stages_failed;
  py::list times;
  for (const auto& t : r.node_times) times.append(py::make_tuple(t.node_id, t.seconds));
  d["node_times"] = times;
  return d;
}

// {index, params, image, ok, outputs, files, seconds, error}: error is the exception a run would
// raise for that point (None when it succeeded).
py::dict PointToDict(const engine::SweepPointResult& r) {
  py::dict d;
  d["index"] = r.point.index;
  d["params"] = bridge::JsonToPython(json(r.point.params));
  d["image"] =
      r.point.image_path.empty() ? py::object(py::none()) : py::object(py::str(r.point.image_path));
  d["ok"] = r.status.ok();
  py::dict outputs;
  for (const auto& [uid, value] : r.outputs) outputs[py::str(uid)] = ValueOut(value);
  d["outputs"] = outputs;
  d["files"] = r.files;
  d["seconds"] = r.seconds;
  d["error"] = r.status.ok() ? py::object(py::none()) : ExceptionFor(r.status);
  return d;
}

std::vector<engine::SweepPoint> PointsFromPython(const py::object& points) {
  std::vector<engine::SweepPoint> out;
  for (py::handle item : points) {
    py::dict d = py::reinterpret_borrow<py::dict>(item);
    engine::SweepPoint p;
    p.index = d["index"].cast<int>();
    if (d.contains("params") && !d["params"].is_none()) {
      json params = ToJsonOrRaise(d["params"], "a point's params");
      if (!params.is_object()) throw py::type_error("a point's params must be a dict");
      for (auto& [key, value] : params.items()) p.params[key] = value;
    }
    if (d.contains("image") && !d["image"].is_none()) p.image_path = d["image"].cast<std::string>();
    out.push_back(std::move(p));
  }
  if (out.empty()) throw py::value_error("points is an empty list");
  return out;
}

// Fills the request's `until` from None, an expression string or a Python callable receiving the
// context and returning a bool.
void SetUntil(engine::RunRequest& request, const py::object& until,
              const std::shared_ptr<ContextHandle>& context) {
  if (until.is_none()) return;
  if (py::isinstance<py::str>(until)) {
    request.until = until.cast<std::string>();
    return;
  }
  if (!PyCallable_Check(until.ptr()))
    throw py::type_error("until must be None, a condition string or a callable");
  py::object context_object = py::cast(context);
  request.until_condition = engine::Condition::FromCallback(
      [fn = until, context_object](const storage::Context&) -> Result<bool> {
        py::gil_scoped_acquire gil;
        try {
          return py::bool_(fn(context_object)).cast<bool>();
        } catch (py::error_already_set& e) {
          return bridge::StatusFromPythonError(e, ErrorCode::kInvalidArgument);
        }
      },
      "python callable");
}

class EngineHandle {
 public:
  explicit EngineHandle(std::unique_ptr<bridge::ComfyBridge> bridge)
      : bridge_(std::move(bridge)), resolver_(bridge_.get()) {}

  static std::shared_ptr<EngineHandle> Start(std::optional<std::string> comfyui_path,
                                             std::optional<std::string> work_dir,
                                             std::optional<bool> cpu, bool verbose,
                                             std::vector<std::string> extra_nodes) {
    bridge::BridgeOptions options;
    options.comfyui_path = comfyui_path.value_or("");
    options.work_dir = work_dir.value_or("");
    options.force_cpu = cpu;
    options.verbose = verbose;
    options.extra_node_paths = std::move(extra_nodes);
    auto started = WithoutGil([&] { return bridge::ComfyBridge::Start(options); });
    return std::make_shared<EngineHandle>(Unwrap(std::move(started)));
  }

  py::object Info() { return bridge::JsonToPython(bridge_->info()); }

  py::object ObjectInfo() {
    auto info = WithoutGil([&] { return resolver_.ObjectInfo(); });
    return bridge::JsonToPython(*Unwrap(std::move(info)));
  }

  std::shared_ptr<const graph::NodeDefinitions> Definitions() {
    return Unwrap(WithoutGil([&] { return resolver_.Definitions(); }));
  }

  // More custom nodes: loaded by the bridge, then definitions are fetched again on next use.
  void LoadNodes(const std::string& path) {
    Check(WithoutGil([&] { return bridge_->LoadNodes(path); }));
    WithoutGil([&] { resolver_.Forget(); });
  }

  void Validate(py::handle prompt) {
    json p = ToJsonOrRaise(prompt, "prompt");
    Check(WithoutGil([&] { return bridge_->Validate(p); }));
  }

  py::object ToApi(py::handle doc, const std::string& name) {
    json document = ToJsonOrRaise(doc, "a workflow");
    return bridge::JsonToPython(
        Unwrap(WithoutGil([&] { return resolver_.ToApi(document, name); })));
  }

  void Interrupt() {
    WithoutGil([&] { bridge_->Interrupt(); });
  }

  void ResetSlot(const std::string& slot) {
    WithoutGil([&] { bridge_->ResetSlot(slot); });
  }

  py::dict Run(const std::shared_ptr<ContextHandle>& context, const Workflows& workflows,
               int iterations, const py::object& until, std::optional<std::string> output_dir,
               py::object on_iteration, py::object on_event, std::shared_ptr<CancelToken> cancel,
               int first_iteration, std::optional<double> iteration_timeout,
               std::optional<double> interrupt_grace, bool keep_reports, int save_every,
               std::optional<std::string> trace, bool exact_executor) {
    engine::RunRequest request;
    request.workflows = WorkflowSpecs(workflows);
    request.trace_path = trace.value_or("");
    request.exact_executor = exact_executor;
    request.iterations = iterations;
    SetUntil(request, until, context);
    request.output_dir = output_dir.value_or("");
    request.iteration_timeout = iteration_timeout;
    request.interrupt_grace = interrupt_grace;
    request.save_every = save_every;
    return RunRequestOnContext(context, std::move(request), first_iteration, keep_reports,
                               on_iteration, on_event, std::move(cancel));
  }

  // A loop plan (engine/plan.h's JSON structure) as a dict; workflow paths and "@file" inputs
  // relative to base_dir.
  // `plan` is a dict, or a path to a plan file (read by the engine, as the CLI's --plan).
  py::dict RunPlan(const std::shared_ptr<ContextHandle>& context, py::handle plan,
                   const std::string& base_dir, std::optional<int> iterations,
                   const py::object& until, std::optional<std::string> output_dir,
                   py::object on_iteration, py::object on_event,
                   std::shared_ptr<CancelToken> cancel, std::optional<double> iteration_timeout,
                   std::optional<double> interrupt_grace, int save_every,
                   std::optional<std::string> trace, bool exact_executor) {
    engine::RunRequest request;
    request.trace_path = trace.value_or("");
    request.exact_executor = exact_executor;
    if (py::isinstance<py::str>(plan)) {
      request.plan_path = plan.cast<std::string>();
    } else {
      request.plan = ToJsonOrRaise(plan, "a loop plan");
    }
    request.plan_base_dir = base_dir;
    request.iterations = iterations;
    SetUntil(request, until, context);
    request.output_dir = output_dir.value_or("");
    request.iteration_timeout = iteration_timeout;
    request.interrupt_grace = interrupt_grace;
    request.save_every = save_every;
    return RunRequestOnContext(context, std::move(request), 0, true, on_iteration, on_event,
                               std::move(cancel));
  }

  // Independent runs, one per point (engine/sweep.h), each in a child context seeded from
  // `context`. Per-point errors are reported, not raised; cancellation raises.
  py::dict Sweep(const std::shared_ptr<ContextHandle>& context, const Workflows& workflows,
                 const std::vector<std::pair<std::string, py::object>>& axes,
                 const std::vector<std::string>& images, int iterations,
                 const std::string& image_port, std::optional<std::string> output_dir,
                 bool pipeline, int max_in_flight, py::object on_point,
                 std::shared_ptr<CancelToken> cancel, std::optional<double> iteration_timeout,
                 std::optional<double> interrupt_grace, std::optional<std::string> shard,
                 const py::object& points, std::optional<std::string> trace, bool exact_executor) {
    engine::SweepRequest request;
    request.trace_path = trace.value_or("");
    request.options.exact_executor = exact_executor;
    request.workflows = WorkflowSpecs(workflows);
    if (!points.is_none()) request.points = PointsFromPython(points);
    for (const auto& [key, values] : axes) {
      json list = ToJsonOrRaise(values, "grid values");
      if (!list.is_array()) throw py::type_error("grid axis '" + key + "' needs a list of values");
      request.grid.push_back({key, list.get<std::vector<json>>()});
    }
    request.images = images;
    if (shard) request.shard = Unwrap(engine::ParseShard(*shard));
    engine::SweepOptions& options = request.options;
    options.iterations_per_point = iterations;
    options.image_port = image_port;
    options.output_dir = output_dir.value_or("");
    options.pipeline = pipeline;
    options.max_in_flight = max_in_flight;
    if (iteration_timeout) options.iteration_timeout = *iteration_timeout;
    if (interrupt_grace) options.interrupt_grace = *interrupt_grace;
    if (!cancel) cancel = std::make_shared<CancelToken>();
    options.cancel = cancel->flag();

    std::shared_ptr<storage::Context> parent = context->get();
    std::vector<engine::SweepPointResult> results;
    Callbacks callbacks(cancel);
    // on_point runs in point order on a pipeline thread.
    options.on_point = [&](const engine::SweepPointResult& r) {
      results.push_back(r);
      callbacks.Call(on_point, [&r] { return PointToDict(r); });
    };
    Result<engine::SweepResult> summary = WithoutGil([&]() -> Result<engine::SweepResult> {
      DISCOMFORT_ASSIGN_OR_RETURN(engine::PreparedSweep prepared,
                                  engine::PrepareSweep(request, resolver_, *parent));
      auto done = engine::SweepRunner(*bridge_, *parent)
                      .Run(prepared.workflows, prepared.points, prepared.options);
      if (prepared.trace)
        prepared.trace->Close().IgnoreError();  // the sweep's result stands without its trace
      return done;
    });
    callbacks.RethrowIfFailed();
    engine::SweepResult done = Unwrap(std::move(summary));
    py::list points_out;
    for (const auto& r : results) points_out.append(PointToDict(r));
    py::dict out;
    out["points"] = points_out;
    out["failed"] = done.failed;
    out["seconds"] = done.seconds;
    return out;
  }

 private:
  py::dict RunRequestOnContext(const std::shared_ptr<ContextHandle>& handle,
                               engine::RunRequest request, int first_iteration, bool keep_reports,
                               const py::object& on_iteration, const py::object& on_event,
                               std::shared_ptr<CancelToken> cancel) {
    if (!cancel) cancel = std::make_shared<CancelToken>();
    std::shared_ptr<storage::Context> context = handle->get();
    Callbacks callbacks(cancel);
    Result<engine::LoopResult> result = WithoutGil([&]() -> Result<engine::LoopResult> {
      DISCOMFORT_ASSIGN_OR_RETURN(engine::PreparedRun prepared,
                                  engine::PrepareRun(request, resolver_, *context));
      engine::LoopOptions& options = prepared.options;
      options.first_iteration = first_iteration;
      if (!keep_reports)
        options.max_reports = 0;  // run() returns outputs only: nothing kept per iteration
      options.cancel = cancel->flag();
      if (!on_iteration.is_none()) {
        options.on_iteration = [&](const engine::IterationReport& r) {
          callbacks.Call(on_iteration, [&r] { return IterationToDict(r); });
        };
      }
      if (!on_event.is_none()) {
        options.on_event = [&](const json& event) {
          callbacks.Call(on_event, [&event] { return bridge::JsonToPython(event); });
        };
      }
      auto done = engine::LoopRunner(*bridge_, *context).RunStages(prepared.stages, options);
      if (prepared.trace) {
        if (Status st = prepared.trace->Close(); !st.ok() && done.ok()) return st;
      }
      return done;
    });
    callbacks.RethrowIfFailed();
    engine::LoopResult loop = Unwrap(std::move(result));
    py::dict outputs;
    for (const auto& [uid, value] : loop.outputs) outputs[py::str(uid)] = ValueOut(value);
    py::dict out;
    out["outputs"] = outputs;
    out["files"] = loop.files;
    out["iterations_completed"] = loop.iterations_completed;
    out["stopped_by_until"] = loop.stopped_by_until;
    py::list reports;
    for (const auto& r : loop.reports) {
      py::dict d;
      d["iteration"] = r.iteration;
      d["seconds"] = r.seconds;
      d["files"] = r.files;
      reports.append(d);
    }
    out["reports"] = reports;
    return out;
  }

  std::unique_ptr<bridge::ComfyBridge> bridge_;
  engine::WorkflowResolver resolver_;
};

}  // namespace

void BindEngine(py::module_& m) {
  py::class_<CancelToken, std::shared_ptr<CancelToken>>(m, "CancelToken")
      .def(py::init<>())
      .def("cancel", &CancelToken::Cancel)
      .def_property_readonly("cancelled", &CancelToken::cancelled);

  py::class_<EngineHandle, std::shared_ptr<EngineHandle>>(m, "Engine")
      .def_static("start", &EngineHandle::Start, py::kw_only(),
                  py::arg("comfyui_path") = py::none(), py::arg("work_dir") = py::none(),
                  py::arg("cpu") = py::none(), py::arg("verbose") = false,
                  py::arg("extra_nodes") = std::vector<std::string>{})
      .def_property_readonly("info", &EngineHandle::Info)
      .def("object_info", &EngineHandle::ObjectInfo)
      .def("definitions", &EngineHandle::Definitions)
      .def("load_nodes", &EngineHandle::LoadNodes, py::arg("path"))
      .def("validate", &EngineHandle::Validate, py::arg("prompt"))
      .def("to_api", &EngineHandle::ToApi, py::arg("workflow"), py::arg("name") = "workflow")
      .def("interrupt", &EngineHandle::Interrupt)
      .def("reset_slot", &EngineHandle::ResetSlot, py::arg("slot"))
      .def("run", &EngineHandle::Run, py::arg("context"), py::arg("workflows"), py::kw_only(),
           py::arg("iterations") = 1, py::arg("until") = py::none(),
           py::arg("output_dir") = py::none(), py::arg("on_iteration") = py::none(),
           py::arg("on_event") = py::none(), py::arg("cancel") = py::none(),
           py::arg("first_iteration") = 0, py::arg("iteration_timeout") = py::none(),
           py::arg("interrupt_grace") = py::none(), py::arg("keep_reports") = true,
           py::arg("save_every") = 1, py::arg("trace") = py::none(),
           py::arg("exact_executor") = false)
      .def("run_plan", &EngineHandle::RunPlan, py::arg("context"), py::arg("plan"), py::kw_only(),
           py::arg("base_dir") = "", py::arg("iterations") = py::none(),
           py::arg("until") = py::none(), py::arg("output_dir") = py::none(),
           py::arg("on_iteration") = py::none(), py::arg("on_event") = py::none(),
           py::arg("cancel") = py::none(), py::arg("iteration_timeout") = py::none(),
           py::arg("interrupt_grace") = py::none(), py::arg("save_every") = 1,
           py::arg("trace") = py::none(), py::arg("exact_executor") = false)
      .def("sweep", &EngineHandle::Sweep, py::arg("context"), py::arg("workflows"), py::kw_only(),
           py::arg("grid") = std::vector<std::pair<std::string, py::object>>{},
           py::arg("images") = std::vector<std::string>{}, py::arg("iterations") = 1,
           py::arg("image_port") = "image", py::arg("output_dir") = py::none(),
           py::arg("pipeline") = true, py::arg("max_in_flight") = 4,
           py::arg("on_point") = py::none(), py::arg("cancel") = py::none(),
           py::arg("iteration_timeout") = py::none(), py::arg("interrupt_grace") = py::none(),
           py::arg("shard") = py::none(), py::arg("points") = py::none(),
           py::arg("trace") = py::none(), py::arg("exact_executor") = false);
  // The points of a sweep ([{index, params, image}]), as MakeSweepPoints numbers them: a
  // distributed sweep makes them once and hands each worker its own.
  m.def(
      "make_sweep_points",
      [](const std::vector<std::pair<std::string, py::object>>& axes,
         const std::vector<std::string>& images, std::optional<std::string> shard) {
        std::vector<engine::GridAxis> grid;
        for (const auto& [key, values] : axes) {
          json list = ToJsonOrRaise(values, "grid values");
          if (!list.is_array() || list.empty())
            throw py::value_error("grid axis '" + key + "' needs a non-empty list");
          grid.push_back({key, list.get<std::vector<json>>()});
        }
        std::optional<engine::Shard> part;
        if (shard) part = Unwrap(engine::ParseShard(*shard));
        py::list out;
        for (const engine::SweepPoint& p : engine::MakeSweepPoints(grid, images, part)) {
          py::dict d;
          d["index"] = p.index;
          d["params"] = bridge::JsonToPython(json(p.params));
          d["image"] =
              p.image_path.empty() ? py::object(py::none()) : py::object(py::str(p.image_path));
          out.append(d);
        }
        return out;
      },
      py::arg("grid") = std::vector<std::pair<std::string, py::object>>{},
      py::arg("images") = std::vector<std::string>{}, py::arg("shard") = py::none());
}

}  // namespace discomfort::pymodule
