#include "engine/loop.h"

#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>

#include <spdlog/spdlog.h>
#include <tbb/task_group.h>

#include "engine/image_io.h"
#include "engine/port_types.h"
#include "engine/timed_execution.h"

namespace discomfort::engine {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// Versions for values not yet committed: distinct from context versions and from each other
// across iterations and runs, so a loader's cache key changes whenever its value does.
std::atomic<uint64_t> g_pending_version{uint64_t{1} << 62};

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

std::string SanitizeForFileName(const std::string& name) {
  std::string out;
  for (char c : name) out += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') ? c : '_';
  return out.empty() ? "port" : out;
}

// PNG encoding in the background: iteration N's images encode while N+1 executes.
class ImageWriter {
 public:
  explicit ImageWriter(std::string dir) : dir_(std::move(dir)) {}
  ~ImageWriter() { tasks_.wait(); }

  // Returns the file names the image will have; the encode runs on a TBB worker.
  std::vector<std::string> Write(const std::string& uid, int iteration, const at::Tensor& image) {
    char index[16];
    std::snprintf(index, sizeof(index), "%05d", iteration);
    const std::string stem = (std::filesystem::path(dir_) / (SanitizeForFileName(uid) + "_" + index)).string();
    const int64_t batch = image.dim() >= 3 ? image.size(0) : 1;
    std::vector<std::string> names;
    for (int64_t b = 0; b < batch; ++b) names.push_back(stem + (batch == 1 ? std::string() : "_" + std::to_string(b)) + ".png");
    tasks_.run([this, image, stem] {
      Status st;
      try {
        auto written = WriteImagePngs(image, stem);
        if (!written.ok()) st = written.status();
      } catch (const std::exception& e) {  // no exception may escape a TBB task
        st = Status(ErrorCode::kInternal, std::string("PNG encoding: ") + e.what());
      }
      if (!st.ok()) {
        std::lock_guard<std::mutex> lock(mu_);
        if (first_error_.ok()) first_error_ = st;
      }
    });
    return names;
  }

  Status Wait() {
    tasks_.wait();
    std::lock_guard<std::mutex> lock(mu_);
    return first_error_;
  }

 private:
  std::string dir_;
  tbb::task_group tasks_;
  std::mutex mu_;
  Status first_error_;
};

// Cancels and timeouts end the run whatever the stage's error policy: no retry, no skip.
bool EndsTheRun(const Status& st) {
  return st.code() == ErrorCode::kCancelled || st.code() == ErrorCode::kTimeout;
}

Status WithLocation(Status st, int iteration, const std::string& stage, const std::string& workflow) {
  st.where().iteration = iteration;
  if (st.where().stage.empty()) st.where().stage = stage;
  if (st.where().workflow.empty()) st.where().workflow = workflow;
  return st;
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
  return prepared;
}

Status SaveCheckpoint(const storage::Context& context, const std::string& dir, json manifest, int next_iteration) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status(ErrorCode::kIO, "cannot create checkpoint folder " + dir + ": " + ec.message());
  // The snapshot goes to the folder run.json does NOT name (two generations, "context-a" and
  // "context-b"), and the rename of run.json commits both: a crash between the snapshot and
  // run.json leaves the previous pair, never a new context with the old next_iteration.
  std::string current = "context";
  {
    std::ifstream in(fs::path(dir) / "run.json");
    json old = in ? json::parse(in, nullptr, false) : json();
    if (old.is_object() && (old.value("context", json()) == "context-a" || old.value("context", json()) == "context-b")) {
      current = old["context"];
    }
  }
  const std::string generation = current == "context-a" ? "context-b" : "context-a";
  auto report = context.SaveSnapshot((fs::path(dir) / generation).string());
  if (!report.ok()) return report.TakeStatus();
  manifest["next_iteration"] = next_iteration;
  manifest["context"] = generation;
  manifest["not_persisted"] = report->not_persisted;
  const fs::path tmp = fs::path(dir) / "run.json.tmp";
  {
    std::ofstream out(tmp);
    out << manifest.dump(2) << "\n";
    out.flush();
    if (!out) return Status(ErrorCode::kIO, "cannot write " + tmp.string());
  }
  fs::rename(tmp, fs::path(dir) / "run.json", ec);
  if (ec) return Status(ErrorCode::kIO, "cannot rename " + tmp.string() + ": " + ec.message());
  fs::remove_all(fs::path(dir) / current, ec);  // the previous generation; best effort
  return Status::Ok();
}

