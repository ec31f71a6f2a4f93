// Sweeps: independent runs over a parameter grid or over every image of a folder. Each point
// gets its own child context seeded from the parent. With the pipeline on, a TBB pipeline
// decodes the next points' images and encodes finished points' outputs while the (serial)
// ComfyUI execution runs; at most `max_in_flight` points are alive at once, so memory stays capped.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/loop.h"

namespace discomfort::engine {

struct GridAxis {
  std::string key;
  std::vector<nlohmann::json> values;
};

// "seed=1..8" (inclusive integer range, optional step "1..9..2"), "cfg=5,7.5", "name=a,b",
// "flag=true,false". Values are JSON literals when they parse as such, else strings.
Result<GridAxis> ParseGridAxis(const std::string& text);
// Cartesian product, first axis slowest.
std::vector<std::map<std::string, nlohmann::json>> ExpandGrid(const std::vector<GridAxis>& axes);

struct SweepPoint {
  int index = 0;
  std::map<std::string, nlohmann::json> params;  // grid values
  std::string image_path;                         // with an image folder
};

struct SweepPointResult {
  SweepPoint point;
  Status status;                                   // per-point errors do not stop the sweep
  std::map<std::string, storage::Value> outputs;
  std::vector<std::string> files;
  double seconds = 0;
};

struct SweepOptions {
  int iterations_per_point = 1;
  std::string image_port;       // INPUT port receiving each image of an image sweep
  std::string output_dir;       // point_<index>/ subfolders with PNG outputs; empty: none
  bool pipeline = true;
  int max_in_flight = 4;        // points alive at once with the pipeline
  std::function<void(const SweepPointResult&)> on_point;  // in point order
  const std::atomic<bool>* cancel = nullptr;
  // Per-iteration limit inside each point (LoopOptions::iteration_timeout); a point that times out
  // is reported as failed with kTimeout and the sweep goes on. 0: none.
  double iteration_timeout = 0;
  double interrupt_grace = 10;
};

struct SweepResult {
  int points = 0;
  int failed = 0;
  double seconds = 0;
};

// Image files of a folder (PNG), sorted by name.
Result<std::vector<std::string>> ListImages(const std::string& dir);

class SweepRunner {
 public:
  SweepRunner(Executor& executor, const storage::Context& parent);
  Result<SweepResult> Run(const std::vector<PreparedWorkflow>& workflows, const std::vector<SweepPoint>& points,
                          const SweepOptions& options);

 private:
  Executor& executor_;
  const storage::Context& parent_;
};

}  // namespace discomfort::engine
