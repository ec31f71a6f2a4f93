#include "engine/logging.h"

#include <memory>
#include <mutex>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace discomfort::engine {
namespace {

constexpr char kLoggerName[] = "discomfort";

LogLevel ToLevel(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
    case spdlog::level::debug:
      return LogLevel::kDebug;
    case spdlog::level::info:
      return LogLevel::kInfo;
    case spdlog::level::warn:
      return LogLevel::kWarning;
    default:
      return LogLevel::kError;
  }
}

class CallbackSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit CallbackSink(LogSink sink) : sink_(std::move(sink)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    try {
      sink_(ToLevel(msg.level), std::string(msg.payload.data(), msg.payload.size()));
    } catch (...) {  // a host's logger must not take the engine down
    }
  }
  void flush_() override {}

 private:
  LogSink sink_;
};

std::mutex g_logger_mu;

std::shared_ptr<spdlog::logger> MakeLogger(spdlog::sink_ptr sink) {
  auto logger = std::make_shared<spdlog::logger>(kLoggerName, std::move(sink));
  logger->set_pattern("%v");
  return logger;
}

}  // namespace

void UseDiscomfortLogger() {
  std::lock_guard<std::mutex> lock(g_logger_mu);
  auto current = spdlog::default_logger();
  if (current && current->name() == kLoggerName) return;
  auto logger = MakeLogger(std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_level(current ? current->level() : spdlog::level::info);
  spdlog::set_default_logger(logger);
}

void SetVerboseLogging(bool verbose) {
  UseDiscomfortLogger();
  spdlog::set_level(verbose ? spdlog::level::debug : spdlog::level::info);
}

void SetLogSink(LogSink sink) {
  std::lock_guard<std::mutex> lock(g_logger_mu);
  const auto level =
      spdlog::default_logger() ? spdlog::default_logger()->level() : spdlog::level::info;
  spdlog::sink_ptr target;
  if (sink) {
    target = std::make_shared<CallbackSink>(std::move(sink));
  } else {
    target = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  }
  auto logger = MakeLogger(std::move(target));
  logger->set_level(level);
  spdlog::set_default_logger(logger);
}

}  // namespace discomfort::engine
