#include "engine/sweep.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>

#include <tbb/parallel_pipeline.h>

#include "engine/image_io.h"
#include "engine/image_writer.h"

namespace discomfort::engine {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

json ParseLiteral(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  return j.is_discarded() ? json(text) : j;
}

// One point travelling through the pipeline.
struct Work {
  SweepPoint point;
  std::unique_ptr<storage::Context> context;
  SweepPointResult result;
};

}  // namespace

Result<GridAxis> ParseGridAxis(const std::string& text) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size()) {
    return Status(ErrorCode::kInvalidArgument,
                  "--grid takes key=VALUES (seed=1..8, cfg=5,7), got '" + text + "'");
  }
  GridAxis axis;
  axis.key = text.substr(0, eq);
  const std::string values = text.substr(eq + 1);
  const auto dots = values.find("..");
  if (dots != std::string::npos) {
    try {
      size_t used = 0;
      const long long first = std::stoll(values.substr(0, dots), &used);
      if (used != dots) throw std::invalid_argument("range");
      std::string rest = values.substr(dots + 2);
      long long step = 1;
      const auto step_dots = rest.find("..");
      if (step_dots != std::string::npos) {
        step = std::stoll(rest.substr(step_dots + 2));
        rest = rest.substr(0, step_dots);
      }
      const long long last = std::stoll(rest, &used);
      if (used != rest.size() || step <= 0 || last < first || (last - first) / step > 100000)
        throw std::invalid_argument("range");
      for (long long v = first; v <= last; v += step) axis.values.emplace_back(v);
    } catch (const std::exception&) {
      return Status(
          ErrorCode::kInvalidArgument,
          "--grid " + axis.key +
              ": a range is FIRST..LAST[..STEP] of integers with FIRST <= LAST and at most "
              "100000 values, got '" +
              values + "'");
    }
    return axis;
  }
  size_t start = 0;
  while (start <= values.size()) {
    size_t comma = values.find(',', start);
    if (comma == std::string::npos) comma = values.size();
    const std::string item = values.substr(start, comma - start);
    if (item.empty())
      return Status(ErrorCode::kInvalidArgument,
                    "--grid " + axis.key + ": empty value in '" + values + "'");
    axis.values.push_back(ParseLiteral(item));
    start = comma + 1;
  }
  return axis;
}

std::vector<std::map<std::string, json>> ExpandGrid(const std::vector<GridAxis>& axes) {
  std::vector<std::map<std::string, json>> points(1);
  for (const GridAxis& axis : axes) {
    std::vector<std::map<std::string, json>> next;
    for (const auto& base : points) {
      for (const json& v : axis.values) {
        auto p = base;
        p[axis.key] = v;
        next.push_back(std::move(p));
      }
    }
    points = std::move(next);
  }
  return points;
}

Result<Shard> ParseShard(const std::string& text) {
  const auto slash = text.find('/');
  Shard shard;
  try {
    size_t used = 0;
    if (slash == std::string::npos) throw std::invalid_argument("no slash");
    shard.index = std::stoi(text.substr(0, slash), &used);
    if (used != slash) throw std::invalid_argument("index");
    const std::string count = text.substr(slash + 1);
    shard.count = std::stoi(count, &used);
    if (used != count.size()) throw std::invalid_argument("count");
  } catch (const std::exception&) {
    return Status(ErrorCode::kInvalidArgument,
                  "--shard takes K/N (this task's part K of N, 1 <= K <= N), got '" + text + "'");
  }
  if (shard.count < 1 || shard.index < 1 || shard.index > shard.count) {
    return Status(ErrorCode::kInvalidArgument,
                  "--shard K/N needs 1 <= K <= N (K counts from 1), got '" + text + "'");
  }
  return shard;
}

std::vector<SweepPoint> MakeSweepPoints(const std::vector<GridAxis>& grid,
                                        const std::vector<std::string>& images,
                                        const std::optional<Shard>& shard) {
  std::vector<SweepPoint> points;
  int index = 0;
  auto add = [&](SweepPoint point) {
    point.index = index++;
    if (!shard || shard->Contains(point.index)) points.push_back(std::move(point));
  };
  if (!grid.empty()) {
    for (auto& params : ExpandGrid(grid)) add({0, std::move(params), ""});
  } else {
    for (const auto& path : images) add({0, {}, path});
  }
  return points;
}

Result<std::vector<std::string>> ListImages(const std::string& dir, storage::FileSystem* fs) {
  if (fs == nullptr) fs = storage::FileSystem::Default();
  auto names = fs->ListDir(dir);
  if (!names.ok()) {
    Status st = names.TakeStatus();
    return Status(st.code() == ErrorCode::kIO ? ErrorCode::kIO : ErrorCode::kNotFound,
                  "not a folder of images: " + dir + " (" + st.message() + ")");
  }
  std::vector<std::string> files;
  for (const std::string& name : *names) {
    std::string ext = std::filesystem::path(name).extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
    const std::string path = dir + "/" + name;
    if (ext == ".png" && !fs->IsSymlink(path)) files.push_back(path);
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) return Status(ErrorCode::kNotFound, "no .png images in " + dir);
  return files;
}

SweepRunner::SweepRunner(Executor& executor, const storage::Context& parent)
    : executor_(executor), parent_(parent) {}

