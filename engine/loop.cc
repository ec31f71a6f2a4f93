#include "engine/loop.h"

#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>

#include <spdlog/spdlog.h>
#include <tbb/task_group.h>

#include "engine/image_io.h"

namespace discomfort::engine {
namespace {

// Versions for values not yet committed: distinct from context versions and from each other
// across iterations and runs, so a loader's cache key changes whenever its value does.
std::atomic<uint64_t> g_pending_version{uint64_t{1} << 62};

// Values produced in the current iteration, visible to later workflows of that iteration,
// committed to the context only when the whole iteration succeeded.
struct PendingValue {
  storage::Value value;
  uint64_t version = 0;
};

std::string SanitizeForFileName(const std::string& name) {
  std::string out;
  for (char c : name) out += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') ? c : '_';
  return out.empty() ? "port" : out;
}

}  // namespace

Result<PreparedWorkflow> PrepareWorkflow(const Workflow& workflow, size_t index,
                                         const nlohmann::json* object_info) {
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
  prepared.executable_prompt = std::move(rewritten).value();
  return prepared;
}

LoopRunner::LoopRunner(Executor& executor, storage::Context& context)
    : executor_(executor), context_(context) {}

Result<LoopResult> LoopRunner::Run(const std::vector<PreparedWorkflow>& workflows,
                                   const LoopOptions& options) {
  if (options.iterations < 0) {
    return Status(ErrorCode::kInvalidArgument, "iterations must be >= 0");
  }
  if (!options.output_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(options.output_dir, ec);
    if (ec) {
      return Status(ErrorCode::kIO, "cannot create output folder " + options.output_dir + ": " + ec.message());
    }
  }
  LoopResult result;
  // PNG encoding of iteration N overlaps the execution of iteration N+1.
  tbb::task_group encoders;
  std::mutex encode_mu;
  Status encode_status;
  auto wait_encoders = [&]() -> Status {
    encoders.wait();
    std::lock_guard<std::mutex> lock(encode_mu);
    return encode_status;
  };

  for (int it = 0; it < options.iterations; ++it) {
    const auto started = std::chrono::steady_clock::now();
    DISCOMFORT_RETURN_IF_ERROR(context_.Put(kIterationKey, storage::Value::Json(it)));
    DISCOMFORT_RETURN_IF_ERROR(context_.Put(kIterationsKey, storage::Value::Json(options.iterations)));
    std::map<std::string, PendingValue> pending;
    IterationReport report;
    report.iteration = it;

    for (const PreparedWorkflow& wf : workflows) {
      if (options.cancel != nullptr && options.cancel->load()) {
        (void)wait_encoders();
        ErrorLocation where;
        where.iteration = it;
        where.workflow = wf.name;
        return Status(ErrorCode::kCancelled, "cancelled; the context holds the last finished iteration", where);
      }
      ExecutionRequest request;
      request.slot = wf.slot;
      request.workflow_name = wf.name;
      request.prompt = wf.executable_prompt;
      for (const graph::Port& port : wf.ports.inputs) {
        auto p = pending.find(port.unique_id);
        if (p != pending.end()) {
          request.inputs[port.unique_id] = p->second.value;
          request.versions[port.unique_id] = p->second.version;
          continue;
        }
        auto value = context_.Get(port.unique_id);
        if (!value.ok()) {
          ErrorLocation where;
          where.iteration = it;
          where.workflow = wf.name;
          where.node_id = port.node_id;
          where.class_type = graph::kPortClass;
          where.port = port.unique_id;
          (void)wait_encoders();
          return Status(ErrorCode::kNotFound,
                        "INPUT port '" + port.unique_id +
                            "' has no value: pass one (CLI --set " + port.unique_id +
                            "=VALUE, or inputs= in the API) or produce it by an OUTPUT port of an "
                            "earlier workflow",
                        where);
        }
        request.inputs[port.unique_id] = std::move(value).value();
        request.versions[port.unique_id] = context_.Version(port.unique_id);
      }

      auto outcome = executor_.Execute(request);
      if (!outcome.ok()) {
        (void)wait_encoders();
        Status st = outcome.TakeStatus();
        st.where().iteration = it;
        if (st.where().workflow.empty()) st.where().workflow = wf.name;
        return st;
      }
      for (auto& [uid, value] : outcome->outputs) pending[uid] = {value, ++g_pending_version};
      for (const graph::Port& port : wf.ports.outputs) {
        if (!outcome->outputs.count(port.unique_id)) {
          spdlog::warn("[discomfort] iteration {}: OUTPUT port '{}' (node {}) of {} produced no value",
                       it, port.unique_id, port.node_id, wf.name);
        }
      }
      report.node_times.insert(report.node_times.end(), outcome->node_times.begin(),
                               outcome->node_times.end());
    }

    // The iteration succeeded: commit its outputs.
    for (auto& [uid, pv] : pending) {
      DISCOMFORT_RETURN_IF_ERROR(context_.Put(uid, pv.value));
      result.outputs[uid] = pv.value;
    }
    DISCOMFORT_RETURN_IF_ERROR(wait_encoders());
    if (!options.output_dir.empty()) {
      for (auto& [uid, pv] : pending) {
        if (!pv.value.is_tensor() || !LooksLikeImage(pv.value.tensor())) continue;
        char index[16];
        std::snprintf(index, sizeof(index), "%05d", it);
        const std::string stem =
            (std::filesystem::path(options.output_dir) / (SanitizeForFileName(uid) + "_" + index)).string();
        // Expected names, known now; the encode itself runs in the background.
        const int64_t batch = pv.value.tensor().dim() == 4 || pv.value.tensor().dim() == 3
                                  ? pv.value.tensor().size(0) : 1;
        std::vector<std::string> names;
        for (int64_t b = 0; b < batch; ++b) {
          names.push_back(stem + (batch == 1 ? std::string() : "_" + std::to_string(b)) + ".png");
        }
        report.files.insert(report.files.end(), names.begin(), names.end());
        result.files[uid] = names;
        at::Tensor tensor = pv.value.tensor();
        encoders.run([tensor, stem, &encode_mu, &encode_status] {
          try {
            auto written = WriteImagePngs(tensor, stem);
            if (!written.ok()) {
              std::lock_guard<std::mutex> lock(encode_mu);
              if (encode_status.ok()) encode_status = written.status();
            }
          } catch (const std::exception& e) {  // no exception may escape a TBB task
            std::lock_guard<std::mutex> lock(encode_mu);
            if (encode_status.ok()) encode_status = Status(ErrorCode::kInternal, e.what());
          }
        });
      }
    }
    report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    result.iterations_completed = it + 1;
    if (options.on_iteration) options.on_iteration(report);
    result.reports.push_back(std::move(report));
  }
  DISCOMFORT_RETURN_IF_ERROR(wait_encoders());
  // Outputs that exist in the context from earlier runs but were not produced now are still
  // "final values" of OUTPUT ports: report every OUTPUT port of the workflows.
  for (const PreparedWorkflow& wf : workflows) {
    for (const graph::Port& port : wf.ports.outputs) {
      if (result.outputs.count(port.unique_id)) continue;
      auto value = context_.Get(port.unique_id);
      if (value.ok()) result.outputs[port.unique_id] = std::move(value).value();
    }
  }
  return result;
}

}  // namespace discomfort::engine
