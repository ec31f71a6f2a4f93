#include "cli/graph_commands.h"

#include <cstdint>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "graph/api_prompt.h"
#include "graph/node_definitions.h"
#include "graph/ui_to_api.h"
#include "graph/workflow.h"
#include "graph/workflow_ops.h"
#include "storage/filesystem.h"

namespace discomfort::cli {
namespace {

using graph::NodeDefinitions;
using nlohmann::json;

constexpr int kFailureExitCode = 2;

struct GraphCommandState {
  ObjectInfoProvider live_object_info;
  int* exit_code = nullptr;

  // Shared option storage for all subcommands (only one runs per invocation).
  std::string workflow;
  std::vector<std::string> workflows;
  std::string object_info;
  std::string out;
  std::string output_uid;
  bool delete_input_ports = false;
  bool delete_output_ports = false;
  bool no_definitions = false;
  uint64_t prompt_seed = 0;
  bool no_dynamic_prompts = false;

  std::optional<NodeDefinitions> defs;

  void Fail(const Status& st) const {
    std::cerr << st.ToString() << "\n";
    *exit_code = kFailureExitCode;
  }

  // Definitions from --object-info, else from the live provider (the embedded ComfyUI).
  Result<const NodeDefinitions*> Definitions() {
    if (defs) return &*defs;
    if (!object_info.empty()) {
      DISCOMFORT_ASSIGN_OR_RETURN(NodeDefinitions loaded, NodeDefinitions::LoadFile(object_info));
      defs = std::move(loaded);
      return &*defs;
    }
    if (!live_object_info) {
      return Status(ErrorCode::kInvalidArgument,
                    "node definitions are needed: pass --object-info FILE");
    }
    DISCOMFORT_ASSIGN_OR_RETURN(json info, live_object_info());
    DISCOMFORT_ASSIGN_OR_RETURN(NodeDefinitions loaded, NodeDefinitions::FromJson(std::move(info)));
    defs = std::move(loaded);
    return &*defs;
  }