Result<SweepResult> SweepRunner::Run(const std::vector<PreparedWorkflow>& workflows,
                                     const std::vector<SweepPoint>& points,
                                     const SweepOptions& options) {
  const auto start = Clock::now();
  SweepResult summary;
  Status fatal;  // cancellation stops the sweep; other errors are per point

  // prepare: a child context seeded from the parent, the point's values, its decoded image.
  auto prepare = [&](Work& w) {
    w.context = std::make_unique<storage::Context>();
    if (options.trace != nullptr) TraceContextIo(*w.context, options.trace);
    w.result.point = w.point;
    auto put = [&w](const std::string& key, storage::Value value) {
      if (!w.result.status.ok()) return;
      w.result.status = w.context->Put(key, std::move(value));
      if (!w.result.status.ok()) w.result.status.where().port = key;
    };
    for (const std::string& key : parent_.Keys()) {
      auto v = parent_.Get(key);
      if (!v.ok()) {
        w.result.status = v.TakeStatus();
        return;
      }
      put(key, std::move(v).value());
    }
    for (const auto& [key, value] : w.point.params) put(key, storage::Value::Json(value));
    if (!w.point.image_path.empty() && w.result.status.ok()) {
      auto image = ReadPngAsImage(w.point.image_path, options.fs);
      if (!image.ok()) {
        w.result.status = image.TakeStatus();
        return;
      }
      put(options.image_port, storage::Value::Tensor(*image));
    }
  };
  // execute: serial, ComfyUI's state is global.
  auto execute = [&](Work& w) {
    if (!w.result.status.ok()) return;
    if (options.cancel != nullptr && options.cancel->load()) {
      w.result.status = Status(ErrorCode::kCancelled, "sweep cancelled");
      return;
    }
    const auto t0 = Clock::now();
    LoopRunner runner(executor_, *w.context);
    LoopOptions loop;
    loop.fs = options.fs;
    loop.trace = options.trace;
    loop.exact_executor = options.exact_executor;
    loop.iterations = options.iterations_per_point;
    loop.cancel = options.cancel;
    loop.iteration_timeout = options.iteration_timeout;
    loop.interrupt_grace = options.interrupt_grace;
    auto result = runner.Run(workflows, loop);
    w.result.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    if (!result.ok()) {
      w.result.status = result.TakeStatus();
      return;
    }
    w.result.outputs = std::move(result->outputs);
  };
  // finalize: encode image outputs, release the child context.
  auto finalize = [&](Work& w) {
    if (w.result.status.ok() && !options.output_dir.empty()) {
      char name[32];
      std::snprintf(name, sizeof(name), "point_%05d", w.point.index);
      const std::string dir = options.output_dir + "/" + name;
      storage::FileSystem* fs = options.fs != nullptr ? options.fs : storage::FileSystem::Default();
      if (Status st = fs->CreateDir(dir); !st.ok()) {
        w.result.status = st;
        w.context.reset();
        return;
      }
      for (const auto& [uid, value] : w.result.outputs) {
        if (!value.is_tensor() || !LooksLikeImage(value.tensor())) continue;
        auto written = WriteImagePngs(value.tensor(), dir + "/" + SanitizeForFileName(uid), fs);
        if (!written.ok()) {
          w.result.status = written.TakeStatus();
          break;
        }
        w.result.files.insert(w.result.files.end(), written->begin(), written->end());
      }
    }
    w.context.reset();
  };
  auto report = [&](Work& w) {
    ++summary.points;
    if (!w.result.status.ok()) {
      ++summary.failed;
      ErrorLocation& where = w.result.status.where();
      if (where.stage.empty()) where.stage = "point " + std::to_string(w.point.index);
      if (w.result.status.code() == ErrorCode::kCancelled && fatal.ok()) fatal = w.result.status;
    }
    if (options.on_point) options.on_point(w.result);
  };
  // Every stage body catches: no exception may cross a TBB task boundary. Each is a trace span.
  auto guarded = [&options](Work& w, const char* stage, const std::function<void(Work&)>& body) {
    const auto start = TraceWriter::Clock::now();
    try {
      body(w);
    } catch (const std::exception& e) {
      if (w.result.status.ok()) w.result.status = Status(ErrorCode::kInternal, e.what());
    }
    if (options.trace != nullptr) {
      options.trace->Complete(
          "sweep", std::string(stage) + " point " + std::to_string(w.point.index), start,
          TraceWriter::Clock::now(), {{"point", w.point.index}, {"ok", w.result.status.ok()}});
    }
  };

  if (!options.pipeline) {
    for (const SweepPoint& p : points) {
      Work w;
      w.point = p;
      guarded(w, "decode", prepare);
      guarded(w, "execute", execute);
      guarded(w, "encode", finalize);
      report(w);
      if (!fatal.ok()) break;
    }
  } else {
    size_t next = 0;
    tbb::parallel_pipeline(
        static_cast<size_t>(std::max(1, options.max_in_flight)),
        tbb::make_filter<
            void, Work*>(tbb::filter_mode::serial_in_order, [&](tbb::flow_control& fc) -> Work* {
          if (next >= points.size() || !fatal.ok() ||
              (options.cancel != nullptr && options.cancel->load())) {
            fc.stop();
            return nullptr;
          }
          auto* w = new Work();
          w->point = points[next++];
          return w;
        }) & tbb::make_filter<Work*, Work*>(tbb::filter_mode::parallel, [&](Work* w) {
          guarded(*w, "decode", prepare);
          return w;
        }) & tbb::make_filter<Work*, Work*>(tbb::filter_mode::serial_in_order, [&](Work* w) {
          guarded(*w, "execute", execute);
          return w;
        }) & tbb::make_filter<Work*, Work*>(tbb::filter_mode::parallel, [&](Work* w) {
          guarded(*w, "encode", finalize);
          return w;
        }) & tbb::make_filter<Work*, void>(tbb::filter_mode::serial_in_order, [&](Work* w) {
          std::unique_ptr<Work> owned(w);
          report(*w);
        }));
  }
  summary.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (!fatal.ok()) return fatal;
  return summary;
}

}  // namespace discomfort::engine
