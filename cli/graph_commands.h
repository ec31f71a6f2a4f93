// The workflow toolkit commands of the discomfort CLI: convert, ports, validate, stitch, prune.
// Pure graph/ work; node definitions come from --object-info or from the caller's provider (the
// embedded ComfyUI).
#pragma once

#include <functional>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "discomfort/status.h"

namespace discomfort::cli {

using ObjectInfoProvider = std::function<Result<nlohmann::json>()>;

// Registers the subcommands on `app`. A failing command prints Status::ToString() to stderr and
// sets *exit_code to 2; a successful one leaves *exit_code untouched.
void AddGraphCommands(CLI::App& app, ObjectInfoProvider live_object_info, int* exit_code);

}  // namespace discomfort::cli
