#include "engine/plan.h"

#include <filesystem>
#include <set>

namespace discomfort::engine {
namespace {

using nlohmann::json;

Status PlanError(const std::string& pointer, const std::string& message) {
  ErrorLocation where;
  where.json_pointer = pointer;
  return Status(ErrorCode::kInvalidArgument, "loop plan: " + message, where);
}

}  // namespace

Result<LoopPlan> ParseLoopPlan(const json& doc, const std::string& base_dir) {
  if (!doc.is_object()) return PlanError("", "must be a JSON object");
  static const std::set<std::string> kKeys = {
      "max_iterations",    "until",           "inputs",     "stages",
      "iteration_timeout", "interrupt_grace", "max_vram_gb"};
  for (const auto& [key, _] : doc.items()) {
    if (!kKeys.count(key)) {
      return PlanError("/" + key,
                       "unknown key '" + key +
                           "' (expected max_iterations, until, inputs, stages, iteration_timeout, "
                           "interrupt_grace, max_vram_gb)");
    }
  }
  LoopPlan plan;
  if (!doc.contains("max_iterations") || !doc["max_iterations"].is_number_integer() ||
      doc["max_iterations"].get<int64_t>() < 0 ||
      doc["max_iterations"].get<int64_t>() > 100000000) {
    return PlanError("/max_iterations", "max_iterations must be an integer from 0 to 100000000");
  }
  plan.max_iterations = doc["max_iterations"].get<int>();
  if (doc.contains("until")) {
    if (!doc["until"].is_string()) return PlanError("/until", "until must be a string expression");
    auto until = Condition::Parse(doc["until"].get<std::string>());
    if (!until.ok()) return PlanError("/until", until.status().message());
    plan.until = std::move(until).value();
  }
  for (const char* key : {"iteration_timeout", "interrupt_grace"}) {
    if (!doc.contains(key)) continue;
    // A week at most: beyond that a limit is a typo, and huge values overflow the clock.
    if (!doc[key].is_number() || !(doc[key].get<double>() >= 0) ||
        doc[key].get<double>() > 604800) {
      return PlanError(std::string("/") + key,
                       std::string(key) + " must be a number of seconds from 0 to 604800");
    }
    (std::string(key) == "iteration_timeout" ? plan.iteration_timeout : plan.interrupt_grace) =
        doc[key].get<double>();
  }
  if (doc.contains("max_vram_gb")) {
    if (!doc["max_vram_gb"].is_number() || !(doc["max_vram_gb"].get<double>() >= 0)) {
      return PlanError("/max_vram_gb", "max_vram_gb must be a number of GiB >= 0");
    }
    plan.max_vram_gb = doc["max_vram_gb"].get<double>();
  }
  if (doc.contains("inputs")) {
    if (!doc["inputs"].is_object())
      return PlanError("/inputs", "inputs must be an object of unique_id: value");
    plan.inputs = doc["inputs"];
  }
  if (!doc.contains("stages") || !doc["stages"].is_array() || doc["stages"].empty()) {
    return PlanError("/stages", "stages must be a non-empty array");
  }
  std::set<std::string> names;
  for (size_t i = 0; i < doc["stages"].size(); ++i) {
    const json& s = doc["stages"][i];
    const std::string at = "/stages/" + std::to_string(i);
    if (!s.is_object()) return PlanError(at, "a stage must be an object");
    StageSpec stage;
    // json::value() throws on a present key of another type: check types first.
    if (s.contains("name") && !s["name"].is_string())
      return PlanError(at + "/name", "name must be a string");
    stage.name = s.value("name", "stage" + std::to_string(i));
    if (!names.insert(stage.name).second)
      return PlanError(at + "/name", "duplicate stage name '" + stage.name + "'");
    if (!s.contains("workflows") || !s["workflows"].is_array() || s["workflows"].empty()) {
      return PlanError(at + "/workflows", "workflows must be a non-empty array of file paths");
    }
    for (size_t w = 0; w < s["workflows"].size(); ++w) {
      if (!s["workflows"][w].is_string())
        return PlanError(at + "/workflows/" + std::to_string(w), "expected a file path");
      std::filesystem::path p = s["workflows"][w].get<std::string>();
      if (p.is_relative() && !base_dir.empty()) p = std::filesystem::path(base_dir) / p;
      stage.workflows.push_back(p.lexically_normal().string());
    }
    if (s.contains("when")) {
      if (!s["when"].is_string())
        return PlanError(at + "/when", "when must be a string expression");
      auto when = Condition::Parse(s["when"].get<std::string>());
      if (!when.ok()) return PlanError(at + "/when", when.status().message());
      stage.when = std::move(when).value();
    }
    if (s.contains("on_error") && !s["on_error"].is_string()) {
      return PlanError(at + "/on_error", "on_error must be \"stop\", \"skip\" or \"retry\"");
    }
    const std::string policy = s.value("on_error", "stop");
    if (policy == "stop") {
      stage.on_error = ErrorPolicy::kStop;
    } else if (policy == "skip") {
      stage.on_error = ErrorPolicy::kSkip;
    } else if (policy == "retry") {
      stage.on_error = ErrorPolicy::kRetry;
    } else {
      return PlanError(at + "/on_error",
                       "on_error must be \"stop\", \"skip\" or \"retry\", not \"" + policy + "\"");
    }
    if (s.contains("retries")) {
      if (!s["retries"].is_number_integer() || s["retries"].get<int64_t>() < 0 ||
          s["retries"].get<int64_t>() > 1000) {
        return PlanError(at + "/retries", "retries must be an integer from 0 to 1000");
      }
      stage.retries = s["retries"].get<int>();
    } else if (stage.on_error == ErrorPolicy::kRetry) {
      stage.retries = 1;
    }
    plan.stages.push_back(std::move(stage));
  }
  return plan;
}

json LoopPlanToJson(const LoopPlan& plan) {
  json j = {
      {"max_iterations", plan.max_iterations}, {"inputs", plan.inputs}, {"stages", json::array()}};
  if (plan.until) j["until"] = plan.until->text();
  if (plan.iteration_timeout > 0) j["iteration_timeout"] = plan.iteration_timeout;
  if (plan.interrupt_grace != LoopOptions().interrupt_grace)
    j["interrupt_grace"] = plan.interrupt_grace;
  for (const StageSpec& s : plan.stages) {
    json stage = {{"name", s.name},
                  {"workflows", s.workflows},
                  {"retries", s.retries},
                  {"on_error", s.on_error == ErrorPolicy::kStop   ? "stop"
                               : s.on_error == ErrorPolicy::kSkip ? "skip"
                                                                  : "retry"}};
    if (s.when) stage["when"] = s.when->text();
    j["stages"].push_back(stage);
  }
  return j;
}

Result<std::vector<Stage>> PrepareStages(const LoopPlan& plan, const WorkflowLoader& load,
                                         const json* object_info) {
  std::vector<Stage> stages;
  size_t index = 0;
  for (const StageSpec& spec : plan.stages) {
    Stage stage;
    stage.name = spec.name;
    stage.on_error = spec.on_error;
    stage.retries = spec.retries;
    stage.when = spec.when;
    for (const std::string& path : spec.workflows) {
      auto prompt = load(path);
      if (!prompt.ok()) {
        Status st = prompt.TakeStatus();
        st.where().stage = spec.name;
        if (st.where().workflow.empty()) st.where().workflow = path;
        return st;
      }
      const std::string name = std::filesystem::path(path).filename().string();
      auto prepared = PrepareWorkflow({name, *prompt}, index++, object_info);
      if (!prepared.ok()) {
        Status st = prepared.TakeStatus();
        st.where().stage = spec.name;
        return st;
      }
      stage.workflows.push_back(std::move(prepared).value());
    }
    stages.push_back(std::move(stage));
  }
  return stages;
}

}  // namespace discomfort::engine
