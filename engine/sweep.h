// Sweeps: independent runs over a parameter grid or over every image of a folder. Each point
// gets its own child context seeded from the parent. With the pipeline on, a TBB pipeline
// decodes the next points' images and encodes finished points' outputs while the (serial)
// ComfyUI execution runs; at most `max_in_flight` points are alive at once, so memory stays capped.
#pragma once

#include <functional>
#include <map>
#include <optional>
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
  std::string image_path;                        // with an image folder
};

// One of N disjoint parts of a sweep, for schedulers that run each part as its own task (Slurm
// arrays, render-farm tasks). `index` is 1-based: "--shard 1/4" .. "--shard 4/4".
struct Shard {
  int index = 1;
  int count = 1;
  bool Contains(int point_index) const { return point_index % count == index - 1; }
};
// "K/N" with 1 <= K <= N; anything else is kInvalidArgument saying what is expected.
Result<Shard> ParseShard(const std::string& text);

// The sweep's points: the grid's product (or one per image), numbered from 0 in that order, then
// only those of `shard` (round robin, so every shard gets a share of each region of the grid).
// Points keep their global index, so the shards' outputs together are the unsharded sweep's.
std::vector<SweepPoint> MakeSweepPoints(const std::vector<GridAxis>& grid,
                                        const std::vector<std::string>& images,
                                        const std::optional<Shard>& shard = std::nullopt);

struct SweepPointResult {
  SweepPoint point;
  Status status;  // per-point errors do not stop the sweep
  std::map<std::string, storage::Value> outputs;
  std::vector<std::string> files;
  double seconds = 0;
};

struct SweepOptions {
  int iterations_per_point = 1;
  std::string image_port;             // INPUT port receiving each image of an image sweep
  std::string output_dir;             // point_<index>/ subfolders with PNG outputs; empty: none
  storage::FileSystem* fs = nullptr;  // where outputs are written; null: the real one
  TraceWriter* trace = nullptr;       // spans of each point's decode / execute / encode; not owned
  bool exact_executor = false;        // LoopOptions::exact_executor for every point
  bool pipeline = true;
  int max_in_flight = 4;                                  // points alive at once with the pipeline
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

// Image files of a folder (PNG), sorted by name. `fs` null: the real file system.
Result<std::vector<std::string>> ListImages(const std::string& dir,
                                            storage::FileSystem* fs = nullptr);

class SweepRunner {
 public:
  SweepRunner(Executor& executor, const storage::Context& parent);
  Result<SweepResult> Run(const std::vector<PreparedWorkflow>& workflows,
                          const std::vector<SweepPoint>& points, const SweepOptions& options);

 private:
  Executor& executor_;
  const storage::Context& parent_;
};

}  // namespace discomfort::engine
