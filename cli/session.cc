#include "cli/session.h"

#include "engine/logging.h"

#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include <spdlog/spdlog.h>

namespace discomfort::cli {
namespace {

using nlohmann::json;

std::atomic<bool> g_cancel{false};
extern "C" void OnStopSignal(int) { g_cancel.store(true); }

// ComfyUI's output/temp/input folders when --work-dir is not given; removed at exit.
std::string g_temp_work_dir;

// Removes the per-process work folders (discomfort-<pid>) that killed runs (SIGKILL, the OOM
// killer) left in the temp folder.
void ReclaimDeadWorkDirs(storage::FileSystem& fs, const std::string& root) {
  auto names = fs.ListDir(root);
  if (!names.ok()) return;
  for (const std::string& name : *names) {
    if (name.rfind("discomfort-", 0) != 0 || name.size() == 11 || name.size() > 20 ||
        name.find_first_not_of("0123456789", 11) != std::string::npos) {
      continue;
    }
    const int pid = std::stoi(name.substr(11));
    if (pid <= 0 || pid == ::getpid() || fs.ProcessAlive(pid)) continue;
    fs.RemoveAll(root + "/" + name).IgnoreError();  // another process may be reclaiming it too
  }
}

}  // namespace

void AddCommonOptions(CLI::App* cmd, CommonOptions* o) {
  cmd->add_option(
      "--comfyui", o->comfyui,
      "ComfyUI checkout (default: $COMFYUI_PATH, the ComfyUI holding this repo, ~/ComfyUI)");
  cmd->add_option(
      "--work-dir", o->work_dir,
      "folder for ComfyUI's output/temp/input/user folders (default: a per-process temp folder)");
  cmd->add_option("--nodes", o->nodes, "extra custom-node files or packages to load (repeatable)");
  cmd->add_flag("--cpu", o->cpu, "run ComfyUI on the CPU even when a GPU is present");
  cmd->add_flag("-v,--verbose", o->verbose, "show ComfyUI's own log and debug messages");
}

Result<std::unique_ptr<bridge::ComfyBridge>> StartBridge(const CommonOptions& o) {
  engine::SetVerboseLogging(o.verbose);
  bridge::BridgeOptions options;
  options.comfyui_path = o.comfyui;
  options.work_dir = o.work_dir;
  if (options.work_dir.empty()) {
    const std::string temp = std::filesystem::temp_directory_path().string();
    ReclaimDeadWorkDirs(*storage::FileSystem::Default(), temp);
    g_temp_work_dir = temp + "/discomfort-" + std::to_string(::getpid());
    options.work_dir = g_temp_work_dir;
  }
  if (o.cpu) options.force_cpu = true;
  options.verbose = o.verbose;
  options.extra_node_paths = o.nodes;
  options.python_stdout_to_stderr = true;
  return bridge::ComfyBridge::Start(options);
}

void RemoveTemporaryWorkDir() {
  if (g_temp_work_dir.empty()) return;
  // Exiting anyway: a folder that cannot be removed is reclaimed by the next run.
  storage::FileSystem::Default()->RemoveAll(g_temp_work_dir).IgnoreError();
}

int Fail(const Status& st) {
  std::cerr << "[discomfort] " << st.ToString() << "\n";
  if (!st.traceback().empty() && spdlog::get_level() <= spdlog::level::debug)
    std::cerr << st.traceback();
  return st.code() == ErrorCode::kCancelled ? 130 : 1;
}

const std::atomic<bool>* CancelFlag() { return &g_cancel; }

void CatchStopSignals() {
  std::signal(SIGINT, OnStopSignal);
  std::signal(SIGTERM, OnStopSignal);
}

CancelWatcher::CancelWatcher(engine::Executor& executor) {
  CatchStopSignals();
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

CancelWatcher::~CancelWatcher() {
  finished_.store(true);
  thread_.join();
}

Status EventLog::Open(const std::string& path) {
  if (path.empty()) return Status::Ok();
  auto file = storage::FileSystem::Default()->NewAppendableFile(path);
  if (!file.ok())
    return Status(file.status().code(),
                  "cannot open events file " + path + ": " + file.status().message());
  file_ = std::move(file).value();
  return Status::Ok();
}

std::function<void(const json&)> EventLog::Sink() {
  if (!file_) return {};
  return [this](const json& event) {
    const std::string line = event.dump() + "\n";
    // A monitor's log must not end the run; a full disk shows in the run's own errors.
    file_->Append(line.data(), line.size()).IgnoreError();
  };
}

std::string FormatSeconds(double s) {
  char buf[32];
  if (s < 120) {
    std::snprintf(buf, sizeof(buf), "%.1f s", s);
  } else {
    std::snprintf(buf, sizeof(buf), "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  }
  return buf;
}

Progress::Progress(std::ostream& lines, int total)
    : lines_(lines), total_(total), tty_(isatty(STDERR_FILENO)) {}

void Progress::Iteration(const engine::IterationReport& r) {
  done_ = r.iteration + 1;
  elapsed_ += r.seconds;
  ++count_;
  const double eta = (total_ - done_) * (elapsed_ / count_);
  char line[200];
  std::snprintf(line, sizeof(line), "[discomfort] iteration %d/%d: %.3f s", done_, total_,
                r.seconds);
  std::string text = line;
  if (!r.files.empty())
    text += " (" + std::to_string(r.files.size()) + (r.files.size() == 1 ? " image)" : " images)");
  if (!r.stages_failed.empty())
    text += " [" + std::to_string(r.stages_failed.size()) + " stage(s) failed]";
  if (tty_) std::cerr << "\r\033[K" << std::flush;
  lines_ << text << std::endl;
  if (tty_ && done_ < total_) {
    const int width = 30, filled = total_ > 0 ? width * done_ / total_ : width;
    std::cerr << "[" << std::string(filled, '#') << std::string(width - filled, '.') << "] "
              << done_ << "/" << total_ << "  ETA " << FormatSeconds(eta) << std::flush;
  }
}

void Progress::Finish() {
  if (tty_) std::cerr << "\r\033[K" << std::flush;
}

json DescribeOutput(const storage::Value& value, const std::vector<std::string>& files) {
  using storage::ValueKind;
  switch (value.kind()) {
    case ValueKind::kJson:
      return value.json();
    case ValueKind::kTensor: {
      const at::Tensor& t = value.tensor();
      json shape = json::array();
      for (int64_t i = 0; i < t.dim(); ++i) shape.push_back(t.size(i));
      return {{"type", "tensor"},
              {"dtype", storage::TorchDtypeName(t.scalar_type())},
              {"shape", shape},
              {"device", t.device().str()},
              {"files", files}};
    }
    case ValueKind::kHostObject:
      return {{"type", "object"}, {"python_type", value.host()->TypeName()}};
    case ValueKind::kRecipe:
      return {{"type", "recipe"}, {"nodes", value.json().size()}};
    case ValueKind::kNone:
      return nullptr;
  }
  return nullptr;
}

json OutputsSummary(const std::map<std::string, storage::Value>& outputs,
                    const std::map<std::string, std::vector<std::string>>& files) {
  json summary = json::object();
  for (const auto& [uid, value] : outputs) {
    auto f = files.count(uid) ? files.at(uid) : std::vector<std::string>{};
    summary[uid] = DescribeOutput(value, f);
  }
  return summary;
}

}  // namespace discomfort::cli
