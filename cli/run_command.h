// `discomfort run` and `discomfort resume`: workflows or a loop plan for N iterations.
#pragma once

#include <CLI/CLI.hpp>

namespace discomfort::cli {

// Registers `run` and `resume` on `app`; the one that runs sets *exit_code.
void AddRunCommands(CLI::App& app, int* exit_code);

}  // namespace discomfort::cli
