// discomfort._core: the C++ engine as a Python extension module (Python is the host here; the
// bridge attaches to the running interpreter instead of embedding one).
//
// GIL discipline: every call that may block (starting ComfyUI, a loop, storage I/O) releases the
// GIL; the bridge takes it back only while Python code runs. Python objects are converted to and
// from engine values with the GIL held, before and after those sections.
//
// Errors: engine Status values become Python exceptions in exactly one place, Raise() below, which
// asks discomfort.errors.from_status for the exception object (the class map lives there).
#include <atomic>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bridge/comfy_bridge.h"
#include "bridge/python_errors.h"
#include "bridge/value_convert.h"
#include "engine/condition.h"
#include "engine/image_io.h"
#include "engine/loop.h"
#include "engine/plan.h"
#include "engine/sweep.h"
#include "graph/api_prompt.h"
#include "graph/node_definitions.h"
#include "graph/ui_to_api.h"
#include "graph/workflow.h"
#include "graph/workflow_ops.h"
#include "storage/context.h"

namespace py = pybind11;
using nlohmann::json;

namespace discomfort::pymodule {
namespace {

// ---- errors --------------------------------------------------------------------------------

const char* CodeId(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return "ok";
    case ErrorCode::kInvalidArgument: return "invalid_argument";
    case ErrorCode::kParse: return "parse";
    case ErrorCode::kNotFound: return "not_found";
    case ErrorCode::kAlreadyExists: return "already_exists";
    case ErrorCode::kTypeMismatch: return "type_mismatch";
    case ErrorCode::kCycle: return "cycle";
    case ErrorCode::kValidation: return "validation";
    case ErrorCode::kExecution: return "execution";
    case ErrorCode::kIO: return "io";
    case ErrorCode::kNoSpace: return "no_space";
    case ErrorCode::kCancelled: return "cancelled";
    case ErrorCode::kTimeout: return "timeout";
    case ErrorCode::kPython: return "python";
    case ErrorCode::kInternal: return "internal";
  }
  return "internal";
}

py::dict StatusToDict(const Status& st) {
  py::dict d = bridge::JsonToPython(st.ToJson());
  d["code"] = CodeId(st.code());
  d["text"] = st.ToString();
  d["message"] = st.message();
  return d;
}

// The one place where a Status becomes a Python exception. Needs the GIL.
py::object ExceptionFor(const Status& st) {
  return py::module_::import("discomfort.errors").attr("from_status")(StatusToDict(st));
}

[[noreturn]] void Raise(const Status& st) {
  py::object exc = ExceptionFor(st);
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
  throw py::error_already_set();
}

template <typename T>
T Unwrap(Result<T> result) {
  if (!result.ok()) Raise(result.status());
  return std::move(result).value();
}

void Check(const Status& st) {
  if (!st.ok()) Raise(st);
}

json ToJsonOrRaise(py::handle object, const char* what) {
  json out;
  if (!bridge::PythonToJson(object, &out)) {
    throw py::type_error(std::string(what) + " must be JSON-serializable (dicts, lists, str, int, float, bool, None)");
  }
  return out;
}

// ---- node definitions ----------------------------------------------------------------------

using DefsPtr = std::shared_ptr<const graph::NodeDefinitions>;

const graph::NodeDefinitions* DefsOrNull(const std::optional<DefsPtr>& defs) {
  return defs && *defs ? defs->get() : nullptr;
}

// ---- the context ---------------------------------------------------------------------------

std::atomic<uint64_t> g_context_serial{0};

class ContextHandle {
 public:
  explicit ContextHandle(storage::ContextOptions options)
      : context_(std::make_shared<storage::Context>(std::move(options))), serial_(++g_context_serial) {}
  // Distinguishes this context's value versions from another context's (see SaltedExecutor).
  uint64_t serial() const { return serial_; }

  // A reference that stays valid while the GIL is released, even if close() runs meanwhile.
  std::shared_ptr<storage::Context> get() const {
    if (!context_) throw py::value_error("this context was shut down");
    return context_;
  }
  void Close() {
    std::shared_ptr<storage::Context> dropped = std::move(context_);
    py::gil_scoped_release release;  // host objects take the GIL in their destructors
    dropped.reset();
  }
  bool closed() const { return context_ == nullptr; }

