#include "engine/trace.h"

#include <unistd.h>

namespace discomfort::engine {
namespace {

using nlohmann::json;

// Tracks are small numbers, one per thread that ever wrote an event (OS thread ids are long and
// reused).
int ThisThreadTrack() {
  static std::atomic<int> next{1};
  thread_local const int track = next.fetch_add(1);
  return track;
}

constexpr size_t kFlushBytes = 64 << 10;

}  // namespace

Result<std::unique_ptr<TraceWriter>> TraceWriter::Open(const std::string& path,
                                                       storage::FileSystem* fs) {
  if (fs == nullptr) fs = storage::FileSystem::Default();
  auto file = fs->NewWritableFile(path);
  if (!file.ok())
    return Status(file.status().code(),
                  "cannot write the trace " + path + ": " + file.status().message());
  std::unique_ptr<TraceWriter> writer(new TraceWriter(path, std::move(file).value()));
  writer->Add({{"ph", "M"},
               {"name", "process_name"},
               {"pid", ::getpid()},
               {"tid", 0},
               {"args", {{"name", "discomfort"}}}});
  return writer;
}

TraceWriter::TraceWriter(std::string path, std::unique_ptr<storage::WritableFile> file)
    : path_(std::move(path)), origin_(Clock::now()), file_(std::move(file)) {
  MutexLock lock(mu_);
  buffer_ = "{\"displayTimeUnit\": \"ms\", \"traceEvents\": [\n";
}

TraceWriter::~TraceWriter() { Close().IgnoreError(); }  // Close() was the place to see errors

int64_t TraceWriter::Micros(Clock::time_point t) const {
  return std::chrono::duration_cast<std::chrono::microseconds>(t - origin_).count();
}

void TraceWriter::Add(json event) {
  std::string text;
  try {  // callers include TBB tasks: nothing may escape, a name with bad UTF-8 included
    event["pid"] = ::getpid();
    if (!event.contains("tid")) event["tid"] = ThisThreadTrack();
    text = event.dump(-1, ' ', false, json::error_handler_t::replace);
  } catch (...) {
    return;
  }
  MutexLock lock(mu_);
  if (closed_) return;
  if (!first_) buffer_ += ",\n";
  first_ = false;
  buffer_ += text;
  if (buffer_.size() >= kFlushBytes && error_.ok()) {
    error_ = file_->Append(buffer_.data(), buffer_.size());
    buffer_.clear();
  }
}

void TraceWriter::Begin(std::string_view category, std::string_view name, json args) {
  json e = {{"ph", "B"}, {"cat", category}, {"name", name}, {"ts", Micros(Clock::now())}};
  if (!args.is_null()) e["args"] = std::move(args);
  Add(std::move(e));
}

void TraceWriter::End(std::string_view category, std::string_view name) {
  Add({{"ph", "E"}, {"cat", category}, {"name", name}, {"ts", Micros(Clock::now())}});
}

int TraceWriter::CurrentTrack() { return ThisThreadTrack(); }

void TraceWriter::Complete(std::string_view category, std::string_view name,
                           Clock::time_point start, Clock::time_point end, json args, int track) {
  json e = {{"ph", "X"},
            {"cat", category},
            {"name", name},
            {"ts", Micros(start)},
            {"dur", std::max<int64_t>(0, Micros(end) - Micros(start))}};
  if (track >= 0) e["tid"] = track;
  if (!args.is_null()) e["args"] = std::move(args);
  Add(std::move(e));
}

void TraceWriter::Instant(std::string_view category, std::string_view name, json args) {
  json e = {
      {"ph", "i"}, {"s", "t"}, {"cat", category}, {"name", name}, {"ts", Micros(Clock::now())}};
  if (!args.is_null()) e["args"] = std::move(args);
  Add(std::move(e));
}

void TraceWriter::NameThread(std::string_view name) {
  Add({{"ph", "M"}, {"name", "thread_name"}, {"args", {{"name", name}}}});
}

Status TraceWriter::Close() {
  MutexLock lock(mu_);
  if (closed_) return error_;
  closed_ = true;
  buffer_ += "\n]}\n";
  if (error_.ok()) error_ = file_->Append(buffer_.data(), buffer_.size());
  buffer_.clear();
  Status closed = file_->Close();
  if (error_.ok()) error_ = closed;
  return error_;
}

void TraceContextIo(storage::Context& context, TraceWriter* trace) {
  if (trace == nullptr) {
    context.SetIoObserver(nullptr);
    return;
  }
  context.SetIoObserver([trace](std::string_view what, const std::string& key, uint64_t bytes,
                                TraceWriter::Clock::time_point start,
                                TraceWriter::Clock::time_point end) {
    trace->Complete(what, std::string(what) + " " + key, start, end,
                    {{"key", key}, {"bytes", bytes}});
  });
}

Result<std::unique_ptr<TraceSession>> TraceSession::Open(const std::string& path,
                                                         storage::Context* context,
                                                         storage::FileSystem* fs) {
  DISCOMFORT_ASSIGN_OR_RETURN(std::unique_ptr<TraceWriter> writer, TraceWriter::Open(path, fs));
  return std::unique_ptr<TraceSession>(new TraceSession(std::move(writer), context));
}

TraceSession::TraceSession(std::unique_ptr<TraceWriter> writer, storage::Context* context)
    : writer_(std::move(writer)), context_(context) {
  writer_->NameThread("loop");
  if (context_ != nullptr) TraceContextIo(*context_, writer_.get());
}

TraceSession::~TraceSession() { Close().IgnoreError(); }  // Close() was the place to see errors

Status TraceSession::Close() {
  if (context_ != nullptr) {
    TraceContextIo(*context_, nullptr);
    context_ = nullptr;
  }
  return writer_->Close();
}

TraceSpan::TraceSpan(TraceWriter* trace, std::string_view category, std::string name,
                     nlohmann::json args)
    : trace_(trace), category_(category), name_(std::move(name)) {
  if (trace_ != nullptr) trace_->Begin(category_, name_, std::move(args));
}

TraceSpan::~TraceSpan() {
  if (trace_ != nullptr) trace_->End(category_, name_);
}

}  // namespace discomfort::engine
