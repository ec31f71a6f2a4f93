#include "engine/image_writer.h"

#include <cctype>
#include <cstdio>

#include "engine/image_io.h"
#include "graph/parallel.h"

namespace discomfort::engine {

std::string SanitizeForFileName(const std::string& name) {
  std::string out;
  for (char c : name)
    out += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') ? c : '_';
  return out.empty() ? "port" : out;
}

ImageWriter::ImageWriter(std::string dir, storage::FileSystem* fs, TraceWriter* trace)
    : dir_(std::move(dir)),
      fs_(fs != nullptr ? fs : storage::FileSystem::Default()),
      trace_(trace) {}

ImageWriter::~ImageWriter() { tasks_.wait(); }

std::vector<std::string> ImageWriter::Write(const std::string& uid, int iteration,
                                            const at::Tensor& image) {
  char index[16];
  std::snprintf(index, sizeof(index), "%05d", iteration);
  const std::string stem = dir_ + "/" + SanitizeForFileName(uid) + "_" + index;
  const int64_t batch = image.dim() >= 3 ? image.size(0) : 1;
  std::vector<std::string> names;
  for (int64_t b = 0; b < batch; ++b) {
    names.push_back(stem + (batch == 1 ? std::string() : "_" + std::to_string(b)) + ".png");
  }
  // Publish/Receive tell ThreadSanitizer what TBB's uninstrumented queue publishes: this writer's
  // members, written before the task runs on a worker. (Not graph::internal::Spawn: its
  // std::function would be read before the task could Receive.)
  graph::internal::Publish();
  tasks_.run([this, image, stem, uid, iteration] {
    graph::internal::Receive();
    Status st;
    const auto start = TraceWriter::Clock::now();
    try {
      auto written = WriteImagePngs(image, stem, fs_);
      if (!written.ok()) st = written.TakeStatus();
    } catch (const std::exception& e) {  // no exception may escape a TBB task
      st = Status(ErrorCode::kInternal, std::string("PNG encoding: ") + e.what());
    }
    if (trace_ != nullptr) {
      trace_->Complete("png", "encode " + uid, start, TraceWriter::Clock::now(),
                       {{"port", uid}, {"iteration", iteration}, {"ok", st.ok()}});
    }
    if (!st.ok()) {
      MutexLock lock(mu_);
      if (first_error_.ok()) first_error_ = st;
    }
  });
  return names;
}

Status ImageWriter::Wait() {
  tasks_.wait();
  MutexLock lock(mu_);
  return first_error_;
}

}  // namespace discomfort::engine
