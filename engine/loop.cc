#include "engine/loop.h"

#include <chrono>
#include <utility>

#include <spdlog/spdlog.h>

#include "base/thread_annotations.h"
#include "engine/image_io.h"
#include "engine/image_writer.h"
#include "engine/port_types.h"
#include "engine/recipes.h"
#include "engine/timed_execution.h"
#include "engine/trace.h"

namespace discomfort::engine {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// Versions for values not yet committed: distinct from context versions and from each other
// across iterations and runs, so a loader's cache key changes whenever its value does.
std::atomic<uint64_t> g_pending_version{uint64_t{1} << 62};

// An OUTPUT value the loop writes as PNG files.
bool IsImage(const storage::Value& value) {
  return value.is_tensor() && LooksLikeImage(value.tensor());
}

struct PendingValue {
  storage::Value value;
  uint64_t version = 0;
};
// Values produced in the current iteration, visible to later workflows of that iteration,
// committed to the context only when the whole iteration finished.
using Pending = std::map<std::string, PendingValue>;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Cancels and timeouts end the run whatever the stage's error policy: no retry, no skip.
bool EndsTheRun(const Status& st) {
  return st.code() == ErrorCode::kCancelled || st.code() == ErrorCode::kTimeout;
}

Status WithLocation(Status st, int iteration, const std::string& stage,
                    const std::string& workflow) {
  st.where().iteration = iteration;
  if (st.where().stage.empty()) st.where().stage = stage;
  if (st.where().workflow.empty()) st.where().workflow = workflow;
  return st;
}

// The numbers, booleans and short strings an iteration committed (a score, a prompt), for monitors
// and the run report; tensors and objects are described by workflow_done's `outputs`.
json ScalarValues(const Pending& pending) {
  json values = json::object();
  for (const auto& [uid, pv] : pending) {
    if (!pv.value.is_json()) continue;
    const json& v = pv.value.json();
    if (v.is_number() || v.is_boolean() ||
        (v.is_string() && v.get_ref<const std::string&>().size() <= 1000)) {
      values[uid] = v;
    }
  }
  return values;
}

Status CheckLoopOptions(const LoopOptions& options) {
  if (options.iterations < 0) return Status(ErrorCode::kInvalidArgument, "iterations must be >= 0");
  // A week at most: larger values overflow the clock's deadline arithmetic.
  for (double seconds : {options.iteration_timeout, options.interrupt_grace}) {
    if (!(seconds >= 0 && seconds <= 604800)) {
      return Status(ErrorCode::kInvalidArgument,
                    "iteration_timeout and interrupt_grace must be from 0 to 604800 seconds");
    }
  }
  if (options.save_every < 0) {
    return Status(ErrorCode::kInvalidArgument,
                  "save_every must be >= 0 (0: the last iteration only)");
  }
  return Status::Ok();
}

// ComfyUI reports when each node starts; a node ends when the next one starts or the workflow
// returns. Recorded as complete spans on the loop's track, whatever thread reports the start (a
// timed execution runs on a helper thread).
class NodeSpans {
 public:
  NodeSpans(TraceWriter* trace, const PreparedWorkflow& wf)
      : trace_(trace), wf_(wf), track_(trace != nullptr ? TraceWriter::CurrentTrack() : -1) {}
  ~NodeSpans() { Finish(); }
  void Start(const std::string& node) {
    if (trace_ == nullptr) return;
    MutexLock lock(mu_);
    CloseLocked(Clock::now());
    node_ = node;
    started_ = Clock::now();
  }
  void Finish() {
    if (trace_ == nullptr) return;
    MutexLock lock(mu_);
    CloseLocked(Clock::now());
  }

 private:
  void CloseLocked(Clock::time_point now) REQUIRES(mu_) {
    if (node_.empty()) return;
    std::string class_type;
    if (auto it = wf_.executable_prompt->find(node_); it != wf_.executable_prompt->end()) {
      class_type = it->value("class_type", "");
    }
    trace_->Complete("node", class_type + " #" + node_, started_, now,
                     {{"node", node_}, {"class_type", class_type}, {"workflow", wf_.name}}, track_);
    node_.clear();
  }

