// PNG encoding in the background: iteration N's images encode on TBB workers while N+1 executes.
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <tbb/task_group.h>

#include "base/thread_annotations.h"
#include "discomfort/status.h"
#include "engine/trace.h"
#include "storage/filesystem.h"

namespace discomfort::engine {

class ImageWriter {
 public:
  // Files go to `dir` as <sanitized uid>_<iteration, 5 digits>[_<batch index>].png.
  // `trace` (may be null) gets a span per encode, on the encoding worker's track.
  ImageWriter(std::string dir, storage::FileSystem* fs, TraceWriter* trace = nullptr);
  ~ImageWriter();  // waits for the encodes in flight

  // Returns the names the files will have; the encode runs in the background.
  std::vector<std::string> Write(const std::string& uid, int iteration, const at::Tensor& image);
  // Waits for every encode; the first error of any of them.
  Status Wait() EXCLUDES(mu_);

 private:
  std::string dir_;
  storage::FileSystem* fs_;
  TraceWriter* trace_;
  tbb::task_group tasks_;
  Mutex mu_;
  Status first_error_ GUARDED_BY(mu_);
};

// A unique_id as a file-name part: letters, digits, '-' and '_' kept, anything else '_'.
std::string SanitizeForFileName(const std::string& name);

}  // namespace discomfort::engine