  // Definitions only when --object-info names a file (commands that work without them).
  Result<const NodeDefinitions*> OptionalDefinitions() {
    if (object_info.empty()) return static_cast<const NodeDefinitions*>(nullptr);
    return Definitions();
  }
};

std::string BaseName(const std::string& path) {
  return std::filesystem::path(path).filename().string();
}

Status WriteOutput(const json& doc, const std::string& path) {
  const std::string text = doc.dump(2) + "\n";
  if (path.empty() || path == "-") {
    std::cout << text;
    return Status::Ok();
  }
  Status st = storage::WriteWholeFile(*storage::FileSystem::Default(), path, text, /*sync=*/false);
  if (!st.ok()) st.where().workflow = path;
  return st;
}

Result<json> LoadWorkflow(const std::string& path) {
  ErrorLocation where;
  where.workflow = path;
  auto text = storage::FileSystem::Default()->ReadFile(path);
  if (!text.ok())
    return Status(text.status().code(), "cannot read " + path + ": " + text.status().message(),
                  where);
  auto doc = graph::ParseJsonText(*text, path);
  if (!doc.ok()) return doc;
  if (graph::DetectFormat(*doc) == graph::WorkflowFormat::kUnknown) {
    return Status(ErrorCode::kParse,
                  "not a ComfyUI workflow: expected a UI workflow (with 'nodes') or an API prompt",
                  where);
  }
  return doc;
}

// PortSet JSON plus each port's pass-by rule.
json PortsJson(const graph::PortSet& ports) {
  json out = ports.ToJson();
  for (const char* group : {"inputs", "outputs", "passthrus", "unconnected"}) {
    for (json& p : out[group]) p["pass_by"] = graph::PassByForType(p.value("type", "*"));
  }
  return out;
}

Status RunConvert(GraphCommandState& s) {
  DISCOMFORT_ASSIGN_OR_RETURN(json doc, LoadWorkflow(s.workflow));
  const NodeDefinitions* defs = nullptr;
  if (graph::DetectFormat(doc) != graph::WorkflowFormat::kApi) {
    DISCOMFORT_ASSIGN_OR_RETURN(defs, s.Definitions());
  }
  graph::ConvertOptions options;
  options.source_name = s.workflow;
  options.dynamic_prompt_seed = s.prompt_seed;
  options.dynamic_prompts = !s.no_dynamic_prompts;
  DISCOMFORT_ASSIGN_OR_RETURN(json prompt, graph::ToApiPrompt(doc, defs, options));
  return WriteOutput(prompt, s.out);
}

Status RunPorts(GraphCommandState& s) {
  DISCOMFORT_ASSIGN_OR_RETURN(json doc, LoadWorkflow(s.workflow));
  DISCOMFORT_ASSIGN_OR_RETURN(const NodeDefinitions* defs, s.OptionalDefinitions());
  DISCOMFORT_ASSIGN_OR_RETURN(graph::PortSet ports,
                              graph::DiscoverWorkflowPorts(doc, defs, s.workflow));
  return WriteOutput(PortsJson(ports), s.out);
}

Status RunValidate(GraphCommandState& s) {
  DISCOMFORT_ASSIGN_OR_RETURN(json doc, LoadWorkflow(s.workflow));
  const NodeDefinitions* defs = nullptr;
  if (!s.no_definitions) {
    DISCOMFORT_ASSIGN_OR_RETURN(defs, s.Definitions());
  }
  const std::vector<Status> problems = graph::ValidateWorkflow(doc, defs, s.workflow);
  json report = {{"workflow", s.workflow},
                 {"format", graph::WorkflowFormatName(graph::DetectFormat(doc))},
                 {"ok", problems.empty()},
                 {"problems", json::array()}};
  for (const Status& p : problems) report["problems"].push_back(p.ToJson());
  DISCOMFORT_RETURN_IF_ERROR(WriteOutput(report, s.out));
  if (problems.empty()) return Status::Ok();
  for (size_t i = 0; i + 1 < problems.size(); ++i) std::cerr << problems[i].ToString() << "\n";
  Status last = problems.back();
  return last;  // the caller prints the last one and sets the exit code
}

Status RunStitch(GraphCommandState& s) {
  std::vector<json> docs;
  std::vector<std::string> names;
  bool any_ui = false, any_api = false;
  for (const std::string& path : s.workflows) {
    DISCOMFORT_ASSIGN_OR_RETURN(json doc, LoadWorkflow(path));
    const bool api = graph::DetectFormat(doc) == graph::WorkflowFormat::kApi;
    any_api |= api;
    any_ui |= !api;
    docs.push_back(std::move(doc));
    names.push_back(BaseName(path));
  }
  const NodeDefinitions* defs = nullptr;
  if (any_api && any_ui) {
    DISCOMFORT_ASSIGN_OR_RETURN(defs, s.Definitions());  // UI parts are converted to API
  } else {
    DISCOMFORT_ASSIGN_OR_RETURN(defs, s.OptionalDefinitions());
  }
  graph::StitchOptions options;
  options.delete_input_ports = s.delete_input_ports;
  options.delete_output_ports = s.delete_output_ports;
  DISCOMFORT_ASSIGN_OR_RETURN(graph::StitchResult result,
                              graph::StitchWorkflows(docs, options, names, defs));
  DISCOMFORT_RETURN_IF_ERROR(WriteOutput(result.workflow, s.out));
  json summary = PortsJson(result.ports);
  summary["execution_order"] = result.execution_order;
  // With -o the workflow went to a file; the remaining ports go to stdout.
  if (!s.out.empty() && s.out != "-") std::cout << summary.dump(2) << "\n";
  return Status::Ok();
}

Status RunPrune(GraphCommandState& s) {
  DISCOMFORT_ASSIGN_OR_RETURN(json doc, LoadWorkflow(s.workflow));
  DISCOMFORT_ASSIGN_OR_RETURN(const NodeDefinitions* defs, s.OptionalDefinitions());
  DISCOMFORT_ASSIGN_OR_RETURN(json pruned, graph::PruneToOutput(doc, s.output_uid, defs));
  return WriteOutput(pruned, s.out);
}

void AddObjectInfoOption(CLI::App* cmd, GraphCommandState* s) {
  cmd->add_option("--object-info", s->object_info,
                  "node definitions (/object_info JSON) instead of the embedded ComfyUI's")
      ->check(CLI::ExistingFile);
}

}  // namespace

void AddGraphCommands(CLI::App& app, ObjectInfoProvider live_object_info, int* exit_code) {
  auto state = std::make_shared<GraphCommandState>();
  state->live_object_info = std::move(live_object_info);
  state->exit_code = exit_code;
  auto run = [state](Status (*command)(GraphCommandState&)) {
    return [state, command] {
      Status st = command(*state);
      if (!st.ok()) state->Fail(st);
    };
  };

  CLI::App* convert = app.add_subcommand(
      "convert", "Convert a UI workflow to an API prompt (an API prompt is checked and copied)");
  convert->add_option("workflow", state->workflow, "workflow JSON (UI or API format)")
      ->required()
      ->check(CLI::ExistingFile);
  AddObjectInfoOption(convert, state.get());
  convert->add_option("-o,--out", state->out, "output file (default: stdout)");
  convert->add_option("--prompt-seed", state->prompt_seed,
                      "seed for {a|b} dynamic-prompt choices (the web UI picks at random; the "
                      "same seed gives the same prompt)");
  convert->add_flag("--no-dynamic-prompts", state->no_dynamic_prompts,
                    "send text widgets as saved: no comment stripping, no {a|b} choices");
  convert->callback(run(RunConvert));

  CLI::App* ports = app.add_subcommand("ports", "Print a workflow's DiscomfortPorts as JSON");
  ports->add_option("workflow", state->workflow, "workflow JSON (UI or API format)")
      ->required()
      ->check(CLI::ExistingFile);
  AddObjectInfoOption(ports, state.get());
  ports->add_option("-o,--out", state->out, "output file (default: stdout)");
  ports->callback(run(RunPorts));

  CLI::App* validate = app.add_subcommand(
      "validate", "Check a workflow and report every problem found (exit code 2 if any)");
  validate->add_option("workflow", state->workflow, "workflow JSON (UI or API format)")
      ->required()
      ->check(CLI::ExistingFile);
  AddObjectInfoOption(validate, state.get());
  validate->add_flag("--no-definitions", state->no_definitions,
                     "structural checks only, without node definitions");
  validate->add_option("-o,--out", state->out, "report file (default: stdout)");
  validate->callback(run(RunValidate));

  CLI::App* stitch = app.add_subcommand(
      "stitch", "Join workflows: OUTPUT ports feed later INPUT ports with the same unique_id");
  stitch->add_option("workflows", state->workflows, "workflow JSON files, in order")
      ->required()
      ->check(CLI::ExistingFile);
  stitch->add_option("-o,--out", state->out, "stitched workflow file (default: stdout)");
  stitch->add_flag("--delete-input-ports", state->delete_input_ports,
                   "remove the INPUT ports left after stitching");
  stitch->add_flag("--delete-output-ports", state->delete_output_ports,
                   "remove the OUTPUT ports left after stitching");
  AddObjectInfoOption(stitch, state.get());
  stitch->callback(run(RunStitch));

  CLI::App* prune = app.add_subcommand(
      "prune", "Keep only the nodes that produce one OUTPUT port (the recipe for that value)");
  prune->add_option("workflow", state->workflow, "workflow JSON (UI or API format)")
      ->required()
      ->check(CLI::ExistingFile);
  prune->add_option("--output", state->output_uid, "unique_id of the OUTPUT port")->required();
  prune->add_option("-o,--out", state->out, "output file (default: stdout)");
  AddObjectInfoOption(prune, state.get());
  prune->callback(run(RunPrune));
}

}  // namespace discomfort::cli