  TraceWriter* const trace_;
  const PreparedWorkflow& wf_;
  const int track_;
  Mutex mu_;
  std::string node_ GUARDED_BY(mu_);
  Clock::time_point started_ GUARDED_BY(mu_);
};

// A workflow's request with the context values it reads pinned until the request is done.
struct GatheredInputs {
  ExecutionRequest request;
  std::vector<storage::PinnedValue> pins;
};

// One call of LoopRunner::RunStages: the run's state and its steps.
class LoopRun {
 public:
  LoopRun(Executor& executor, storage::Context& context, const std::vector<Stage>& stages,
          const LoopOptions& options)
      : executor_(executor),
        context_(context),
        stages_(stages),
        options_(options),
        fs_(options.fs != nullptr ? options.fs : storage::FileSystem::Default()),
        images_(options.output_dir, fs_, options.trace) {}

  Result<LoopResult> Run();

 private:
  void Emit(json event) const;
  Status Fail(Status st);
  bool Cancelled() const { return options_.cancel != nullptr && options_.cancel->load(); }
  bool Timed() const { return options_.iteration_timeout > 0; }
  DeadlineOptions DeadlineFor(Clock::time_point iteration_start) const;

  // An error ends the run; everything a stage's policy absorbs stays inside.
  Status RunIteration(int it);
  Status RunStage(const Stage& stage, int it, Pending& pending, IterationReport& report);
  Status RunStageAttempt(const Stage& stage, int it, Pending& stage_pending,
                         IterationReport& report);
  Status RunWorkflow(const Stage& stage, const PreparedWorkflow& wf, int it, Pending& stage_pending,
                     IterationReport& report);
  Result<GatheredInputs> GatherInputs(const PreparedWorkflow& wf, const Pending& pending, int it);
  // Runs the recipe an INPUT port read; the object replaces it in the context, pinned.
  Result<storage::PinnedValue> RealizeRecipe(const graph::Port& port, storage::PinnedValue recipe,
                                             int it);
  Status CommitIteration(int it, const Pending& pending, IterationReport& report);
  void WriteImages(const Pending& outputs, int iteration, IterationReport* report);
  void ReportFinalOutputs();

