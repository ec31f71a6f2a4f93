// Discomfort's log: spdlog's default logger, writing to stderr (stdout carries only a command's
// output), or to a callback an embedding program installs. Every entry point (the CLI, the Python
// module, the C++ SDK) calls UseDiscomfortLogger before anything logs.
#pragma once

#include <functional>
#include <string>

namespace discomfort::engine {

enum class LogLevel { kDebug, kInfo, kWarning, kError };

// Idempotent: installs the "discomfort" logger on stderr (plain "%v" lines) unless already there.
void UseDiscomfortLogger();
// Debug lines too (-v).
void SetVerboseLogging(bool verbose);
// Routes every line to `sink` instead of stderr (null: back to stderr). The sink may be called
// from any thread and must not block for long.
using LogSink = std::function<void(LogLevel level, const std::string& message)>;
void SetLogSink(LogSink sink);

}  // namespace discomfort::engine