Result<Checkpoint> LoadCheckpoint(const std::string& dir, storage::Context& context) {
  namespace fs = std::filesystem;
  const fs::path manifest_path = fs::path(dir) / "run.json";
  std::ifstream in(manifest_path);
  if (!in) return Status(ErrorCode::kNotFound, "no checkpoint at " + dir + " (run.json missing)");
  json manifest = json::parse(in, nullptr, false);
  if (manifest.is_discarded() || !manifest.is_object() || !manifest.contains("next_iteration") ||
      !manifest["next_iteration"].is_number_integer()) {
    return Status(ErrorCode::kParse, manifest_path.string() + " is not a Discomfort checkpoint manifest");
  }
  // "context" for checkpoints written before the two generations.
  std::string generation = "context";
  if (manifest.contains("context")) {
    generation = manifest["context"].is_string() ? manifest["context"].get<std::string>() : "";
  }
  if (generation.rfind("context", 0) != 0 || generation.find('/') != std::string::npos) {
    return Status(ErrorCode::kParse, manifest_path.string() + " names no context folder of its own");
  }
  auto report = context.LoadSnapshot((fs::path(dir) / generation).string());
  if (!report.ok()) return report.TakeStatus();
  Checkpoint cp;
  cp.next_iteration = manifest["next_iteration"].get<int>();
  cp.manifest = std::move(manifest);
  return cp;
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

Result<LoopResult> LoopRunner::RunStages(const std::vector<Stage>& stages, const LoopOptions& options) {
  if (options.iterations < 0) return Status(ErrorCode::kInvalidArgument, "iterations must be >= 0");
  // A week at most: larger values overflow the clock's deadline arithmetic.
  for (double seconds : {options.iteration_timeout, options.interrupt_grace}) {
    if (!(seconds >= 0 && seconds <= 604800)) {
      return Status(ErrorCode::kInvalidArgument, "iteration_timeout and interrupt_grace must be from 0 to 604800 seconds");
    }
  }
  const bool timed = options.iteration_timeout > 0;
  if (options.save_every < 0) {
    return Status(ErrorCode::kInvalidArgument, "save_every must be >= 0 (0: the last iteration only)");
  }
  if (!options.output_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(options.output_dir, ec);
    if (ec) return Status(ErrorCode::kIO, "cannot create output folder " + options.output_dir + ": " + ec.message());
  }
  auto emit = [&options](json event) {
    if (!options.on_event) return;
    event["time"] = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    options.on_event(event);
  };
  auto fail = [&emit](Status st) {
    emit({{"event", "error"}, {"error", st.ToJson()}});
    return st;
  };
  auto cancelled = [&options] { return options.cancel != nullptr && options.cancel->load(); };

  LoopResult result;
  result.iterations_completed = options.first_iteration;
  ImageWriter images(options.output_dir);
  // The last finished iteration's image outputs while they are not written yet (--save-every).
  Pending unsaved;
  int unsaved_iteration = -1;
  auto write_images = [&](const Pending& outputs, int iteration, IterationReport* report) {
    for (const auto& [uid, pv] : outputs) {
      if (!pv.value.is_tensor() || !LooksLikeImage(pv.value.tensor())) continue;
      auto names = images.Write(uid, iteration, pv.value.tensor());
      if (report != nullptr) report->files.insert(report->files.end(), names.begin(), names.end());
      result.files[uid] = std::move(names);
    }
  };
  emit({{"event", "run_start"}, {"iterations", options.iterations}, {"first_iteration", options.first_iteration}});

  for (int it = options.first_iteration; it < options.iterations; ++it) {
    const auto iteration_start = Clock::now();
    DeadlineOptions deadline;
    if (timed) {
      deadline.deadline = iteration_start + std::chrono::duration_cast<Clock::duration>(
                                                std::chrono::duration<double>(options.iteration_timeout));
      deadline.limit_seconds = options.iteration_timeout;
      deadline.grace_seconds = options.interrupt_grace;
      deadline.cancel = options.cancel;
    }
    DISCOMFORT_RETURN_IF_ERROR(context_.Put(kIterationKey, storage::Value::Json(it)));
    DISCOMFORT_RETURN_IF_ERROR(context_.Put(kIterationsKey, storage::Value::Json(options.iterations)));
    emit({{"event", "iteration_start"}, {"iteration", it}});
    Pending pending;
    IterationReport report;
    report.iteration = it;
    auto lookup = [this, &pending](const std::string& key) -> Result<storage::Value> {
      auto p = pending.find(key);
      if (p != pending.end()) return p->second.value;
      return context_.Get(key);
    };

    for (const Stage& stage : stages) {
      if (stage.when) {
        auto run_it = stage.when->Evaluate(lookup, context_);
        if (!run_it.ok()) {
          (void)images.Wait();
          return fail(WithLocation(run_it.TakeStatus(), it, stage.name, ""));
        }
        if (!*run_it) {
          emit({{"event", "stage_skipped"}, {"iteration", it}, {"stage", stage.name}, {"when", stage.when->text()}});
          continue;
        }
      }
      const int attempts = stage.on_error == ErrorPolicy::kRetry ? stage.retries + 1 : 1;
      Status stage_status;
      Pending stage_pending;
      for (int attempt = 0; attempt < attempts; ++attempt) {
        stage_pending = pending;  // each attempt starts from the values before the stage
        stage_status = Status::Ok();
        for (const PreparedWorkflow& wf : stage.workflows) {
          if (cancelled()) {
            stage_status = Status(ErrorCode::kCancelled, "cancelled; the context holds the last finished iteration");
            stage_status = WithLocation(stage_status, it, stage.name, wf.name);
            break;
          }
          ExecutionRequest request;
          request.slot = wf.slot;
          request.workflow_name = wf.name;
          request.prompt = wf.executable_prompt;
          for (const graph::Port& port : wf.ports.inputs) {
            auto p = stage_pending.find(port.unique_id);
            if (p != stage_pending.end()) {
              stage_status = CheckPortValue(port, p->second.value);
              if (!stage_status.ok()) {
                stage_status = WithLocation(stage_status, it, stage.name, wf.name);
                break;
              }
              request.inputs[port.unique_id] = p->second.value;
              request.versions[port.unique_id] = p->second.version;
              continue;
            }
            auto value = context_.Get(port.unique_id);
            if (!value.ok()) {
              ErrorLocation where;
              where.node_id = port.node_id;
              where.class_type = graph::kPortClass;
              where.port = port.unique_id;
              stage_status = WithLocation(
                  Status(ErrorCode::kNotFound,
                         "INPUT port '" + port.unique_id + "' has no value: pass one (CLI --set " +
                             port.unique_id + "=VALUE, or inputs= in the API) or produce it by an OUTPUT "
                             "port of an earlier workflow",
                         where),
                  it, stage.name, wf.name);
              break;
            }
            stage_status = CheckPortValue(port, *value);
            if (!stage_status.ok()) {
              stage_status = WithLocation(stage_status, it, stage.name, wf.name);
              break;
            }
            request.inputs[port.unique_id] = std::move(value).value();
            request.versions[port.unique_id] = context_.Version(port.unique_id);
          }
          if (!stage_status.ok()) break;
          if (options.on_event) {
            request.on_progress = [&emit, it, &stage, &wf](const std::string& event, const json& data) {
              json e = data;
              e["event"] = event;
              e["iteration"] = it;
              e["stage"] = stage.name;
              e["workflow"] = wf.name;
              if (event == "node_start") {
                auto node = wf.executable_prompt->find(data.value("node", ""));
                if (node != wf.executable_prompt->end()) e["class_type"] = node->value("class_type", "");
              }
              emit(std::move(e));
            };
          }
          const auto workflow_start = Clock::now();
          if (!timed) {
            // A node an earlier timed run left running still owns ComfyUI.
            stage_status = WaitForAbandonedExecution(options.interrupt_grace);
            if (!stage_status.ok()) {
              stage_status = WithLocation(stage_status, it, stage.name, wf.name);
              break;
            }
          }
          auto outcome = timed ? ExecuteWithDeadline(executor_, std::move(request), deadline)
                               : executor_.Execute(request);
          if (!outcome.ok()) {
            stage_status = WithLocation(outcome.TakeStatus(), it, stage.name, wf.name);
            break;
          }
          for (auto& [uid, value] : outcome->outputs) stage_pending[uid] = {value, ++g_pending_version};
          for (const graph::Port& port : wf.ports.outputs) {
            if (!outcome->outputs.count(port.unique_id)) {
              spdlog::warn("[discomfort] iteration {}: OUTPUT port '{}' (node {}) of {} produced no value", it,
                           port.unique_id, port.node_id, wf.name);
            }
          }
          json node_times = json::array();
          for (const auto& t : outcome->node_times) node_times.push_back({{"node", t.node_id}, {"seconds", t.seconds}});
          json outputs = json::object();
          for (const auto& [uid, value] : outcome->outputs) outputs[uid] = value.Describe();
          emit({{"event", "workflow_done"}, {"iteration", it}, {"stage", stage.name}, {"workflow", wf.name},
                {"seconds", SecondsSince(workflow_start)}, {"nodes", node_times}, {"outputs", outputs}});
          report.node_times.insert(report.node_times.end(), outcome->node_times.begin(), outcome->node_times.end());
        }
        if (stage_status.ok() || EndsTheRun(stage_status)) break;
        if (attempt + 1 < attempts) {
          spdlog::warn("[discomfort] {} — retrying stage '{}' ({}/{})", stage_status.ToString(), stage.name,
                       attempt + 1, stage.retries);
          emit({{"event", "stage_retry"}, {"iteration", it}, {"stage", stage.name}, {"attempt", attempt + 1},
                {"error", stage_status.ToJson()}});
        }
      }
      if (stage_status.ok()) {
        pending = std::move(stage_pending);
        report.stages_run.push_back(stage.name);
        continue;
      }
      if (stage.on_error == ErrorPolicy::kSkip && !EndsTheRun(stage_status)) {
        spdlog::warn("[discomfort] {} — stage '{}' skipped for this iteration", stage_status.ToString(), stage.name);
        emit({{"event", "stage_failed"}, {"iteration", it}, {"stage", stage.name}, {"error", stage_status.ToJson()}});
        report.stages_failed.push_back(stage.name);
        continue;
      }
      (void)images.Wait();
      if (EndsTheRun(stage_status) && options.checkpoint_every > 0) {
        // The context holds the last finished iteration: make resuming start right after it.
        if (Status st = SaveCheckpoint(context_, options.checkpoint_dir, options.checkpoint_manifest, it); st.ok()) {
          emit({{"event", "checkpoint"}, {"iteration", it - 1}, {"dir", options.checkpoint_dir}});
        }
      }
      return fail(stage_status);
    }

    // The iteration finished: commit its outputs.
    for (auto& [uid, pv] : pending) {
      if (Status st = context_.Put(uid, pv.value); !st.ok()) {
        (void)images.Wait();
        return fail(WithLocation(st, it, "", ""));
      }
      result.outputs[uid] = pv.value;
    }
    if (Status st = images.Wait(); !st.ok()) return fail(WithLocation(st, it - 1, "", ""));
    if (!options.output_dir.empty()) {
      const bool last = it + 1 == options.iterations;
      if (last || (options.save_every > 0 && (it + 1) % options.save_every == 0)) {
        write_images(pending, it, &report);
        unsaved.clear();
        unsaved_iteration = -1;
      } else {
        unsaved = pending;  // tensors by pointer: no copy of the data
        unsaved_iteration = it;
      }
    }
    report.seconds = SecondsSince(iteration_start);
    result.iterations_completed = it + 1;
    emit({{"event", "iteration_done"}, {"iteration", it}, {"seconds", report.seconds}, {"files", report.files},
          {"stages_run", report.stages_run}, {"stages_failed", report.stages_failed}});
    if (options.on_iteration) options.on_iteration(report);
    if (options.max_reports > 0) {
      if (result.reports.size() >= options.max_reports) result.reports.erase(result.reports.begin());
      result.reports.push_back(std::move(report));
    }
    if (options.checkpoint_every > 0 && (it + 1) % options.checkpoint_every == 0) {
      if (Status st = SaveCheckpoint(context_, options.checkpoint_dir, options.checkpoint_manifest, it + 1); !st.ok()) {
        return fail(WithLocation(st, it, "", ""));
      }
      emit({{"event", "checkpoint"}, {"iteration", it}, {"dir", options.checkpoint_dir}});
    }

    if (options.until) {
      auto stop = options.until->Evaluate(context_);
      if (!stop.ok()) return fail(WithLocation(stop.TakeStatus(), it, "", ""));
      if (*stop) {
        result.stopped_by_until = true;
        break;
      }
    }
  }
  // Stopped by `until` between two saves: its last iteration is written too.
  if (unsaved_iteration >= 0) write_images(unsaved, unsaved_iteration, nullptr);
  if (Status st = images.Wait(); !st.ok()) return fail(st);
  // Report every OUTPUT port's final value, including ones produced by earlier runs.
  for (const Stage& stage : stages) {
    for (const PreparedWorkflow& wf : stage.workflows) {
      for (const graph::Port& port : wf.ports.outputs) {
        if (result.outputs.count(port.unique_id)) continue;
        auto value = context_.Get(port.unique_id);
        if (value.ok()) result.outputs[port.unique_id] = std::move(value).value();
      }
    }
  }
  emit({{"event", "run_done"}, {"iterations_completed", result.iterations_completed},
        {"stopped_by_until", result.stopped_by_until}});
  return result;
}

}  // namespace discomfort::engine
