// What a run, a plan or a sweep is, and what it returns: the C++ SDK's side of the options the CLI
// (`discomfort run`, `discomfort sweep`) and the Python package take.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "discomfort/context.h"
#include "discomfort/status.h"

namespace discomfort {

// A workflow file (UI or API format) or a document already in memory.
struct Workflow {
  std::string path;
  std::optional<nlohmann::json> document;
  std::string name;  // for messages; default: the file name

  static Workflow File(std::string path) { return {std::move(path), std::nullopt, {}}; }
  static Workflow Document(std::string name, nlohmann::json document) {
    return {{}, std::move(document), std::move(name)};
  }
};

// Stops a run or a sweep at the next node (ComfyUI is interrupted); copies share one flag, so a
// token handed to a run can be cancelled from any thread or a signal handler's watcher.
class CancelToken {
 public:
  CancelToken() : flag_(std::make_shared<std::atomic<bool>>(false)) {}
  void Cancel() const { flag_->store(true); }
  bool cancelled() const { return flag_->load(); }
  const std::atomic<bool>* flag() const { return flag_.get(); }

 private:
  std::shared_ptr<std::atomic<bool>> flag_;
};

struct IterationInfo {
  int iteration = 0;
  double seconds = 0;
  std::vector<std::string> files;  // images written this iteration
  std::vector<std::string> stages_run;
  std::vector<std::string> stages_failed;
};

struct RunOptions {
  // Either workflows (run in order each iteration) or a loop plan (see the README's plan keys).
  std::vector<Workflow> workflows;
  std::optional<nlohmann::json> plan;
  std::string plan_path;      // a plan file, read when `plan` is unset
  std::string plan_base_dir;  // relative paths in the plan; default: plan_path's folder

  std::optional<int> iterations;  // unset: the plan's max_iterations, else 1
  std::string until;              // "score > 0.9 && iteration >= 3"; overrides the plan's
  // A condition in C++, checked after each iteration (overrides both); return true to stop.
  std::function<bool(const Context&)> until_callback;
  std::vector<std::string> set_values;  // "unique_id=VALUE" as the CLI's --set

  std::string output_dir;                   // IMAGE outputs as PNG; "" none
  std::optional<int> save_every;            // every K-th iteration and the last (0: the last only)
  std::optional<double> iteration_timeout;  // seconds; unset: the plan's, else none
  std::optional<double> interrupt_grace;    // seconds a node may ignore the interrupt (10)
  std::optional<double>
      max_vram_gb;  // the context's GPU budget (GiB); unset: the plan's, else kept

  std::function<void(const IterationInfo&)> on_iteration;
  std::function<void(const nlohmann::json&)> on_event;  // the CLI's --events lines
  CancelToken cancel;

  int checkpoint_every = 0;  // save a resumable checkpoint every K iterations (and on cancel)
  std::string checkpoint_dir;
  std::string resume_from;  // a checkpoint folder: its context is loaded and the run continues
  std::string trace_path;   // a Chrome trace (Perfetto, chrome://tracing) of the run; "" none
  // ComfyUI's full prompt round every iteration instead of only the nodes whose inputs changed
  // (the same results; for comparison).
  bool exact_executor = false;
};

struct RunResult {
  int iterations_completed = 0;  // the index of the next iteration to run
  bool stopped_by_until = false;
  std::map<std::string, Value> outputs;                   // OUTPUT unique_id -> final value
  std::map<std::string, std::vector<std::string>> files;  // unique_id -> last files written
};

struct PointResult {
  int index = 0;
  nlohmann::json params = nlohmann::json::object();  // the point's grid values
  std::string image;                                 // with an image sweep
  Status status;                                     // per point: a failure does not stop the sweep
  std::map<std::string, Value> outputs;
  std::vector<std::string> files;
  double seconds = 0;
};

struct SweepOptions {
  std::vector<Workflow> workflows;
  // Axes of a product, first slowest: {"seed", {1, 2, 3}}, {"cfg", {5.0, 7.5}}. Or images:
  std::vector<std::pair<std::string, std::vector<nlohmann::json>>> grid;
  std::vector<std::string> images;  // PNG files, one point each
  std::string images_dir;           // every .png of a folder
  std::string image_port = "image";
  std::string shard;  // "K/N": this task's part of the points (names unchanged)
  std::vector<std::string> set_values;
  int iterations = 1;      // per point
  std::string output_dir;  // point_<index>/<unique_id>.png
  bool pipeline = true;
  int max_in_flight = 4;
  std::optional<double> iteration_timeout;
  std::optional<double> interrupt_grace;
  std::function<void(const PointResult&)> on_point;  // in point order
  CancelToken cancel;
  std::string trace_path;  // a Chrome trace of the points' decode / execute / encode; "" none
  bool exact_executor = false;
};

struct SweepResult {
  int points = 0;
  int failed = 0;
  double seconds = 0;
  std::vector<PointResult> results;  // in point order
};

}  // namespace discomfort
