// What every engine command of the CLI shares: the common options, starting the embedded ComfyUI,
// Ctrl-C / SIGTERM handling, progress lines, the JSON-lines event log and printing errors.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "bridge/comfy_bridge.h"
#include "discomfort/status.h"
#include "engine/loop.h"
#include "storage/filesystem.h"
#include "storage/value.h"

namespace discomfort::cli {

struct CommonOptions {
  std::string comfyui;
  std::string work_dir;
  std::vector<std::string> nodes;
  bool cpu = false;
  bool verbose = false;
};
void AddCommonOptions(CLI::App* cmd, CommonOptions* options);

// Starts (imports) ComfyUI. Without --work-dir a per-process folder in the temp folder holds
// ComfyUI's output/temp/input/user folders; RemoveTemporaryWorkDir deletes it at exit.
Result<std::unique_ptr<bridge::ComfyBridge>> StartBridge(const CommonOptions& options);
void RemoveTemporaryWorkDir();

// Prints the error (and, with -v, its traceback) to stderr; returns the exit code: 130 for a
// cancelled run, else 1.
int Fail(const Status& st);

// Set by SIGINT / SIGTERM. Install early: a signal during ComfyUI's start-up (seconds) then only
// sets the flag and the command stops at its first check.
const std::atomic<bool>* CancelFlag();
void CatchStopSignals();

// Signal handlers cannot call into Python: this thread turns the flag into a ComfyUI interrupt.
class CancelWatcher {
 public:
  explicit CancelWatcher(engine::Executor& executor);
  ~CancelWatcher();

 private:
  std::atomic<bool> finished_{false};
  std::thread thread_;
};

// JSON lines for farm monitors (--events FILE), appended.
class EventLog {
 public:
  Status Open(const std::string& path);
  std::function<void(const nlohmann::json&)> Sink();

 private:
  std::unique_ptr<storage::WritableFile> file_;
};

// Per-iteration lines with an ETA; on a terminal also a bar on stderr, redrawn in place.
class Progress {
 public:
  Progress(std::ostream& lines, int total);
  void Iteration(const engine::IterationReport& report);
  void Finish();

 private:
  std::ostream& lines_;
  int total_;
  bool tty_;
  int done_ = 0;
  int count_ = 0;
  double elapsed_ = 0;
};

std::string FormatSeconds(double seconds);

// The JSON form of a final value (numbers, strings, booleans as they are; tensors as dtype, shape
// and files written; objects by type).
nlohmann::json DescribeOutput(const storage::Value& value, const std::vector<std::string>& files);
nlohmann::json OutputsSummary(const std::map<std::string, storage::Value>& outputs,
                              const std::map<std::string, std::vector<std::string>>& files);

}  // namespace discomfort::cli
