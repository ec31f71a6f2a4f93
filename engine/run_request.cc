#include "engine/run_request.h"

#include <filesystem>

#include <spdlog/spdlog.h>

#include "engine/checkpoint.h"
#include "engine/image_io.h"
#include "graph/workflow.h"

namespace discomfort::engine {
namespace {

using nlohmann::json;

bool EndsWith(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string Resolve(const std::string& path, const std::string& base_dir) {
  std::filesystem::path p = path;
  if (p.is_relative() && !base_dir.empty()) p = std::filesystem::path(base_dir) / p;
  return p.lexically_normal().string();
}

Result<storage::Value> LoadInputFile(const std::string& path, storage::FileSystem& fs) {
  std::string lower = path;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (EndsWith(lower, ".png")) {
    DISCOMFORT_ASSIGN_OR_RETURN(at::Tensor image, ReadPngAsImage(path, &fs));
    return storage::Value::Tensor(image);
  }
  if (EndsWith(lower, ".json")) {
    auto text = fs.ReadFile(path);
    if (!text.ok())
      return Status(text.status().code(), "cannot read " + path + ": " + text.status().message());
    DISCOMFORT_ASSIGN_OR_RETURN(json value, graph::ParseJsonText(*text, path));
    return storage::Value::Json(std::move(value));
  }
  return Status(ErrorCode::kInvalidArgument,
                "@FILE takes a .png image or a .json file, not " + path);
}

// Port types come from the node definitions; without them ports are untyped (and a warning says
// so once), since a run without a live ComfyUI (tests, a fake executor) has none.
std::shared_ptr<const json> PortTypes(WorkflowResolver& resolver) {
  auto info = resolver.ObjectInfo();
  if (info.ok()) return *info;
  if (info.status().code() != ErrorCode::kInvalidArgument) {
    spdlog::warn("[discomfort] no node definitions, port types are not checked: {}",
                 info.status().ToString());
  }
  return nullptr;
}

Status SetPlanLocation(Status st, const std::string& plan_name) {
  if (st.where().workflow.empty()) st.where().workflow = plan_name;
  return st;
}

}  // namespace

std::string WorkflowSpec::DisplayName() const {
  if (!name.empty()) return name;
  return std::filesystem::path(path).filename().string();
}

Result<storage::Value> ParseInputText(const std::string& text, const std::string& base_dir,
                                      storage::FileSystem& fs) {
  if (!text.empty() && text[0] == '@') return LoadInputFile(Resolve(text.substr(1), base_dir), fs);
  json literal = json::parse(text, nullptr, false);
  if (!literal.is_discarded()) return storage::Value::Json(std::move(literal));
  return storage::Value::Json(text);  // a bare word is a string
}

Result<storage::Value> ParseInputJson(const json& value, const std::string& base_dir,
                                      storage::FileSystem& fs) {
  if (value.is_string()) {
    const std::string& text = value.get_ref<const std::string&>();
    if (!text.empty() && text[0] == '@')
      return LoadInputFile(Resolve(text.substr(1), base_dir), fs);
  }
  return storage::Value::Json(value);
}

Status PutSetValues(storage::Context& context, const std::vector<std::string>& items,
                    storage::FileSystem& fs) {
  for (const std::string& item : items) {
    const auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Status(ErrorCode::kInvalidArgument, "--set takes unique_id=VALUE, got '" + item + "'");
    }
    const std::string key = item.substr(0, eq);
    auto value = ParseInputText(item.substr(eq + 1), "", fs);
    Status st = value.ok() ? context.Put(key, std::move(value).value()) : value.TakeStatus();
    if (!st.ok()) {
      st.where().port = key;
      return st;
    }
  }
  return Status::Ok();
}

Result<std::vector<PreparedWorkflow>> PrepareWorkflows(const std::vector<WorkflowSpec>& workflows,
                                                       WorkflowResolver& resolver,
                                                       size_t first_index) {
  if (workflows.empty()) return Status(ErrorCode::kInvalidArgument, "no workflows given");
  const std::shared_ptr<const json> types = PortTypes(resolver);
  std::vector<PreparedWorkflow> prepared;
  for (size_t i = 0; i < workflows.size(); ++i) {
    const WorkflowSpec& spec = workflows[i];
    const std::string name = spec.DisplayName();
    auto prompt =
        spec.document ? resolver.ToApi(*spec.document, name) : resolver.LoadApi(spec.path);
    if (!prompt.ok()) return prompt.TakeStatus();
    DISCOMFORT_ASSIGN_OR_RETURN(
        PreparedWorkflow wf,
        PrepareWorkflow({name, std::move(prompt).value()}, first_index + i, types.get()));
    prepared.push_back(std::move(wf));
  }
  return prepared;
}

Result<PreparedRun> PrepareRun(const RunRequest& request, WorkflowResolver& resolver,
                               storage::Context& context) {
  const bool has_plan = request.plan.has_value() || !request.plan_path.empty();
  if (has_plan == !request.workflows.empty()) {
    return Status(ErrorCode::kInvalidArgument, "give workflow files or a loop plan (not both)");
  }
  storage::FileSystem& fs = resolver.fs();
  PreparedRun run;
  LoopOptions& options = run.options;
  options.fs = &fs;
  if (has_plan) {
    run.from_plan = true;
    const std::string plan_name = request.plan_path.empty() ? "plan" : request.plan_path;
    json document;
    if (request.plan) {
      document = *request.plan;
    } else {
      DISCOMFORT_ASSIGN_OR_RETURN(document, resolver.ReadJson(request.plan_path));
    }
    std::string base = request.plan_base_dir;
    if (base.empty() && !request.plan_path.empty()) {
      base = std::filesystem::path(request.plan_path).parent_path().string();
    }
    auto plan = ParseLoopPlan(document, base);
    if (!plan.ok()) return SetPlanLocation(plan.TakeStatus(), plan_name);
    const std::shared_ptr<const json> types = PortTypes(resolver);
    auto stages = PrepareStages(
        *plan, [&resolver](const std::string& path) { return resolver.LoadApi(path); },
        types.get());
    if (!stages.ok()) return stages.TakeStatus();
    run.stages = std::move(stages).value();
    if (request.seed_inputs) {
      for (const auto& [key, value] : plan->inputs.items()) {
        auto parsed = ParseInputJson(value, base, fs);
        Status st = parsed.ok() ? context.Put(key, std::move(parsed).value()) : parsed.TakeStatus();
        if (!st.ok()) {
          st.where().port = key;
          st.where().json_pointer = "/inputs/" + key;
          return SetPlanLocation(st, plan_name);
        }
      }
    }
    options.iterations = plan->max_iterations;
    if (plan->until) options.until = *plan->until;
    options.iteration_timeout = plan->iteration_timeout;
    options.interrupt_grace = plan->interrupt_grace;
    if (plan->max_vram_gb && !request.max_vram_gb)
      DISCOMFORT_RETURN_IF_ERROR(context.SetDeviceBudget(plan->max_vram_gb));
  } else {
    Stage stage;
    stage.name = "main";
    DISCOMFORT_ASSIGN_OR_RETURN(stage.workflows, PrepareWorkflows(request.workflows, resolver));
    run.stages.push_back(std::move(stage));
    options.iterations = 1;
  }
  if (request.iterations) options.iterations = *request.iterations;
  if (!request.until.empty()) {
    DISCOMFORT_ASSIGN_OR_RETURN(Condition until, Condition::Parse(request.until));
    options.until = std::move(until);
  }
  if (request.until_condition) options.until = request.until_condition;
  if (request.iteration_timeout) options.iteration_timeout = *request.iteration_timeout;
  if (request.interrupt_grace) options.interrupt_grace = *request.interrupt_grace;
  if (request.save_every) options.save_every = *request.save_every;
  if (request.max_vram_gb) DISCOMFORT_RETURN_IF_ERROR(context.SetDeviceBudget(request.max_vram_gb));
  options.output_dir = request.output_dir;
  options.exact_executor = request.exact_executor;
  if (request.checkpoint_every < 0)
    return Status(ErrorCode::kInvalidArgument, "checkpoint_every must be >= 0");
  options.checkpoint_every = request.checkpoint_every;
  options.checkpoint_dir = request.checkpoint_dir;
  options.checkpoint_manifest = request.checkpoint_manifest;

  if (!request.resume_from.empty()) {
    DISCOMFORT_ASSIGN_OR_RETURN(Checkpoint checkpoint,
                                LoadCheckpoint(request.resume_from, context, &fs));
    options.first_iteration = checkpoint.next_iteration;
  } else if (request.seed_inputs) {
    DISCOMFORT_RETURN_IF_ERROR(PutSetValues(context, request.set_values, fs));
  }
  if (!request.trace_path.empty()) {
    DISCOMFORT_ASSIGN_OR_RETURN(run.trace, TraceSession::Open(request.trace_path, &context, &fs));
    options.trace = run.trace->writer();
  }
  return run;
}

Result<PreparedSweep> PrepareSweep(const SweepRequest& request, WorkflowResolver& resolver,
                                   storage::Context& parent) {
  const int sources = (!request.grid.empty()) + (!request.images.empty()) +
                      (!request.images_dir.empty()) + (!request.points.empty());
  if (sources != 1) {
    return Status(ErrorCode::kInvalidArgument,
                  "a sweep takes a grid (key=VALUES) or images (one of them)");
  }
  if (request.options.iterations_per_point < 1) {
    return Status(ErrorCode::kInvalidArgument, "iterations per point must be >= 1");
  }
  if (request.options.max_in_flight < 1)
    return Status(ErrorCode::kInvalidArgument, "max_in_flight must be >= 1");
  for (const GridAxis& axis : request.grid) {
    if (axis.values.empty()) {
      return Status(ErrorCode::kInvalidArgument,
                    "grid axis '" + axis.key + "' needs a non-empty list of values");
    }
  }
  PreparedSweep sweep;
  sweep.options = request.options;
  if (sweep.options.fs == nullptr) sweep.options.fs = &resolver.fs();
  std::vector<std::string> images = request.images;
  if (!request.images_dir.empty()) {
    DISCOMFORT_ASSIGN_OR_RETURN(images, ListImages(request.images_dir, sweep.options.fs));
  }
  if (!request.points.empty()) {
    for (const SweepPoint& point : request.points) {
      if (!request.shard || request.shard->Contains(point.index)) sweep.points.push_back(point);
    }
  } else {
    sweep.points = MakeSweepPoints(request.grid, images, request.shard);
  }
  DISCOMFORT_ASSIGN_OR_RETURN(sweep.workflows, PrepareWorkflows(request.workflows, resolver));
  DISCOMFORT_RETURN_IF_ERROR(PutSetValues(parent, request.set_values, *sweep.options.fs));
  if (!request.trace_path.empty()) {
    DISCOMFORT_ASSIGN_OR_RETURN(sweep.trace,
                                TraceSession::Open(request.trace_path, nullptr, sweep.options.fs));
    sweep.options.trace = sweep.trace->writer();
  }
  return sweep;
}

}  // namespace discomfort::engine
