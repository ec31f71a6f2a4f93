// The discomfort command line: run workflows in loops in-process, dump node definitions,
// and the workflow toolkit commands.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "bridge/comfy_bridge.h"
#include "cli/workflow_loading.h"
#include "engine/image_io.h"
#include "engine/loop.h"
#include "storage/context.h"

namespace {

using discomfort::ErrorCode;
using discomfort::Result;
using discomfort::Status;
using nlohmann::json;

std::atomic<bool> g_cancel{false};
extern "C" void OnSignal(int) { g_cancel.store(true); }

int Fail(const Status& st) {
  std::cerr << "[discomfort] " << st.ToString() << "\n";
  if (!st.traceback().empty() && spdlog::get_level() <= spdlog::level::debug) std::cerr << st.traceback();
  return st.code() == ErrorCode::kCancelled ? 130 : 1;
}

struct CommonOptions {
  std::string comfyui;
  std::string work_dir;
  bool cpu = false;
  bool verbose = false;
};

void AddCommonOptions(CLI::App* cmd, CommonOptions* o) {
  cmd->add_option("--comfyui", o->comfyui, "ComfyUI checkout (default: $COMFYUI_PATH, the ComfyUI holding this repo, ~/ComfyUI)");
  cmd->add_option("--work-dir", o->work_dir, "folder for ComfyUI's output/temp/input/user folders (default: a per-process temp folder)");
  cmd->add_flag("--cpu", o->cpu, "run ComfyUI on the CPU even when a GPU is present");
  cmd->add_flag("-v,--verbose", o->verbose, "show ComfyUI's own log and debug messages");
}

Result<std::unique_ptr<discomfort::bridge::ComfyBridge>> StartBridge(const CommonOptions& o) {
  discomfort::bridge::BridgeOptions options;
  options.comfyui_path = o.comfyui;
  options.work_dir = o.work_dir;
  if (o.cpu) options.force_cpu = true;
  options.verbose = o.verbose;
  return discomfort::bridge::ComfyBridge::Start(options);
}

// --set uid=VALUE: JSON literal (42, 1.5, true, "text", [1,2]), @image.png, @values.json, or a
// plain string.
Result<discomfort::storage::Value> ParseSetValue(const std::string& text) {
  if (!text.empty() && text[0] == '@') {
    const std::string path = text.substr(1);
    auto ends_with = [&path](const std::string& suffix) {
      return path.size() >= suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    if (ends_with(".png") || ends_with(".PNG")) {
      DISCOMFORT_ASSIGN_OR_RETURN(at::Tensor image, discomfort::engine::ReadPngAsImage(path));
      return discomfort::storage::Value::Tensor(image);
    }
    if (ends_with(".json")) {
      std::ifstream in(path);
      if (!in) return Status(ErrorCode::kNotFound, "cannot open " + path);
      json j = json::parse(in, nullptr, false);
      if (j.is_discarded()) return Status(ErrorCode::kParse, "malformed JSON in " + path);
      return discomfort::storage::Value::Json(j);
    }
    return Status(ErrorCode::kInvalidArgument, "--set ...=@FILE takes a .png image or a .json file, not " + path);
  }
  json j = json::parse(text, nullptr, false);
  if (!j.is_discarded()) return discomfort::storage::Value::Json(j);
  return discomfort::storage::Value::Json(text);  // a bare word is a string
}

json DescribeOutput(const discomfort::storage::Value& value, const std::vector<std::string>& files) {
  using discomfort::storage::ValueKind;
  switch (value.kind()) {
    case ValueKind::kJson: return value.json();
    case ValueKind::kTensor: {
      const at::Tensor& t = value.tensor();
      json shape = json::array();
      for (int64_t i = 0; i < t.dim(); ++i) shape.push_back(t.size(i));
      return {{"type", "tensor"}, {"dtype", std::string(c10::toString(t.scalar_type()))},
              {"shape", shape}, {"device", t.device().str()}, {"files", files}};
    }
    case ValueKind::kHostObject:
      return {{"type", "object"}, {"python_type", value.host()->TypeName()}};
    case ValueKind::kRecipe: return {{"type", "recipe"}, {"nodes", value.json().size()}};
    case ValueKind::kNone: return nullptr;
  }
  return nullptr;
}

struct RunOptions {
  CommonOptions common;
  std::vector<std::string> workflows;
  int iterations = 1;
  std::vector<std::string> sets;
  std::string out_dir;
  bool json_summary = false;
};

int RunCommand(const RunOptions& o) {
  auto bridge = StartBridge(o.common);
  if (!bridge.ok()) return Fail(bridge.status());
  discomfort::cli::ObjectInfoCache object_info([&bridge] { return (*bridge)->ObjectInfo(); });

  std::vector<discomfort::engine::PreparedWorkflow> prepared;
  for (size_t i = 0; i < o.workflows.size(); ++i) {
    auto prompt = discomfort::cli::LoadWorkflowAsApi(o.workflows[i], object_info);
    if (!prompt.ok()) return Fail(prompt.status());
    discomfort::engine::Workflow wf{std::filesystem::path(o.workflows[i]).filename().string(), *prompt};
    auto p = discomfort::engine::PrepareWorkflow(wf, i);
    if (!p.ok()) return Fail(p.status());
    prepared.push_back(std::move(p).value());
  }

  discomfort::storage::Context context;
  for (const std::string& set : o.sets) {
    const auto eq = set.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Fail(Status(ErrorCode::kInvalidArgument, "--set takes unique_id=VALUE, got '" + set + "'"));
    }
    auto value = ParseSetValue(set.substr(eq + 1));
    if (!value.ok()) {
      Status st = value.TakeStatus();
      st.where().port = set.substr(0, eq);
      return Fail(st);
    }
    if (Status st = context.Put(set.substr(0, eq), *value); !st.ok()) return Fail(st);
  }

  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  std::atomic<bool> finished{false};
  // Signal handlers cannot call into Python; this thread turns the flag into an interrupt.
  std::thread watcher([&] {
    while (!finished.load()) {
      if (g_cancel.load()) {
        (*bridge)->Interrupt();
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });

  std::ostream& progress = o.json_summary ? std::cerr : std::cout;
  discomfort::engine::LoopOptions loop;
  loop.iterations = o.iterations;
  loop.output_dir = o.out_dir;
  loop.cancel = &g_cancel;
  loop.on_iteration = [&](const discomfort::engine::IterationReport& r) {
    char line[160];
    std::snprintf(line, sizeof(line), "[discomfort] iteration %d/%d: %.3f s", r.iteration + 1, o.iterations, r.seconds);
    progress << line;
    if (!r.files.empty()) progress << " (" << r.files.size() << " image" << (r.files.size() == 1 ? "" : "s") << ")";
    progress << std::endl;
  };
  discomfort::engine::LoopRunner runner(**bridge, context);
  auto result = runner.Run(prepared, loop);
  finished.store(true);
  watcher.join();
  if (!result.ok()) return Fail(result.status());

  if (o.json_summary) {
    json summary = json::object();
    for (const auto& [uid, value] : result->outputs) {
      auto files = result->files.count(uid) ? result->files.at(uid) : std::vector<std::string>{};
      summary[uid] = DescribeOutput(value, files);
    }
    std::cout << summary.dump() << std::endl;
  }
  return 0;
}

int ObjectInfoCommand(const CommonOptions& common, const std::string& out_path) {
  auto bridge = StartBridge(common);
  if (!bridge.ok()) return Fail(bridge.status());
  auto info = (*bridge)->ObjectInfo();
  if (!info.ok()) return Fail(info.status());
  const std::string text = info->dump(1);
  if (out_path.empty() || out_path == "-") {
    std::cout << text << std::endl;
  } else {
    std::ofstream out(out_path);
    out << text << "\n";
    if (!out) return Fail(Status(ErrorCode::kIO, "cannot write " + out_path));
    std::cerr << "[discomfort] " << info->size() << " node definitions written to " << out_path << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_pattern("%v");
  CLI::App app{"Discomfort: run ComfyUI workflows in loops, in-process"};
  app.require_subcommand(1);
  int exit_code = 0;

  RunOptions run;
  CLI::App* run_cmd = app.add_subcommand("run", "run API- or UI-format workflows for N iterations");
  run_cmd->add_option("workflows", run.workflows, "workflow JSON files, run in order each iteration")->required();
  run_cmd->add_option("-n,--iterations", run.iterations, "number of iterations")->check(CLI::NonNegativeNumber);
  run_cmd->add_option("--set", run.sets, "unique_id=VALUE put into the context first (JSON literal, @image.png, @file.json, or text)");
  run_cmd->add_option("-o,--out", run.out_dir, "folder for IMAGE outputs, one PNG per iteration");
  run_cmd->add_flag("--json", run.json_summary, "print the final OUTPUT values as one JSON object last on stdout");
  AddCommonOptions(run_cmd, &run.common);
  run_cmd->callback([&] { exit_code = RunCommand(run); });

  CommonOptions oi_common;
  std::string oi_out;
  CLI::App* oi_cmd = app.add_subcommand("object-info", "dump node definitions (/object_info shape) from the embedded ComfyUI");
  oi_cmd->add_option("-o,--out", oi_out, "output file (default stdout)");
  AddCommonOptions(oi_cmd, &oi_common);
  oi_cmd->callback([&] { exit_code = ObjectInfoCommand(oi_common, oi_out); });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  std::cout.flush();
  std::fflush(nullptr);
  // Skip static destructors: the embedded interpreter and torch keep threads that must not be
  // torn down under them.
  std::_Exit(exit_code);
}
