// The discomfort command line: run workflows in loops in-process, dump node definitions,
// and the workflow toolkit commands.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <limits>
#include <sstream>
#include <optional>
#include <thread>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "bridge/comfy_bridge.h"
#include "cli/graph_commands.h"
#include "cli/workflow_loading.h"
#include "engine/image_io.h"
#include "engine/loop.h"
#include "engine/plan.h"
#include "engine/sweep.h"
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
  std::vector<std::string> nodes;
  bool cpu = false;
  bool verbose = false;
};

void AddCommonOptions(CLI::App* cmd, CommonOptions* o) {
  cmd->add_option("--comfyui", o->comfyui, "ComfyUI checkout (default: $COMFYUI_PATH, the ComfyUI holding this repo, ~/ComfyUI)");
  cmd->add_option("--work-dir", o->work_dir, "folder for ComfyUI's output/temp/input/user folders (default: a per-process temp folder)");
  cmd->add_option("--nodes", o->nodes, "extra custom-node files or packages to load (repeatable)");
  cmd->add_flag("--cpu", o->cpu, "run ComfyUI on the CPU even when a GPU is present");
  cmd->add_flag("-v,--verbose", o->verbose, "show ComfyUI's own log and debug messages");
}

// ComfyUI's output/temp/input folders when --work-dir is not given; removed at exit.
std::string g_temp_work_dir;

// Removes the per-process work folders (discomfort-<pid>) that killed runs (SIGKILL, OOM killer)
// left in the temp folder; found by tests/reliability/faults.py (kill9).
void ReclaimDeadWorkDirs(const std::filesystem::path& root) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(root, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("discomfort-", 0) != 0 || name.size() == 11 ||
        name.find_first_not_of("0123456789", 11) != std::string::npos || name.size() > 20) {
      continue;
    }
    const int pid = std::stoi(name.substr(11));
    if (pid <= 0 || pid == ::getpid() || discomfort::storage::FileSystem::Default()->ProcessAlive(pid)) continue;
    std::error_code ignored;
    std::filesystem::remove_all(entry.path(), ignored);
  }
}

Result<std::unique_ptr<discomfort::bridge::ComfyBridge>> StartBridge(const CommonOptions& o) {
  discomfort::bridge::BridgeOptions options;
  options.comfyui_path = o.comfyui;
  options.work_dir = o.work_dir;
  if (options.work_dir.empty()) {
    ReclaimDeadWorkDirs(std::filesystem::temp_directory_path());
    g_temp_work_dir = (std::filesystem::temp_directory_path() / ("discomfort-" + std::to_string(::getpid()))).string();
    options.work_dir = g_temp_work_dir;
  }
  if (o.cpu) options.force_cpu = true;
  options.verbose = o.verbose;
  options.extra_node_paths = o.nodes;
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
      return {{"type", "tensor"}, {"dtype", discomfort::storage::TorchDtypeName(t.scalar_type())},
              {"shape", shape}, {"device", t.device().str()}, {"files", files}};
    }
    case ValueKind::kHostObject:
      return {{"type", "object"}, {"python_type", value.host()->TypeName()}};
    case ValueKind::kRecipe: return {{"type", "recipe"}, {"nodes", value.json().size()}};
    case ValueKind::kNone: return nullptr;
  }
  return nullptr;
}

// Ctrl-C / SIGTERM during start-up (ComfyUI's import takes seconds): only the flag is set, and
// the loop stops at its first check, exiting 130 and removing its folders. Without this a signal
// before the CancelWatcher killed the process and left its work folder behind.
void CatchStopSignals() {
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
}