  Executor& executor_;
  storage::Context& context_;
  const std::vector<Stage>& stages_;
  const LoopOptions& options_;
  storage::FileSystem* const fs_;
  ImageWriter images_;
  DeadlineOptions deadline_;
  LoopResult result_;
  // The last finished iteration's image outputs while they are not written yet (save_every).
  Pending unsaved_;
  int unsaved_iteration_ = -1;
  RecipeBook recipes_;
};

void LoopRun::Emit(json event) const {
  if (!options_.on_event) return;
  event["time"] =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  options_.on_event(event);
}

Status LoopRun::Fail(Status st) {
  images_.Wait().IgnoreError();  // the run's own error is the one to report
  Emit({{"event", "error"}, {"error", st.ToJson()}});
  return st;
}

DeadlineOptions LoopRun::DeadlineFor(Clock::time_point iteration_start) const {
  DeadlineOptions deadline;
  if (!Timed()) return deadline;
  deadline.now = options_.clock;
  deadline.deadline =
      iteration_start + std::chrono::duration_cast<Clock::duration>(
                            std::chrono::duration<double>(options_.iteration_timeout));
  deadline.limit_seconds = options_.iteration_timeout;
  deadline.grace_seconds = options_.interrupt_grace;
  deadline.cancel = options_.cancel;
  return deadline;
}

Result<LoopResult> LoopRun::Run() {
  DISCOMFORT_RETURN_IF_ERROR(CheckLoopOptions(options_));
  if (!options_.output_dir.empty()) {
    if (Status st = fs_->CreateDir(options_.output_dir); !st.ok()) {
      return Status(st.code(),
                    "cannot create output folder " + options_.output_dir + ": " + st.message());
    }
  }
  result_.iterations_completed = options_.first_iteration;
  // Models leaving RAM and coming back, as the run's own events.
  struct Subscription {
    storage::Context& context;
    uint64_t token;
    ~Subscription() { context.RemoveEventObserver(token); }
  } subscription{context_, context_.AddEventObserver([this](const json& e) { Emit(e); })};
  Emit({{"event", "run_start"},
        {"iterations", options_.iterations},
        {"first_iteration", options_.first_iteration}});
  for (int it = options_.first_iteration; it < options_.iterations; ++it) {
    DISCOMFORT_RETURN_IF_ERROR(RunIteration(it));
    if (options_.until) {
      auto stop = options_.until->Evaluate(context_);
      if (!stop.ok()) return Fail(WithLocation(stop.TakeStatus(), it, "", ""));
      if (*stop) {
        result_.stopped_by_until = true;
        break;
      }
    }
  }
  // Stopped by `until` between two saves: its last iteration is written too.
  if (unsaved_iteration_ >= 0) WriteImages(unsaved_, unsaved_iteration_, nullptr);
  if (Status st = images_.Wait(); !st.ok()) return Fail(st);
  ReportFinalOutputs();
  Emit({{"event", "run_done"},
        {"iterations_completed", result_.iterations_completed},
        {"stopped_by_until", result_.stopped_by_until}});
  return std::move(result_);
}

Status LoopRun::RunIteration(int it) {
  TraceSpan span(options_.trace, "iteration", "iteration " + std::to_string(it),
                 {{"iteration", it}});
  const auto iteration_start = Clock::now();
  deadline_ = DeadlineFor(options_.clock ? options_.clock() : iteration_start);
  if (Status st = context_.Put(kIterationKey, storage::Value::Json(it)); !st.ok()) {
    return Fail(WithLocation(st, it, "", ""));
  }
  if (Status st = context_.Put(kIterationsKey, storage::Value::Json(options_.iterations));
      !st.ok()) {
    return Fail(WithLocation(st, it, "", ""));
  }
  Emit({{"event", "iteration_start"}, {"iteration", it}});
  Pending pending;
  IterationReport report;
  report.iteration = it;
  for (const Stage& stage : stages_) {
    Status st = RunStage(stage, it, pending, report);
    if (!st.ok()) {
      if (EndsTheRun(st) && options_.checkpoint_every > 0) {
        // The context holds the last finished iteration: resuming starts right after it.
        if (SaveCheckpoint(context_, options_.checkpoint_dir, options_.checkpoint_manifest, it, fs_)
                .ok()) {
          Emit({{"event", "checkpoint"}, {"iteration", it - 1}, {"dir", options_.checkpoint_dir}});
        }
      }
      return Fail(st);
    }
  }
  DISCOMFORT_RETURN_IF_ERROR(CommitIteration(it, pending, report));
  report.seconds = SecondsSince(iteration_start);
  result_.iterations_completed = it + 1;
  Emit({{"event", "iteration_done"},
        {"iteration", it},
        {"seconds", report.seconds},
        {"files", report.files},
        {"stages_run", report.stages_run},
        {"stages_failed", report.stages_failed},
        {"values", ScalarValues(pending)}});
  if (options_.on_iteration) options_.on_iteration(report);
  if (options_.max_reports > 0) {
    if (result_.reports.size() >= options_.max_reports)
      result_.reports.erase(result_.reports.begin());
    result_.reports.push_back(std::move(report));
  }
  if (options_.checkpoint_every > 0 && (it + 1) % options_.checkpoint_every == 0) {
    if (Status st = SaveCheckpoint(context_, options_.checkpoint_dir, options_.checkpoint_manifest,
                                   it + 1, fs_);
        !st.ok()) {
      return Fail(WithLocation(st, it, "", ""));
    }
    Emit({{"event", "checkpoint"}, {"iteration", it}, {"dir", options_.checkpoint_dir}});
  }
  return Status::Ok();
}

// The stage's `when`, then its attempts under its error policy. Ok also when the policy skipped it.
Status LoopRun::RunStage(const Stage& stage, int it, Pending& pending, IterationReport& report) {
  TraceSpan span(options_.trace, "stage", "stage " + stage.name,
                 {{"iteration", it}, {"stage", stage.name}});
  if (stage.when) {
    auto lookup = [this, &pending](const std::string& key) -> Result<storage::Value> {
      auto p = pending.find(key);
      if (p != pending.end()) return p->second.value;
      return context_.Get(key);
    };
    auto run_it = stage.when->Evaluate(lookup, context_);
    if (!run_it.ok()) return WithLocation(run_it.TakeStatus(), it, stage.name, "");
    if (!*run_it) {
      if (options_.trace)
        options_.trace->Instant("stage", "skipped: " + stage.name, {{"when", stage.when->text()}});
      Emit({{"event", "stage_skipped"},
            {"iteration", it},
            {"stage", stage.name},
            {"when", stage.when->text()}});
      return Status::Ok();
    }
  }
  const int attempts = stage.on_error == ErrorPolicy::kRetry ? stage.retries + 1 : 1;
  Status st;
  for (int attempt = 0; attempt < attempts; ++attempt) {
    Pending stage_pending = pending;  // each attempt starts from the values before the stage
    st = RunStageAttempt(stage, it, stage_pending, report);
    if (st.ok()) {
      pending = std::move(stage_pending);
      report.stages_run.push_back(stage.name);
      return st;
    }
    if (EndsTheRun(st)) return st;
    if (options_.trace)
      options_.trace->Instant("failure", "failed: " + stage.name, {{"error", st.ToString()}});
    if (attempt + 1 < attempts) {
      if (options_.trace)
        options_.trace->Instant("stage", "retry: " + stage.name, {{"attempt", attempt + 1}});
      spdlog::warn("[discomfort] {} — retrying stage '{}' ({}/{})", st.ToString(), stage.name,
                   attempt + 1, stage.retries);
      Emit({{"event", "stage_retry"},
            {"iteration", it},
            {"stage", stage.name},
            {"attempt", attempt + 1},
            {"error", st.ToJson()}});
    }
  }
  if (stage.on_error != ErrorPolicy::kSkip) return st;
  spdlog::warn("[discomfort] {} — stage '{}' skipped for this iteration", st.ToString(),
               stage.name);
  Emit({{"event", "stage_failed"},
        {"iteration", it},
        {"stage", stage.name},
        {"error", st.ToJson()}});
  report.stages_failed.push_back(stage.name);
  return Status::Ok();
}

Status LoopRun::RunStageAttempt(const Stage& stage, int it, Pending& stage_pending,
                                IterationReport& report) {
  for (const PreparedWorkflow& wf : stage.workflows) {
    if (Cancelled()) {
      return WithLocation(
          Status(ErrorCode::kCancelled, "cancelled; the context holds the last finished iteration"),
          it, stage.name, wf.name);
    }
    DISCOMFORT_RETURN_IF_ERROR(RunWorkflow(stage, wf, it, stage_pending, report));
  }
  return Status::Ok();
}

Result<storage::PinnedValue> LoopRun::RealizeRecipe(const graph::Port& port,
                                                    storage::PinnedValue recipe, int it) {
  const storage::Value value = recipe.value();
  recipe.Release();
  auto read_input = [this](const std::string& uid) { return context_.Get(uid); };
  auto execute = [this](ExecutionRequest request) -> Result<ExecutionOutcome> {
    if (Timed()) return ExecuteWithDeadline(executor_, std::move(request), deadline_);
    return executor_.Execute(request);
  };
  TraceSpan span(options_.trace, "recipe", "recipe " + port.unique_id,
                 {{"iteration", it}, {"port", port.unique_id}});
  DISCOMFORT_ASSIGN_OR_RETURN(
      RecipeRun run, RunRecipe(port.unique_id, value, options_.exact_executor, read_input, execute,
                               recipes_.recipe_node_seconds()));
  Emit({{"event", "recipe_run"},
        {"iteration", it},
        {"port", port.unique_id},
        {"seconds", run.seconds},
        {"value", run.value.Describe()}});
  return context_.PutPinned(port.unique_id, std::move(run.value));
}

Result<GatheredInputs> LoopRun::GatherInputs(const PreparedWorkflow& wf, const Pending& pending,
                                             int it) {
  GatheredInputs gathered;
  bool realized_recipes = false;
  ExecutionRequest& request = gathered.request;
  request.slot = wf.slot;
  request.workflow_name = wf.name;
  request.exact = options_.exact_executor;
  request.prompt = wf.executable_prompt;
  for (const graph::Port& port : wf.ports.inputs) {
    if (auto p = pending.find(port.unique_id); p != pending.end()) {
      DISCOMFORT_RETURN_IF_ERROR(CheckPortValue(port, p->second.value));
      request.inputs[port.unique_id] = p->second.value;
      request.versions[port.unique_id] = p->second.version;
      continue;
    }
    auto pinned = context_.Pin(port.unique_id);
    if (!pinned.ok()) {
      if (pinned.status().code() != ErrorCode::kNotFound) return pinned.TakeStatus();
      ErrorLocation where;
      where.node_id = port.node_id;
      where.class_type = graph::kPortClass;
      where.port = port.unique_id;
      return Status(ErrorCode::kNotFound,
                    "INPUT port '" + port.unique_id + "' has no value: pass one (CLI --set " +
                        port.unique_id +
                        "=VALUE, or inputs= in the API) or produce it by an OUTPUT port of an "
                        "earlier workflow",
                    where);
    }
    if (pinned->value().is_recipe()) {
      // Passed by reference: the object is made now, once, and replaces its recipe.
      pinned = RealizeRecipe(port, std::move(pinned).value(), it);
      if (!pinned.ok()) return pinned.TakeStatus();
      realized_recipes = true;
    }
    DISCOMFORT_RETURN_IF_ERROR(CheckPortValue(port, pinned->value()));
    request.inputs[port.unique_id] = pinned->value();
    request.versions[port.unique_id] = pinned->version();
    gathered.pins.push_back(std::move(pinned).value());
  }
  // The recipes this workflow read were run together, so that the ones of one loader (a
  // checkpoint's MODEL, CLIP and VAE) shared one load. The recipe slot's cache would keep every
  // object that load made, also those no port asked for (a second MODEL beside the one the
  // context kept in RAM, as large as a model), until the next recipe ran: let go of it now.
  if (realized_recipes) executor_.ResetSlot(kRecipeSlot);
  return gathered;
}

Status LoopRun::RunWorkflow(const Stage& stage, const PreparedWorkflow& wf, int it,
                            Pending& stage_pending, IterationReport& report) {
  auto gathered = GatherInputs(wf, stage_pending, it);
  if (!gathered.ok()) return WithLocation(gathered.TakeStatus(), it, stage.name, wf.name);
  ExecutionRequest& request = gathered->request;
  TraceSpan span(options_.trace, "workflow", "workflow " + wf.name,
                 {{"iteration", it}, {"stage", stage.name}, {"workflow", wf.name}});
  NodeSpans nodes(options_.trace, wf);
  if (options_.on_event || options_.trace) {
    request.on_progress = [this, it, &stage, &wf, &nodes](const std::string& event,
                                                          const json& data) {
      if (event == "node_start") nodes.Start(data.value("node", ""));
      if (!options_.on_event) return;
      json e = data;
      e["event"] = event;
      e["iteration"] = it;
      e["stage"] = stage.name;
      e["workflow"] = wf.name;
      if (event == "node_start") {
        auto node = wf.executable_prompt->find(data.value("node", ""));
        if (node != wf.executable_prompt->end()) e["class_type"] = node->value("class_type", "");
      }
      Emit(std::move(e));
    };
  }
  // What the workflow read, for the recipes of the objects it produces.
  std::map<std::string, storage::Value> read;
  if (RecipeBook::HasByReferenceOutputs(wf)) read = request.inputs;
  const std::map<std::string, uint64_t> read_versions = request.versions;
  const auto workflow_start = Clock::now();
  if (!Timed()) {
    // A node an earlier timed run left running still owns ComfyUI.
    if (Status st = WaitForAbandonedExecution(options_.interrupt_grace); !st.ok()) {
      return WithLocation(st, it, stage.name, wf.name);
    }
  }
  auto outcome = Timed() ? ExecuteWithDeadline(executor_, std::move(request), deadline_)
                         : executor_.Execute(request);
  nodes.Finish();
  gathered->pins.clear();  // the execution is over (or abandoned, holding its own references)
  if (!outcome.ok()) return WithLocation(outcome.TakeStatus(), it, stage.name, wf.name);
  recipes_.RecordNodeTimes(wf.slot, outcome->node_times);
  for (auto& [uid, value] : outcome->outputs) {
    json skipped;
    storage::Value kept = recipes_.Attach(wf, uid, value, read, read_versions, &skipped);
    if (!skipped.is_null()) {
      spdlog::info("[discomfort] OUTPUT '{}' of {} is kept without a recipe: {}", uid, wf.name,
                   skipped.value("reason", ""));
      skipped["iteration"] = it;
      Emit(std::move(skipped));
    }
    stage_pending[uid] = {std::move(kept), ++g_pending_version};
  }
  for (const graph::Port& port : wf.ports.outputs) {
    if (!outcome->outputs.count(port.unique_id)) {
      spdlog::warn("[discomfort] iteration {}: OUTPUT port '{}' (node {}) of {} produced no value",
                   it, port.unique_id, port.node_id, wf.name);
    }
  }
  json node_times = json::array();
  for (const auto& t : outcome->node_times)
    node_times.push_back({{"node", t.node_id}, {"seconds", t.seconds}});
  json outputs = json::object();
  for (const auto& [uid, value] : outcome->outputs) outputs[uid] = value.Describe();
  Emit({{"event", "workflow_done"},
        {"iteration", it},
        {"stage", stage.name},
        {"workflow", wf.name},
        {"seconds", SecondsSince(workflow_start)},
        {"nodes", node_times},
        {"outputs", outputs}});
  report.node_times.insert(report.node_times.end(), outcome->node_times.begin(),
                           outcome->node_times.end());
  return Status::Ok();
}

Status LoopRun::CommitIteration(int it, const Pending& pending, IterationReport& report) {
  for (const auto& [uid, pv] : pending) {
    if (Status st = context_.Put(uid, pv.value); !st.ok())
      return Fail(WithLocation(st, it, "", ""));
  }
  if (Status st = images_.Wait(); !st.ok()) return Fail(WithLocation(st, it - 1, "", ""));
  if (options_.output_dir.empty()) return Status::Ok();
  const bool last = it + 1 == options_.iterations;
  if (last || (options_.save_every > 0 && (it + 1) % options_.save_every == 0)) {
    WriteImages(pending, it, &report);
    unsaved_.clear();
    unsaved_iteration_ = -1;
  } else {
    // Only the images to write, by pointer: anything else the iteration produced (a model) is the
    // context's to keep or let go of under its budget.
    unsaved_.clear();
    for (const auto& [uid, pv] : pending) {
      if (IsImage(pv.value)) unsaved_[uid] = pv;
    }
    unsaved_iteration_ = it;
  }
  return Status::Ok();
}

void LoopRun::WriteImages(const Pending& outputs, int iteration, IterationReport* report) {
  for (const auto& [uid, pv] : outputs) {
    if (!IsImage(pv.value)) continue;
    auto names = images_.Write(uid, iteration, pv.value.tensor());
    if (report != nullptr) report->files.insert(report->files.end(), names.begin(), names.end());
    result_.files[uid] = std::move(names);
  }
}

// Every OUTPUT port's final value as the context holds it, including ones produced by earlier
// runs. Read from the context at the end rather than kept as each iteration commits: a value kept
// here would hold an object the context's budget has let go of (a model dropped for its recipe, a
// tensor spilled to disk) in RAM for the rest of the run. A model dropped for its recipe is
// reported as that recipe, as the context holds it.
void LoopRun::ReportFinalOutputs() {
  for (const Stage& stage : stages_) {
    for (const PreparedWorkflow& wf : stage.workflows) {
      for (const graph::Port& port : wf.ports.outputs) {
        if (result_.outputs.count(port.unique_id)) continue;
        auto value = context_.Get(port.unique_id);
        if (value.ok()) result_.outputs[port.unique_id] = std::move(value).value();
      }
    }
  }
}

}  // namespace

