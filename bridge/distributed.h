// Sweeps spread over a Ray cluster: the driver is Python (discomfort.distributed, on Ray's own
// API); this runs it in the embedded interpreter for the CLI. The engine computes the points; the
// driver hands them to one actor per worker slot, each holding a warm engine.
#pragma once

#include <atomic>
#include <functional>

#include <nlohmann/json.hpp>

#include "discomfort/status.h"

namespace discomfort::bridge {

// Runs discomfort.distributed.run_sweep(config, cancelled, emit) and returns its exit code.
// `emit` receives each point's result line; `cancel` (may be null) is polled by the driver.
// kNotFound with how to install when the package or Ray cannot be imported.
Result<int> RunDistributedSweep(const nlohmann::json& config, const std::atomic<bool>* cancel,
                                const std::function<void(const nlohmann::json&)>& emit);

}  // namespace discomfort::bridge