// Ctrl-C / SIGTERM: signal handlers cannot call into Python, so a watcher thread turns the flag
// into a ComfyUI interrupt.
class CancelWatcher {
 public:
  explicit CancelWatcher(discomfort::engine::Executor& executor) {
    std::signal(SIGINT, OnSignal);
    std::signal(SIGTERM, OnSignal);
    thread_ = std::thread([this, &executor] {
      while (!finished_.load()) {
        if (g_cancel.load()) {
          executor.Interrupt();
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    });
  }
  ~CancelWatcher() {
    finished_.store(true);
    thread_.join();
  }

 private:
  std::atomic<bool> finished_{false};
  std::thread thread_;
};

// JSON lines for farm monitors (--events FILE).
class EventLog {
 public:
  Status Open(const std::string& path) {
    if (path.empty()) return Status::Ok();
    out_.open(path, std::ios::app);
    if (!out_) return Status(ErrorCode::kIO, "cannot open events file " + path);
    return Status::Ok();
  }
  std::function<void(const json&)> Sink() {
    if (!out_.is_open()) return {};
    return [this](const json& event) { out_ << event.dump() << '\n' << std::flush; };
  }

 private:
  std::ofstream out_;
};

std::string FormatSeconds(double s) {
  char buf[32];
  if (s < 120) {
    std::snprintf(buf, sizeof(buf), "%.1f s", s);
  } else {
    std::snprintf(buf, sizeof(buf), "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  }
  return buf;
}

// Per-iteration lines with an ETA; on a terminal also a bar on stderr, redrawn in place.
class Progress {
 public:
  Progress(std::ostream& lines, int total) : lines_(lines), total_(total), tty_(isatty(STDERR_FILENO)) {}
  void Iteration(const discomfort::engine::IterationReport& r) {
    done_ = r.iteration + 1;
    elapsed_ += r.seconds;
    ++count_;
    const double eta = (total_ - done_) * (elapsed_ / count_);
    char line[200];
    std::snprintf(line, sizeof(line), "[discomfort] iteration %d/%d: %.3f s", done_, total_, r.seconds);
    std::string text = line;
    if (!r.files.empty()) text += " (" + std::to_string(r.files.size()) + (r.files.size() == 1 ? " image)" : " images)");
    if (!r.stages_failed.empty()) text += " [" + std::to_string(r.stages_failed.size()) + " stage(s) failed]";
    if (tty_) std::cerr << "\r\033[K" << std::flush;
    lines_ << text << std::endl;
    if (tty_ && done_ < total_) {
      const int width = 30, filled = total_ > 0 ? width * done_ / total_ : width;
      std::cerr << "[" << std::string(filled, '#') << std::string(width - filled, '.') << "] " << done_ << "/" << total_
                << "  ETA " << FormatSeconds(eta) << std::flush;
    }
  }
  void Finish() {
    if (tty_) std::cerr << "\r\033[K" << std::flush;
  }

 private:
  std::ostream& lines_;
  int total_;
  bool tty_;
  int done_ = 0;
  int count_ = 0;
  double elapsed_ = 0;
};

Status PutSetValues(discomfort::storage::Context& context, const std::vector<std::string>& sets) {
  for (const std::string& set : sets) {
    const auto eq = set.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Status(ErrorCode::kInvalidArgument, "--set takes unique_id=VALUE, got '" + set + "'");
    }
    auto value = ParseSetValue(set.substr(eq + 1));
    if (!value.ok()) {
      Status st = value.TakeStatus();
      st.where().port = set.substr(0, eq);
      return st;
    }
    DISCOMFORT_RETURN_IF_ERROR(context.Put(set.substr(0, eq), *value));
  }
  return Status::Ok();
}

json OutputsSummary(const std::map<std::string, discomfort::storage::Value>& outputs,
                    const std::map<std::string, std::vector<std::string>>& files) {
  json summary = json::object();
  for (const auto& [uid, value] : outputs) {
    auto f = files.count(uid) ? files.at(uid) : std::vector<std::string>{};
    summary[uid] = DescribeOutput(value, f);
  }
  return summary;
}

struct RunOptions {
  CommonOptions common;
  std::vector<std::string> workflows;
  std::string plan_path;
  int iterations = 1;
  bool iterations_given = false;
  std::string until;
  std::vector<std::string> sets;
  std::string out_dir;
  std::string events_path;
  bool json_summary = false;
  std::optional<double> max_ram_gb;
  int checkpoint_every = 0;
  std::string checkpoint_dir;
  std::string resume_dir;  // set by `discomfort resume`
  std::optional<double> iteration_timeout;  // seconds; unset: the plan's, else none
  std::optional<double> interrupt_grace;
  std::optional<int> save_every;  // unset: every iteration
};

std::string Absolute(const std::string& path) {
  return path.empty() ? path : std::filesystem::absolute(path).lexically_normal().string();
}

// What `discomfort resume` needs to rebuild the run.
json RunManifest(const RunOptions& o) {
  std::vector<std::string> workflows;
  for (const auto& w : o.workflows) workflows.push_back(Absolute(w));
  std::vector<std::string> nodes;
  for (const auto& n : o.common.nodes) nodes.push_back(Absolute(n));
  return {{"discomfort_checkpoint", 1}, {"workflows", workflows}, {"plan", Absolute(o.plan_path)},
          {"iterations", o.iterations}, {"iterations_given", o.iterations_given}, {"until", o.until},
          {"out", Absolute(o.out_dir)}, {"events", Absolute(o.events_path)}, {"nodes", nodes},
          {"comfyui", o.common.comfyui}, {"cpu", o.common.cpu},
          {"max_ram_gb", o.max_ram_gb ? json(*o.max_ram_gb) : json(nullptr)},
          {"checkpoint_every", o.checkpoint_every},
          {"iteration_timeout", o.iteration_timeout ? json(*o.iteration_timeout) : json(nullptr)},
          {"interrupt_grace", o.interrupt_grace ? json(*o.interrupt_grace) : json(nullptr)},
          {"save_every", o.save_every ? json(*o.save_every) : json(nullptr)}};
}

Result<RunOptions> RunOptionsFromCheckpoint(const std::string& dir, const RunOptions& overrides) {
  auto doc = discomfort::cli::ReadJsonFile((std::filesystem::path(dir) / "run.json").string());
  if (!doc.ok()) return Status(ErrorCode::kNotFound, "no checkpoint at " + dir + ": " + doc.status().message());
  const json& m = *doc;
  // json::value() throws on a present key of another type (a damaged run.json): a parse error.
  try {
  if (m.value("discomfort_checkpoint", 0) != 1) return Status(ErrorCode::kParse, dir + "/run.json is not a Discomfort checkpoint");
  RunOptions o;
  o.workflows = m.value("workflows", std::vector<std::string>{});
  o.plan_path = m.value("plan", "");
  o.iterations = overrides.iterations_given ? overrides.iterations : m.value("iterations", 1);
  o.iterations_given = overrides.iterations_given || m.value("iterations_given", false);
  o.until = m.value("until", "");
  o.out_dir = m.value("out", "");
  o.events_path = m.value("events", "");
  o.common = overrides.common;
  if (o.common.nodes.empty()) o.common.nodes = m.value("nodes", std::vector<std::string>{});
  if (o.common.comfyui.empty()) o.common.comfyui = m.value("comfyui", "");
  o.common.cpu = o.common.cpu || m.value("cpu", false);
  if (m.contains("max_ram_gb") && m["max_ram_gb"].is_number()) o.max_ram_gb = m["max_ram_gb"].get<double>();
  o.checkpoint_every = overrides.checkpoint_every > 0 ? overrides.checkpoint_every : m.value("checkpoint_every", 0);
  o.iteration_timeout = overrides.iteration_timeout;
  if (!o.iteration_timeout && m.contains("iteration_timeout") && m["iteration_timeout"].is_number()) {
    o.iteration_timeout = m["iteration_timeout"].get<double>();
  }
  o.interrupt_grace = overrides.interrupt_grace;
  if (!o.interrupt_grace && m.contains("interrupt_grace") && m["interrupt_grace"].is_number()) {
    o.interrupt_grace = m["interrupt_grace"].get<double>();
  }
  o.save_every = overrides.save_every;
  if (!o.save_every && m.contains("save_every") && m["save_every"].is_number_integer()) {
    o.save_every = m["save_every"].get<int>();
  }
  o.checkpoint_dir = dir;
  o.json_summary = overrides.json_summary;
  o.resume_dir = dir;
  return o;
  } catch (const json::exception& e) {
    return Status(ErrorCode::kParse, dir + "/run.json is damaged: " + e.what());
  }
}

int RunCommand(const RunOptions& o) {
  if (o.workflows.empty() == o.plan_path.empty()) {
    return Fail(Status(ErrorCode::kInvalidArgument, "give workflow files or --plan PLAN.json (not both)"));
  }
  CatchStopSignals();
  auto bridge = StartBridge(o.common);
  if (!bridge.ok()) return Fail(bridge.status());
  discomfort::cli::ObjectInfoCache object_info([&bridge] { return (*bridge)->ObjectInfo(); });
  auto load = [&object_info](const std::string& path) { return discomfort::cli::LoadWorkflowAsApi(path, object_info); };
  // Node definitions type the ports, so a context value of the wrong type is reported at its
  // port before anything runs (UI workflows need them anyway; API prompts pay one object_info
  // call, a fraction of a second).
  const json* port_types = nullptr;
  if (auto defs = object_info.Get(); defs.ok()) {
    port_types = &(*defs)->raw();
  } else {
    spdlog::warn("[discomfort] no node definitions, port types are not checked: {}", defs.status().ToString());
  }

  discomfort::storage::ContextOptions context_options;
  context_options.max_ram_gb = o.max_ram_gb;
  discomfort::storage::Context context(context_options);
  discomfort::engine::LoopOptions loop;
  loop.max_reports = 0;  // progress and --events stream them; a long run must not accumulate them
  std::vector<discomfort::engine::Stage> stages;
  const bool resuming = !o.resume_dir.empty();
  if (!o.plan_path.empty()) {
    auto doc = discomfort::cli::ReadJsonFile(o.plan_path);
    if (!doc.ok()) return Fail(doc.status());
    const std::string base = std::filesystem::path(o.plan_path).parent_path().string();
    auto plan = discomfort::engine::ParseLoopPlan(*doc, base);
    if (!plan.ok()) {
      Status st = plan.TakeStatus();
      st.where().workflow = o.plan_path;
      return Fail(st);
    }
    auto prepared = discomfort::engine::PrepareStages(*plan, load, port_types);
    if (!prepared.ok()) return Fail(prepared.status());
    stages = std::move(prepared).value();
    for (const auto& [key, value] : (resuming ? json::object() : plan->inputs).items()) {
      // "@file" strings load files relative to the plan, like --set.
      discomfort::storage::Value v = discomfort::storage::Value::Json(value);
      if (value.is_string() && value.get<std::string>().rfind('@', 0) == 0) {
        std::filesystem::path p = value.get<std::string>().substr(1);
        if (p.is_relative()) p = std::filesystem::path(base) / p;
        auto loaded = ParseSetValue("@" + p.string());
        if (!loaded.ok()) return Fail(loaded.status());
        v = *loaded;
      }
      if (Status st = context.Put(key, v); !st.ok()) return Fail(st);
    }
    loop.iterations = o.iterations_given ? o.iterations : plan->max_iterations;
    if (!plan->until.empty()) loop.until = *discomfort::engine::Condition::Parse(plan->until);
    loop.iteration_timeout = plan->iteration_timeout;
    loop.interrupt_grace = plan->interrupt_grace;
  } else {
    discomfort::engine::Stage stage;
    stage.name = "main";
    for (size_t i = 0; i < o.workflows.size(); ++i) {
      auto prompt = load(o.workflows[i]);
      if (!prompt.ok()) return Fail(prompt.status());
      discomfort::engine::Workflow wf{std::filesystem::path(o.workflows[i]).filename().string(), *prompt};
      auto p = discomfort::engine::PrepareWorkflow(wf, i, port_types);
      if (!p.ok()) return Fail(p.status());
      stage.workflows.push_back(std::move(p).value());
    }
    stages.push_back(std::move(stage));
    loop.iterations = o.iterations;
  }
  if (!o.until.empty()) {
    auto until = discomfort::engine::Condition::Parse(o.until);
    if (!until.ok()) return Fail(until.status());
    loop.until = *until;
  }
  if (o.iteration_timeout) loop.iteration_timeout = *o.iteration_timeout;
  if (o.interrupt_grace) loop.interrupt_grace = *o.interrupt_grace;
  if (o.save_every) loop.save_every = *o.save_every;
  if (resuming) {
    auto checkpoint = discomfort::engine::LoadCheckpoint(o.resume_dir, context);
    if (!checkpoint.ok()) return Fail(checkpoint.status());
    loop.first_iteration = checkpoint->next_iteration;
    std::cerr << "[discomfort] resuming from " << o.resume_dir << " at iteration " << loop.first_iteration + 1 << "\n";
  } else if (Status st = PutSetValues(context, o.sets); !st.ok()) {
    return Fail(st);
  }
  if (o.checkpoint_every > 0) {
    loop.checkpoint_every = o.checkpoint_every;
    loop.checkpoint_dir = o.checkpoint_dir.empty() ? (o.out_dir.empty() ? std::string("discomfort-checkpoint")
                                                                          : o.out_dir + "/checkpoint")
                                                   : o.checkpoint_dir;
    loop.checkpoint_manifest = RunManifest(o);
    loop.checkpoint_manifest["iterations"] = loop.iterations;
    loop.checkpoint_manifest["iterations_given"] = true;
  }
  EventLog events;
  if (Status st = events.Open(o.events_path); !st.ok()) return Fail(st);

  std::ostream& lines = o.json_summary ? std::cerr : std::cout;
  Progress progress(lines, loop.iterations);
  loop.output_dir = o.out_dir;
  loop.cancel = &g_cancel;
  loop.on_event = events.Sink();
  loop.on_iteration = [&progress](const discomfort::engine::IterationReport& r) { progress.Iteration(r); };
  discomfort::engine::LoopRunner runner(**bridge, context);
  Result<discomfort::engine::LoopResult> result = Status();
  {
    CancelWatcher watcher(**bridge);
    result = runner.RunStages(stages, loop);
  }
  progress.Finish();
  if (!result.ok()) return Fail(result.status());
  if (result->stopped_by_until) {
    lines << "[discomfort] stopped after " << result->iterations_completed << " iterations: until condition met" << std::endl;
  }
  if (o.json_summary) std::cout << OutputsSummary(result->outputs, result->files).dump() << std::endl;
  return 0;
}

struct SweepCliOptions {
  CommonOptions common;
  std::vector<std::string> workflows;
  std::vector<std::string> grid;
  std::string images_dir;
  std::string image_port = "image";
  int iterations = 1;
  std::vector<std::string> sets;
  std::string out_dir;
  std::string events_path;
  bool no_pipeline = false;
  int in_flight = 4;
  double iteration_timeout = 0;
  double interrupt_grace = 10;
};

int SweepCommand(const SweepCliOptions& o) {
  if (o.grid.empty() == o.images_dir.empty()) {
    return Fail(Status(ErrorCode::kInvalidArgument, "give --grid key=VALUES (one or more) or --images DIR"));
  }
  CatchStopSignals();
  std::vector<discomfort::engine::SweepPoint> points;
  if (!o.grid.empty()) {
    std::vector<discomfort::engine::GridAxis> axes;
    for (const auto& g : o.grid) {
      auto axis = discomfort::engine::ParseGridAxis(g);
      if (!axis.ok()) return Fail(axis.status());
      axes.push_back(*axis);
    }
    int index = 0;
    for (auto& params : discomfort::engine::ExpandGrid(axes)) points.push_back({index++, std::move(params), ""});
  } else {
    auto images = discomfort::engine::ListImages(o.images_dir);
    if (!images.ok()) return Fail(images.status());
    int index = 0;
    for (auto& path : *images) points.push_back({index++, {}, path});
  }
  auto bridge = StartBridge(o.common);
  if (!bridge.ok()) return Fail(bridge.status());
  discomfort::cli::ObjectInfoCache object_info([&bridge] { return (*bridge)->ObjectInfo(); });
  std::vector<discomfort::engine::PreparedWorkflow> prepared;
  for (size_t i = 0; i < o.workflows.size(); ++i) {
    auto prompt = discomfort::cli::LoadWorkflowAsApi(o.workflows[i], object_info);
    if (!prompt.ok()) return Fail(prompt.status());
    auto p = discomfort::engine::PrepareWorkflow({std::filesystem::path(o.workflows[i]).filename().string(), *prompt}, i);
    if (!p.ok()) return Fail(p.status());
    prepared.push_back(std::move(p).value());
  }
  discomfort::storage::Context parent;
  if (Status st = PutSetValues(parent, o.sets); !st.ok()) return Fail(st);
  EventLog events;
  if (Status st = events.Open(o.events_path); !st.ok()) return Fail(st);
  auto sink = events.Sink();

  discomfort::engine::SweepOptions options;
  options.iterations_per_point = o.iterations;
  options.image_port = o.image_port;
  options.output_dir = o.out_dir;
  options.pipeline = !o.no_pipeline;
  options.max_in_flight = o.in_flight;
  options.iteration_timeout = o.iteration_timeout;
  options.interrupt_grace = o.interrupt_grace;
  options.cancel = &g_cancel;
  options.on_point = [&](const discomfort::engine::SweepPointResult& r) {
    json line = {{"event", "point_done"}, {"point", r.point.index}, {"params", r.point.params}, {"seconds", r.seconds},
                 {"ok", r.status.ok()}};
    if (!r.point.image_path.empty()) line["image"] = r.point.image_path;
    if (r.status.ok()) {
      line["outputs"] = OutputsSummary(r.outputs, {});
      line["files"] = r.files;
    } else {
      line["error"] = r.status.ToJson();
      std::cerr << "[discomfort] point " << r.point.index << ": " << r.status.ToString() << "\n";
    }
    std::cout << line.dump() << std::endl;
    if (sink) sink(line);
  };
  discomfort::engine::SweepRunner runner(**bridge, parent);
  Result<discomfort::engine::SweepResult> result = Status();
  {
    CancelWatcher watcher(**bridge);
    result = runner.Run(prepared, points, options);
  }
  if (!result.ok()) return Fail(result.status());
  std::cerr << "[discomfort] sweep: " << result->points << " points, " << result->failed << " failed, "
            << FormatSeconds(result->seconds) << (options.pipeline ? " (pipelined)" : "") << "\n";
  return result->failed == 0 ? 0 : 1;
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
  CLI::App* run_cmd = app.add_subcommand("run", "run API- or UI-format workflows for N iterations, or a loop plan");
  run_cmd->add_option("workflows", run.workflows, "workflow JSON files, run in order each iteration");
  run_cmd->add_option("--plan", run.plan_path, "a loop plan (stages, when/until conditions, error policies; see README)");
  auto* iterations_opt = run_cmd->add_option("-n,--iterations", run.iterations, "number of iterations (the maximum with --until)")
                             ->check(CLI::NonNegativeNumber);
  run_cmd->add_option("--until", run.until, "stop after the iteration where this condition holds, e.g. 'score > 0.9'");
  run_cmd->add_option("--set", run.sets, "unique_id=VALUE put into the context first (JSON literal, @image.png, @file.json, or text)");
  run_cmd->add_option("-o,--out", run.out_dir, "folder for IMAGE outputs, one PNG per iteration");
  run_cmd->add_option("--save-every", run.save_every,
                      "with --out, write the images of every K-th iteration only, and of the last one "
                      "(0: the last iteration only; default 1)")
      ->check(CLI::Range(0, std::numeric_limits<int>::max()));
  run_cmd->add_option("--events", run.events_path, "append JSON-lines events (iterations, nodes, timings, errors) to FILE");
  run_cmd->add_flag("--json", run.json_summary, "print the final OUTPUT values as one JSON object last on stdout");
  run_cmd->add_option("--max-ram-gb", run.max_ram_gb, "RAM budget of the context; tensors beyond it spill to disk");
  run_cmd->add_option("--checkpoint-every", run.checkpoint_every, "save a resumable checkpoint every K iterations")
      ->check(CLI::NonNegativeNumber);
  run_cmd->add_option("--checkpoint-dir", run.checkpoint_dir, "checkpoint folder (default OUT/checkpoint)");
  run_cmd->add_option("--iteration-timeout", run.iteration_timeout,
                      "end the run when an iteration takes longer than SECONDS: ComfyUI is interrupted, exit 1 "
                      "with a timeout error (default: the plan's iteration_timeout, else none)")
      ->check(CLI::Range(0.0, 604800.0));
  run_cmd->add_option("--interrupt-grace", run.interrupt_grace,
                      "seconds a node may ignore that interrupt before the run ends anyway (default 10)")
      ->check(CLI::Range(0.0, 604800.0));
  AddCommonOptions(run_cmd, &run.common);
  run_cmd->callback([&] {
    run.iterations_given = iterations_opt->count() > 0;
    exit_code = RunCommand(run);
  });

  RunOptions resume_overrides;
  std::string resume_dir;
  CLI::App* resume_cmd = app.add_subcommand("resume", "continue a run from its checkpoint folder");
  resume_cmd->add_option("dir", resume_dir, "checkpoint folder written by run --checkpoint-every")->required();
  auto* resume_iterations = resume_cmd->add_option("-n,--iterations", resume_overrides.iterations, "new total iteration count")
                                ->check(CLI::NonNegativeNumber);
  resume_cmd->add_flag("--json", resume_overrides.json_summary, "print the final OUTPUT values as JSON last on stdout");
  AddCommonOptions(resume_cmd, &resume_overrides.common);
  resume_cmd->callback([&] {
    resume_overrides.iterations_given = resume_iterations->count() > 0;
    auto options = RunOptionsFromCheckpoint(resume_dir, resume_overrides);
    exit_code = options.ok() ? RunCommand(*options) : Fail(options.status());
  });

  SweepCliOptions sweep;
  CLI::App* sweep_cmd = app.add_subcommand("sweep", "independent runs over a parameter grid or a folder of images");
  sweep_cmd->add_option("workflows", sweep.workflows, "workflow JSON files")->required();
  sweep_cmd->add_option("--grid", sweep.grid, "key=VALUES: seed=1..8, cfg=5,7.5, name=a,b (repeat for a product)");
  sweep_cmd->add_option("--images", sweep.images_dir, "run once per .png in this folder");
  sweep_cmd->add_option("--image-port", sweep.image_port, "INPUT port that receives each image (default: image)");
  sweep_cmd->add_option("-n,--iterations", sweep.iterations, "iterations per point")->check(CLI::PositiveNumber);
  sweep_cmd->add_option("--set", sweep.sets, "unique_id=VALUE shared by every point");
  sweep_cmd->add_option("-o,--out", sweep.out_dir, "folder for outputs: point_<index>/<unique_id>.png");
  sweep_cmd->add_option("--events", sweep.events_path, "append JSON-lines events to FILE");
  sweep_cmd->add_flag("--no-pipeline", sweep.no_pipeline, "decode / execute / encode one point at a time");
  sweep_cmd->add_option("--in-flight", sweep.in_flight, "points alive at once in the pipeline")->check(CLI::PositiveNumber);
  sweep_cmd->add_option("--iteration-timeout", sweep.iteration_timeout,
                        "a point whose iteration takes longer than SECONDS is interrupted and reported as failed "
                        "with a timeout error; the sweep goes on (default: none)")
      ->check(CLI::Range(0.0, 604800.0));
  sweep_cmd->add_option("--interrupt-grace", sweep.interrupt_grace,
                        "seconds a node may ignore that interrupt (default 10)")
      ->check(CLI::Range(0.0, 604800.0));
  AddCommonOptions(sweep_cmd, &sweep.common);
  sweep_cmd->callback([&] { exit_code = SweepCommand(sweep); });

  CommonOptions oi_common;
  std::string oi_out;
  CLI::App* oi_cmd = app.add_subcommand("object-info", "dump node definitions (/object_info shape) from the embedded ComfyUI");
  oi_cmd->add_option("-o,--out", oi_out, "output file (default stdout)");
  AddCommonOptions(oi_cmd, &oi_common);
  oi_cmd->callback([&] { exit_code = ObjectInfoCommand(oi_common, oi_out); });

  CommonOptions graph_common;
  discomfort::cli::AddGraphCommands(
      app,
      [&graph_common]() -> Result<json> {
        auto bridge = StartBridge(graph_common);
        if (!bridge.ok()) return bridge.status();
        return (*bridge)->ObjectInfo();
      },
      &exit_code);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (!g_temp_work_dir.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(g_temp_work_dir, ec);
  }
  std::cout.flush();
  std::fflush(nullptr);
  // Skip static destructors: the embedded interpreter and torch keep threads that must not be
  // torn down under them.
  std::_Exit(exit_code);
}