Result<PreparedWorkflow> PrepareWorkflow(const Workflow& workflow, size_t index,
                                         const json* object_info) {
  PreparedWorkflow prepared;
  prepared.name = workflow.name;
  prepared.slot = std::to_string(index) + ":" + workflow.name;
  auto ports = graph::DiscoverPorts(workflow.prompt, object_info);
  if (!ports.ok()) {
    Status st = ports.TakeStatus();
    st.where().workflow = workflow.name;
    return st;
  }
  prepared.ports = std::move(ports).value();
  auto rewritten = graph::RewritePortsForExecution(workflow.prompt, prepared.ports);
  if (!rewritten.ok()) {
    Status st = rewritten.TakeStatus();
    st.where().workflow = workflow.name;
    return st;
  }
  prepared.executable_prompt = std::make_shared<const json>(std::move(rewritten).value());
  prepared.source_prompt = std::make_shared<const json>(workflow.prompt);
  return prepared;
}

LoopRunner::LoopRunner(Executor& executor, storage::Context& context)
    : executor_(executor), context_(context) {}

Result<LoopResult> LoopRunner::Run(const std::vector<PreparedWorkflow>& workflows,
                                   const LoopOptions& options) {
  Stage stage;
  stage.name = "main";
  stage.workflows = workflows;
  return RunStages({stage}, options);
}

Result<LoopResult> LoopRunner::RunStages(const std::vector<Stage>& stages,
                                         const LoopOptions& options) {
  return LoopRun(executor_, context_, stages, options).Run();
}

}  // namespace discomfort::engine