 private:
  std::shared_ptr<storage::Context> context_;
  uint64_t serial_ = 0;
};

py::object ValueOut(const storage::Value& value) {
  if (value.is_recipe()) return bridge::JsonToPython(value.json());
  return Unwrap(bridge::ValueToPython(value));
}

py::dict InfoToDict(const storage::ValueInfo& info) {
  py::dict d;
  d["kind"] = storage::ValueKindName(info.kind);
  d["bytes"] = info.bytes;
  d["device"] = info.device;
  d["on_disk"] = info.on_disk;
  d["version"] = info.version;
  d["pins"] = info.pins;
  if (!info.dtype.empty()) d["dtype"] = info.dtype;
  if (!info.shape.empty() || info.kind == storage::ValueKind::kTensor) d["shape"] = info.shape;
  if (!info.spill_path.empty()) d["spill_path"] = info.spill_path;
  return d;
}

py::dict UsageToDict(const storage::Usage& u) {
  py::dict d;
  d["ram_bytes"] = u.ram_bytes;
  d["ram_budget_bytes"] = u.ram_budget_bytes;
  d["device_bytes"] = u.device_bytes;
  d["device_budget_bytes"] = u.device_budget_bytes;
  d["disk_bytes"] = u.disk_bytes;
  d["host_object_bytes"] = u.host_object_bytes;
  d["count"] = u.count;
  d["spilled_count"] = u.spilled_count;
  d["pinned_count"] = u.pinned_count;
  d["spills"] = u.spills;
  d["reloads"] = u.reloads;
  return d;
}

py::dict SnapshotToDict(const storage::SnapshotReport& r) {
  py::dict d;
  d["keys"] = r.keys;
  d["not_persisted"] = r.not_persisted;
  d["bytes"] = r.bytes;
  return d;
}

// ---- the engine ----------------------------------------------------------------------------

// ComfyUI's globals allow one execution at a time per process (DESIGN.md decision 6).
std::mutex g_execution_mu;

// Context versions count per context, so two contexts can give the same key the same version; the
// loaders' cache key (IS_CHANGED) would then let a slot's ComfyUI cache return the other context's
// value. Salting the versions with the context's serial keeps cache hits within one context only.
class SaltedExecutor final : public engine::Executor {
 public:
  SaltedExecutor(engine::Executor& inner, uint64_t serial) : inner_(inner), serial_(serial) {}
  Result<engine::ExecutionOutcome> Execute(const engine::ExecutionRequest& request) override {
    engine::ExecutionRequest salted = request;
    for (auto& [uid, version] : salted.versions) {
      // The engine's own versions for values pending within an iteration are already unique.
      if (version < (uint64_t{1} << 61)) version = (serial_ << 32) | (version & 0xffffffffu);
    }
    return inner_.Execute(salted);
  }
  void Interrupt() override { inner_.Interrupt(); }

 private:
  engine::Executor& inner_;
  uint64_t serial_;
};

class CancelToken {
 public:
  void Cancel() { flag_.store(true); }
  bool cancelled() const { return flag_.load(); }
  const std::atomic<bool>* flag() const { return &flag_; }

 private:
  std::atomic<bool> flag_{false};
};

class EngineHandle {
 public:
  static std::shared_ptr<EngineHandle> Start(std::optional<std::string> comfyui_path, std::optional<std::string> work_dir,
                                         std::optional<bool> cpu, bool verbose, std::vector<std::string> extra_nodes) {
    bridge::BridgeOptions options;
    options.comfyui_path = comfyui_path.value_or("");
    options.work_dir = work_dir.value_or("");
    options.force_cpu = cpu;
    options.verbose = verbose;
    options.extra_node_paths = std::move(extra_nodes);
    Result<std::unique_ptr<bridge::ComfyBridge>> started = Status(ErrorCode::kInternal, "not started");
    {
      py::gil_scoped_release release;
      started = bridge::ComfyBridge::Start(options);
    }
    auto engine = std::make_shared<EngineHandle>();
    engine->bridge_ = Unwrap(std::move(started));
    return engine;
  }

  py::object Info() { return bridge::JsonToPython(bridge_->info()); }

  // The node definitions are fetched once (under defs_mu_, taken without the GIL: the bridge needs
  // the GIL to fetch them, and another thread may hold it while waiting for the lock).
  const json& ObjectInfo() {
    Status st;
    const json* out = nullptr;
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(defs_mu_);
      if (!object_info_) {
        auto info = bridge_->ObjectInfo();
        if (info.ok()) {
          object_info_ = std::move(info).value();
        } else {
          st = info.status();
        }
      }
      if (object_info_) out = &*object_info_;
    }
    Check(st);
    return *out;
  }

