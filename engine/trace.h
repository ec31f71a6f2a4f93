// A trace of a run in Chrome's trace-event JSON, which Perfetto and chrome://tracing open: one
// track per thread, spans for iterations, stages, workflows and every ComfyUI node, context spills
// and reloads (with bytes), PNG encodes, the sweep pipeline's stages; retries and failures as
// instant events. Timestamps come from one clock (steady, microseconds since the trace opened).
//
// Events stream to the file as they come (a crash leaves a readable prefix; viewers accept a
// missing closing bracket); Close() completes it. Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/thread_annotations.h"
#include "discomfort/status.h"
#include "storage/context.h"
#include "storage/filesystem.h"

namespace discomfort::engine {

class TraceWriter {
 public:
  using Clock = std::chrono::steady_clock;

  // `fs` null: the real file system.
  static Result<std::unique_ptr<TraceWriter>> Open(const std::string& path,
                                                   storage::FileSystem* fs = nullptr);
  ~TraceWriter();

  // A span on the calling thread's track; Begin/End pairs nest (iteration > stage > workflow >
  // node).
  void Begin(std::string_view category, std::string_view name, nlohmann::json args = nullptr);
  void End(std::string_view category, std::string_view name);
  // A span measured elsewhere, on `track` (default: the calling thread's; see CurrentTrack).
  void Complete(std::string_view category, std::string_view name, Clock::time_point start,
                Clock::time_point end, nlohmann::json args = nullptr, int track = -1);
  // A moment: a retry, a failure, a skipped stage.
  void Instant(std::string_view category, std::string_view name, nlohmann::json args = nullptr);
  // Names the calling thread's track ("loop", "png encode", "sweep decode" ...).
  void NameThread(std::string_view name);
  // The calling thread's track number.
  static int CurrentTrack();

  // Writes what is buffered and the closing bracket; later events are dropped. The first write
  // error.
  Status Close() EXCLUDES(mu_);
  const std::string& path() const { return path_; }

 private:
  TraceWriter(std::string path, std::unique_ptr<storage::WritableFile> file);
  void Add(nlohmann::json event) EXCLUDES(mu_);
  int64_t Micros(Clock::time_point t) const;

  const std::string path_;
  const Clock::time_point origin_;
  Mutex mu_;
  std::unique_ptr<storage::WritableFile> file_ GUARDED_BY(mu_);
  std::string buffer_ GUARDED_BY(mu_);
  bool first_ GUARDED_BY(mu_) = true;
  bool closed_ GUARDED_BY(mu_) = false;
  Status error_ GUARDED_BY(mu_);
};

// A trace for one run: the writer, and the context's spills and reloads recorded in it while the
// session lives. Destroying it detaches from the context and completes the file.
class TraceSession {
 public:
  // `context` may be null (a sweep's points use their own contexts).
  static Result<std::unique_ptr<TraceSession>> Open(const std::string& path,
                                                    storage::Context* context,
                                                    storage::FileSystem* fs = nullptr);
  ~TraceSession();
  TraceWriter* writer() const { return writer_.get(); }
  // Completes the file now; the first write error.
  Status Close();

 private:
  TraceSession(std::unique_ptr<TraceWriter> writer, storage::Context* context);
  std::unique_ptr<TraceWriter> writer_;
  storage::Context* context_;
};

// Records a context's spills and reloads in `trace` (null: stops recording).
void TraceContextIo(storage::Context& context, TraceWriter* trace);

// Begin on construction, End on destruction; a null writer does nothing (tracing off costs a test).
class TraceSpan {
 public:
  TraceSpan(TraceWriter* trace, std::string_view category, std::string name,
            nlohmann::json args = nullptr);
  ~TraceSpan();
  TraceSpan(const TraceSpan&) = delete;
  TraceSpan& operator=(const TraceSpan&) = delete;

 private:
  TraceWriter* trace_;
  std::string category_;
  std::string name_;
};

}  // namespace discomfort::engine