  DefsPtr Definitions() {
    (void)ObjectInfo();
    Status st;
    DefsPtr out;
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(defs_mu_);
      if (!defs_ && object_info_) {
        auto defs = graph::NodeDefinitions::FromJson(*object_info_);
        if (defs.ok()) {
          defs_ = std::make_shared<graph::NodeDefinitions>(std::move(defs).value());
        } else {
          st = defs.status();
        }
      }
      out = defs_;
    }
    Check(st);
    if (!out) throw py::value_error("node definitions were reset while being read");
    return out;
  }

  // Call after loading more nodes: definitions are fetched again on next use.
  void ForgetDefinitions() {
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(defs_mu_);
    object_info_.reset();
    defs_.reset();
  }

  void Validate(py::handle prompt) {
    json p = ToJsonOrRaise(prompt, "prompt");
    Status st;
    {
      py::gil_scoped_release release;
      st = bridge_->Validate(p);
    }
    Check(st);
  }

  // Either format in, an API prompt out.
  json ToApi(const json& doc, const std::string& name) {
    const graph::WorkflowFormat format = graph::DetectFormat(doc);
    const graph::NodeDefinitions* defs = nullptr;
    DefsPtr holder;
    if (format == graph::WorkflowFormat::kUiV04 || format == graph::WorkflowFormat::kUiV1) {
      holder = Definitions();
      defs = holder.get();
    }
    graph::ConvertOptions options;
    options.source_name = name;
    auto api = graph::ToApiPrompt(doc, defs, options);
    if (!api.ok()) {
      Status st = api.TakeStatus();
      if (st.where().workflow.empty()) st.where().workflow = name;
      Raise(st);
    }
    return std::move(api).value();
  }

  void Interrupt() {
    py::gil_scoped_release release;
    bridge_->Interrupt();
  }

  void ResetSlot(const std::string& slot) {
    py::gil_scoped_release release;
    bridge_->ResetSlot(slot);
  }

  // Per-iteration time limit (seconds; 0: none) and how long a node may ignore the interrupt.
  static void SetTimeouts(engine::LoopOptions& options, std::optional<double> iteration_timeout,
                          std::optional<double> interrupt_grace) {
    constexpr double kWeek = 604800;
    if (iteration_timeout) {
      if (!(*iteration_timeout >= 0 && *iteration_timeout <= kWeek))
        throw py::value_error("iteration_timeout must be between 0 (no limit) and 604800 seconds");
      options.iteration_timeout = *iteration_timeout;
    }
    if (interrupt_grace) {
      if (!(*interrupt_grace >= 0 && *interrupt_grace <= kWeek))
        throw py::value_error("interrupt_grace must be between 0 and 604800 seconds");
      options.interrupt_grace = *interrupt_grace;
    }
  }

  // Runs `body(executor, context)` with the GIL released and the process's one execution slot
  // held: ComfyUI's executor state is global, so loops and sweeps from any handle take turns.
  template <typename Body>
  auto WithExecutor(ContextHandle& py_context, Body body) {
    std::shared_ptr<storage::Context> context = py_context.get();
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(g_execution_mu);
    SaltedExecutor executor(*bridge_, py_context.serial());
    return body(executor, *context);
  }

  static int CheckedSaveEvery(int save_every) {
    if (save_every < 0) throw py::value_error("save_every must be >= 0 (0: the last iteration only)");
    return save_every;
  }

  py::dict Run(ContextHandle& py_context, const std::vector<std::pair<std::string, py::object>>& workflows, int iterations,
               py::object until, std::optional<std::string> output_dir, py::object on_iteration,
               py::object on_event, std::shared_ptr<CancelToken> cancel, int first_iteration,
               std::optional<double> iteration_timeout, std::optional<double> interrupt_grace,
               bool keep_reports, int save_every) {
    if (workflows.empty()) throw py::value_error("workflows must be a non-empty list");
    if (iterations < 0) throw py::value_error("iterations must be >= 0");
    const json& object_info = ObjectInfo();
    engine::Stage stage;
    stage.name = "main";
    for (size_t i = 0; i < workflows.size(); ++i) {
      const auto& [name, doc] = workflows[i];
      json api = ToApi(ToJsonOrRaise(doc, "a workflow"), name);
      stage.workflows.push_back(Unwrap(engine::PrepareWorkflow({name, std::move(api)}, i, &object_info)));
    }
    engine::LoopOptions options;
    options.iterations = iterations;
    options.first_iteration = first_iteration;
    options.until = ConditionFrom(until, py_context);
    if (output_dir) options.output_dir = *output_dir;
    if (!keep_reports) options.max_reports = 0;  // Discomfort.run() returns outputs only
    options.save_every = CheckedSaveEvery(save_every);
    SetTimeouts(options, iteration_timeout, interrupt_grace);
    return RunStages(py_context, {std::move(stage)}, options, on_iteration, on_event, std::move(cancel));
  }

  // A loop plan (engine/plan.h's JSON structure) as a dict; workflow paths relative to base_dir.
  // Its `inputs` are put into the context first ("@file.png" strings load images).
  py::dict RunPlan(ContextHandle& py_context, py::handle plan_doc, const std::string& base_dir,
                   std::optional<int> iterations, py::object until, std::optional<std::string> output_dir,
                   py::object on_iteration, py::object on_event, std::shared_ptr<CancelToken> cancel,
                   std::optional<double> iteration_timeout, std::optional<double> interrupt_grace,
                   int save_every) {
    engine::LoopPlan plan = Unwrap(engine::ParseLoopPlan(ToJsonOrRaise(plan_doc, "a loop plan"), base_dir));
    auto load = [this](const std::string& path) -> Result<json> {
      DISCOMFORT_ASSIGN_OR_RETURN(json doc, graph::LoadJsonFile(path));
      try {
        return ToApi(doc, std::filesystem::path(path).filename().string());
      } catch (const std::exception& e) {
        ErrorLocation where;
        where.workflow = path;
        return Status(ErrorCode::kInvalidArgument, e.what(), where);
      }
    };
    std::vector<engine::Stage> stages = Unwrap(engine::PrepareStages(plan, load));
    std::shared_ptr<storage::Context> context = py_context.get();
    for (const auto& [key, value] : plan.inputs.items()) {
      storage::Value v = storage::Value::Json(value);
      if (value.is_string() && value.get<std::string>().rfind('@', 0) == 0) {
        std::filesystem::path file = value.get<std::string>().substr(1);
        if (file.is_relative()) file = std::filesystem::path(base_dir) / file;
        v = storage::Value::Tensor(Unwrap(engine::ReadPngAsImage(file.string())));
      }
      Check(context->Put(key, v));
    }
    engine::LoopOptions options;
    options.iterations = iterations.value_or(plan.max_iterations);
    if (!plan.until.empty()) options.until = Unwrap(engine::Condition::Parse(plan.until));
    if (auto c = ConditionFrom(until, py_context)) options.until = std::move(c);
    if (output_dir) options.output_dir = *output_dir;
    options.iteration_timeout = plan.iteration_timeout;
    options.interrupt_grace = plan.interrupt_grace;
    options.save_every = CheckedSaveEvery(save_every);
    SetTimeouts(options, iteration_timeout, interrupt_grace);
    return RunStages(py_context, std::move(stages), options, on_iteration, on_event, std::move(cancel));
  }

  // Independent runs, one per point (engine/sweep.h), each in a child context seeded from
  // py_context. `axes` are (key, values) pairs expanded as a product (first axis slowest); `images`
  // are PNG paths, one point each. Per-point errors are reported, not raised; cancellation raises.
  py::dict Sweep(ContextHandle& py_context,
                 const std::vector<std::pair<std::string, py::object>>& workflows,
                 const std::vector<std::pair<std::string, py::object>>& axes,
                 const std::vector<std::string>& images, int iterations,
                 const std::string& image_port, std::optional<std::string> output_dir,
                 bool pipeline, int max_in_flight, py::object on_point,
                 std::shared_ptr<CancelToken> cancel, std::optional<double> iteration_timeout,
                 std::optional<double> interrupt_grace) {
    if (workflows.empty()) throw py::value_error("workflows must be a non-empty list");
    if (axes.empty() == images.empty())
      throw py::value_error("give a grid or images (one of them, not both)");
    if (iterations < 1) throw py::value_error("iterations must be >= 1");
    if (max_in_flight < 1) throw py::value_error("max_in_flight must be >= 1");
    const json& object_info = ObjectInfo();
    std::vector<engine::PreparedWorkflow> prepared;
    for (size_t i = 0; i < workflows.size(); ++i) {
      const auto& [name, doc] = workflows[i];
      json api = ToApi(ToJsonOrRaise(doc, "a workflow"), name);
      prepared.push_back(Unwrap(engine::PrepareWorkflow({name, std::move(api)}, i, &object_info)));
    }
    std::vector<engine::SweepPoint> points;
    if (!axes.empty()) {
      std::vector<engine::GridAxis> grid;
      for (const auto& [key, values] : axes) {
        json list = ToJsonOrRaise(values, "grid values");
        if (!list.is_array() || list.empty())
          throw py::value_error("grid axis '" + key + "' needs a non-empty list of values");
        grid.push_back({key, list.get<std::vector<json>>()});
      }
      int index = 0;
      for (auto& params : engine::ExpandGrid(grid))
        points.push_back({index++, std::move(params), ""});
    } else {
      int index = 0;
      for (const auto& path : images) points.push_back({index++, {}, path});
    }
    if (!cancel) cancel = std::make_shared<CancelToken>();

    engine::SweepOptions options;
    options.iterations_per_point = iterations;
    options.image_port = image_port;
    if (output_dir) options.output_dir = *output_dir;
    options.pipeline = pipeline;
    options.max_in_flight = max_in_flight;
    options.cancel = cancel->flag();
    engine::LoopOptions limits;
    SetTimeouts(limits, iteration_timeout, interrupt_grace);
    options.iteration_timeout = limits.iteration_timeout;
    options.interrupt_grace = limits.interrupt_grace;
    std::vector<engine::SweepPointResult> results;
    std::optional<py::error_already_set> callback_error;
    // on_point runs in point order on a pipeline thread; a callback that raises stops the sweep.
    options.on_point = [&](const engine::SweepPointResult& r) {
      results.push_back(r);
      if (on_point.is_none() || callback_error) return;
      py::gil_scoped_acquire gil;
      try {
        on_point(PointToDict(r));
      } catch (py::error_already_set& e) {
        callback_error.emplace(std::move(e));
        cancel->Cancel();
      }
    };
    Result<engine::SweepResult> summary =
        WithExecutor(py_context, [&](engine::Executor& executor, storage::Context& context) {
          return engine::SweepRunner(executor, context).Run(prepared, points, options);
        });
    if (callback_error) throw std::move(*callback_error);
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
  // {index, params, image, ok, outputs, files, seconds, error}: error is the exception a run would
  // raise for that point (None when it succeeded). Needs the GIL.
  static py::dict PointToDict(const engine::SweepPointResult& r) {
    py::dict d;
    d["index"] = r.point.index;
    d["params"] = bridge::JsonToPython(json(r.point.params));
    d["image"] = r.point.image_path.empty() ? py::object(py::none())
                                            : py::object(py::str(r.point.image_path));
    d["ok"] = r.status.ok();
    py::dict outputs;
    for (const auto& [uid, value] : r.outputs) outputs[py::str(uid)] = ValueOut(value);
    d["outputs"] = outputs;
    d["files"] = r.files;
    d["seconds"] = r.seconds;
    d["error"] = r.status.ok() ? py::object(py::none()) : ExceptionFor(r.status);
    return d;
  }

  // None, an expression string, or a Python callable receiving the context and returning a bool.
  static std::optional<engine::Condition> ConditionFrom(const py::object& until, ContextHandle& py_context) {
    if (until.is_none()) return std::nullopt;
    if (py::isinstance<py::str>(until)) {
      const std::string text = until.cast<std::string>();
      if (text.empty()) return std::nullopt;
      return Unwrap(engine::Condition::Parse(text));
    }
    if (!PyCallable_Check(until.ptr())) throw py::type_error("until must be None, a condition string or a callable");
    py::object context_object = py::cast(&py_context, py::return_value_policy::reference);
    return engine::Condition::FromCallback(
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

  py::dict RunStages(ContextHandle& py_context, std::vector<engine::Stage> stages, engine::LoopOptions options,
                     py::object on_iteration, py::object on_event, std::shared_ptr<CancelToken> cancel) {
    if (!cancel) cancel = std::make_shared<CancelToken>();
    options.cancel = cancel->flag();

    // A callback that raises stops the run; its exception is re-raised to the caller.
    std::optional<py::error_already_set> callback_error;
    auto call_back = [&](const py::object& fn, auto make_arg) {
      if (fn.is_none() || callback_error) return;
      py::gil_scoped_acquire gil;
      try {
        fn(make_arg());
      } catch (py::error_already_set& e) {
        callback_error.emplace(std::move(e));
        cancel->Cancel();
      }
    };
    if (!on_iteration.is_none()) {
      options.on_iteration = [&](const engine::IterationReport& r) {
        call_back(on_iteration, [&r] {
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
        });
      };
    }
    if (!on_event.is_none()) {
      options.on_event = [&](const json& event) { call_back(on_event, [&event] { return bridge::JsonToPython(event); }); };
    }

    Result<engine::LoopResult> result =
        WithExecutor(py_context, [&](engine::Executor& executor, storage::Context& context) {
          return engine::LoopRunner(executor, context).RunStages(stages, options);
        });
    if (callback_error) throw std::move(*callback_error);
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

 private:
  std::unique_ptr<bridge::ComfyBridge> bridge_;
  std::mutex defs_mu_;
  std::optional<json> object_info_;
  DefsPtr defs_;
};

// ---- graph tools ---------------------------------------------------------------------------

py::object PortsToPython(const graph::PortSet& ports) { return bridge::JsonToPython(ports.ToJson()); }

}  // namespace
}  // namespace discomfort::pymodule

PYBIND11_MODULE(_core, m) {
  using namespace discomfort;
  using namespace discomfort::pymodule;
  m.doc() = "Discomfort's C++ engine (private; use the discomfort package).";

  py::class_<graph::NodeDefinitions, std::shared_ptr<graph::NodeDefinitions>>(m, "NodeDefinitions")
      .def_static(
          "from_object_info",
          [](py::handle info) {
            return std::make_shared<graph::NodeDefinitions>(
                Unwrap(graph::NodeDefinitions::FromJson(ToJsonOrRaise(info, "object_info"))));
          },
          py::arg("object_info"))
      .def_static(
          "load_file",
          [](const std::string& path) {
            return std::make_shared<graph::NodeDefinitions>(Unwrap(graph::NodeDefinitions::LoadFile(path)));
          },
          py::arg("path"))
      .def("__len__", &graph::NodeDefinitions::size)
      .def("__contains__", [](const graph::NodeDefinitions& d, const std::string& c) { return d.Has(c); });

  py::class_<CancelToken, std::shared_ptr<CancelToken>>(m, "CancelToken")
      .def(py::init<>())
      .def("cancel", &CancelToken::Cancel)
      .def_property_readonly("cancelled", &CancelToken::cancelled);

  py::class_<ContextHandle, std::shared_ptr<ContextHandle>>(m, "Context")
      .def(py::init([](std::optional<double> max_ram_gb, std::optional<double> max_ram_percent,
                       std::optional<double> max_device_gb, std::optional<std::string> temp_root, bool force_spill) {
             storage::ContextOptions o;
             o.max_ram_gb = max_ram_gb;
             o.max_ram_percent = max_ram_percent;
             o.max_device_gb = max_device_gb;
             o.temp_root = temp_root.value_or("");
             o.force_spill = force_spill;
             return std::make_shared<ContextHandle>(std::move(o));
           }),
           py::kw_only(), py::arg("max_ram_gb") = py::none(), py::arg("max_ram_percent") = py::none(),
           py::arg("max_device_gb") = py::none(), py::arg("temp_root") = py::none(), py::arg("force_spill") = false)
      .def(
          "put",
          [](ContextHandle& c, const std::string& key, py::handle value) {
            storage::Value v = bridge::ValueFromPython(value);
            auto ctx = c.get();
            Status st;
            {
              py::gil_scoped_release release;
              st = ctx->Put(key, std::move(v));
            }
            Check(st);
          },
          py::arg("key"), py::arg("value"))
      .def(
          "put_recipe",
          [](ContextHandle& c, const std::string& key, py::handle workflow) {
            storage::Value v = storage::Value::Recipe(ToJsonOrRaise(workflow, "a recipe workflow"));
            auto ctx = c.get();
            Status st;
            {
              py::gil_scoped_release release;
              st = ctx->Put(key, std::move(v));
            }
            Check(st);
          },
          py::arg("key"), py::arg("workflow"))
      .def(
          "get",
          [](ContextHandle& c, const std::string& key) {
            auto ctx = c.get();
            Result<storage::Value> v = Status(ErrorCode::kInternal, "");
            {
              py::gil_scoped_release release;
              v = ctx->Get(key);
            }
            return ValueOut(Unwrap(std::move(v)));
          },
          py::arg("key"))
      .def("contains", [](ContextHandle& c, const std::string& key) { return c.get()->Contains(key); }, py::arg("key"))
      .def("__contains__", [](ContextHandle& c, const std::string& key) { return c.get()->Contains(key); })
      .def(
          "erase",
          [](ContextHandle& c, const std::string& key) {
            auto ctx = c.get();
            Status st;
            {
              py::gil_scoped_release release;
              st = ctx->Erase(key);
            }
            Check(st);
          },
          py::arg("key"))
      .def("keys", [](ContextHandle& c) { return c.get()->Keys(); })
      .def("version", [](ContextHandle& c, const std::string& key) { return c.get()->Version(key); }, py::arg("key"))
      .def(
          "info",
          [](ContextHandle& c, const std::string& key) -> py::object {
            if (!c.get()->Contains(key)) return py::none();
            return InfoToDict(Unwrap(c.get()->Info(key)));
          },
          py::arg("key"))
      .def("usage", [](ContextHandle& c) { return UsageToDict(c.get()->GetUsage()); })
      .def(
          "spill",
          [](ContextHandle& c, const std::string& key) {
            auto ctx = c.get();
            Status st;
            {
              py::gil_scoped_release release;
              st = ctx->Spill(key);
            }
            Check(st);
          },
          py::arg("key"))
      .def(
          "export",
          [](ContextHandle& c, const std::string& key, const std::string& path) {
            auto ctx = c.get();
            Status st;
            {
              py::gil_scoped_release release;
              st = ctx->Export(key, path);
            }
            Check(st);
          },
          py::arg("key"), py::arg("path"))
      .def(
          "import_file",
          [](ContextHandle& c, const std::string& key, const std::string& path, bool as_recipe) {
            auto ctx = c.get();
            Status st;
            {
              py::gil_scoped_release release;
              st = ctx->Import(key, path, as_recipe ? storage::ValueKind::kRecipe : storage::ValueKind::kNone);
            }
            Check(st);
          },
          py::arg("key"), py::arg("path"), py::arg("as_recipe") = false)
      .def(
          "save_snapshot",
          [](ContextHandle& c, const std::string& dir) {
            auto ctx = c.get();
            Result<storage::SnapshotReport> r = Status(ErrorCode::kInternal, "");
            {
              py::gil_scoped_release release;
              r = ctx->SaveSnapshot(dir);
            }
            return SnapshotToDict(Unwrap(std::move(r)));
          },
          py::arg("dir"))
      .def(
          "load_snapshot",
          [](ContextHandle& c, const std::string& dir) {
            auto ctx = c.get();
            Result<storage::SnapshotReport> r = Status(ErrorCode::kInternal, "");
            {
              py::gil_scoped_release release;
              r = ctx->LoadSnapshot(dir);
            }
            return SnapshotToDict(Unwrap(std::move(r)));
          },
          py::arg("dir"))
      .def_property_readonly("temp_dir", [](ContextHandle& c) { return c.get()->temp_dir(); })
      .def_property_readonly("closed", &ContextHandle::closed)
      .def("close", &ContextHandle::Close);

  py::class_<EngineHandle, std::shared_ptr<EngineHandle>>(m, "Engine")
      .def_static("start", &EngineHandle::Start, py::kw_only(),
                  py::arg("comfyui_path") = py::none(), py::arg("work_dir") = py::none(),
                  py::arg("cpu") = py::none(), py::arg("verbose") = false,
                  py::arg("extra_nodes") = std::vector<std::string>{})
      .def_property_readonly("info", &EngineHandle::Info)
      .def("object_info", [](EngineHandle& e) { return bridge::JsonToPython(e.ObjectInfo()); })
      .def("definitions", &EngineHandle::Definitions)
      .def("forget_definitions", &EngineHandle::ForgetDefinitions)
      .def("validate", &EngineHandle::Validate, py::arg("prompt"))
      .def(
          "to_api",
          [](EngineHandle& e, py::handle doc, const std::string& name) {
            return bridge::JsonToPython(e.ToApi(ToJsonOrRaise(doc, "a workflow"), name));
          },
          py::arg("workflow"), py::arg("name") = "workflow")
      .def("interrupt", &EngineHandle::Interrupt)
      .def("reset_slot", &EngineHandle::ResetSlot, py::arg("slot"))
      .def("run", &EngineHandle::Run, py::arg("context"), py::arg("workflows"), py::kw_only(),
           py::arg("iterations") = 1, py::arg("until") = py::none(),
           py::arg("output_dir") = py::none(), py::arg("on_iteration") = py::none(),
           py::arg("on_event") = py::none(), py::arg("cancel") = py::none(),
           py::arg("first_iteration") = 0, py::arg("iteration_timeout") = py::none(),
           py::arg("interrupt_grace") = py::none(), py::arg("keep_reports") = true,
           py::arg("save_every") = 1)
      .def("run_plan", &EngineHandle::RunPlan, py::arg("context"), py::arg("plan"), py::kw_only(),
           py::arg("base_dir") = "", py::arg("iterations") = py::none(),
           py::arg("until") = py::none(), py::arg("output_dir") = py::none(),
           py::arg("on_iteration") = py::none(), py::arg("on_event") = py::none(),
           py::arg("cancel") = py::none(), py::arg("iteration_timeout") = py::none(),
           py::arg("interrupt_grace") = py::none(), py::arg("save_every") = 1)
      .def("sweep", &EngineHandle::Sweep, py::arg("context"), py::arg("workflows"), py::kw_only(),
           py::arg("grid") = std::vector<std::pair<std::string, py::object>>{},
           py::arg("images") = std::vector<std::string>{}, py::arg("iterations") = 1,
           py::arg("image_port") = "image", py::arg("output_dir") = py::none(),
           py::arg("pipeline") = true, py::arg("max_in_flight") = 4,
           py::arg("on_point") = py::none(), py::arg("cancel") = py::none(),
           py::arg("iteration_timeout") = py::none(), py::arg("interrupt_grace") = py::none());

  // Sweep helpers: the CLI's grid syntax ("seed=1..8", "cfg=5,7.5") and an image folder's PNGs.
  m.def(
      "parse_grid_axis",
      [](const std::string& text) {
        engine::GridAxis axis = Unwrap(engine::ParseGridAxis(text));
        return py::make_tuple(axis.key, bridge::JsonToPython(json(axis.values)));
      },
      py::arg("text"));
  m.def(
      "list_images", [](const std::string& dir) { return Unwrap(engine::ListImages(dir)); },
      py::arg("dir"));

  // Workflow tools: UI or API format; `definitions` (from Engine.definitions()) where types matter.
  m.def(
      "detect_format",
      [](py::handle doc) { return std::string(graph::WorkflowFormatName(graph::DetectFormat(ToJsonOrRaise(doc, "a workflow")))); },
      py::arg("workflow"));
  m.def(
      "discover_ports",
      [](py::handle doc, std::optional<DefsPtr> defs, const std::string& name) {
        return PortsToPython(Unwrap(graph::DiscoverWorkflowPorts(ToJsonOrRaise(doc, "a workflow"), DefsOrNull(defs), name)));
      },
      py::arg("workflow"), py::arg("definitions") = py::none(), py::arg("name") = "");
  m.def(
      "to_api",
      [](py::handle doc, std::optional<DefsPtr> defs, const std::string& name) {
        graph::ConvertOptions options;
        options.source_name = name;
        return bridge::JsonToPython(Unwrap(graph::ToApiPrompt(ToJsonOrRaise(doc, "a workflow"), DefsOrNull(defs), options)));
      },
      py::arg("workflow"), py::arg("definitions") = py::none(), py::arg("name") = "");
  m.def(
      "stitch",
      [](const std::vector<py::object>& docs, bool delete_input_ports, bool delete_output_ports,
         std::vector<std::string> names, std::optional<DefsPtr> defs) {
        std::vector<json> parts;
        for (const auto& d : docs) parts.push_back(ToJsonOrRaise(d, "a workflow"));
        graph::StitchOptions options;
        options.delete_input_ports = delete_input_ports;
        options.delete_output_ports = delete_output_ports;
        auto r = Unwrap(graph::StitchWorkflows(parts, options, names, DefsOrNull(defs)));
        py::dict out;
        out["workflow"] = bridge::JsonToPython(r.workflow);
        out["ports"] = PortsToPython(r.ports);
        out["execution_order"] = r.execution_order;
        return out;
      },
      py::arg("workflows"), py::arg("delete_input_ports") = false, py::arg("delete_output_ports") = false,
      py::arg("names") = std::vector<std::string>{}, py::arg("definitions") = py::none());
  m.def(
      "prune_to_output",
      [](py::handle doc, const std::string& uid, std::optional<DefsPtr> defs) {
        return bridge::JsonToPython(Unwrap(graph::PruneToOutput(ToJsonOrRaise(doc, "a workflow"), uid, DefsOrNull(defs))));
      },
      py::arg("workflow"), py::arg("unique_id"), py::arg("definitions") = py::none());
  m.def(
      "remove_reroutes",
      [](py::handle doc) { return bridge::JsonToPython(Unwrap(graph::RemoveReroutes(ToJsonOrRaise(doc, "a workflow")))); },
      py::arg("workflow"));
  m.def(
      "validate_workflow",
      [](py::handle doc, std::optional<DefsPtr> defs, const std::string& name) {
        py::list problems;
        for (const Status& st : graph::ValidateWorkflow(ToJsonOrRaise(doc, "a workflow"), DefsOrNull(defs), name)) {
          problems.append(StatusToDict(st));
        }
        return problems;
      },
      py::arg("workflow"), py::arg("definitions") = py::none(), py::arg("name") = "");
  m.def(
      "execution_order",
      [](py::handle doc) {
        json j = ToJsonOrRaise(doc, "a workflow");
        const graph::WorkflowFormat f = graph::DetectFormat(j);
        if (f == graph::WorkflowFormat::kApi) {
          if (j.contains("prompt") && j["prompt"].is_object()) j = j["prompt"];
          return Unwrap(graph::TopologicalOrderOfPrompt(j));
        }
        auto ui = Unwrap(graph::ParseUiWorkflow(j));
        return Unwrap(graph::TopologicalOrder(ui.root));
      },
      py::arg("workflow"));
  m.def("pass_by_for_type", [](const std::string& type) { return std::string(graph::PassByForType(type)); },
        py::arg("type"));
  m.def("status_for_test", [](const std::string& code, const std::string& message) {
    // Lets the tests check the error mapping for every engine error code.
    for (int c = 0; c <= static_cast<int>(ErrorCode::kInternal); ++c) {
      if (code == CodeId(static_cast<ErrorCode>(c))) {
        ErrorLocation where;
        where.node_id = "7";
        where.class_type = "KSampler";
        where.iteration = 2;
        Raise(Status(static_cast<ErrorCode>(c), message, where).set_traceback("Traceback: test"));
      }
    }
    throw py::value_error("unknown code " + code);
  });
}
