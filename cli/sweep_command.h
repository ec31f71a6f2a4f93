// `discomfort sweep`: independent runs over a parameter grid or a folder of images.
#pragma once

#include <CLI/CLI.hpp>

namespace discomfort::cli {

// Registers `sweep` on `app`; running it sets *exit_code.
void AddSweepCommand(CLI::App& app, int* exit_code);

}  // namespace discomfort::cli
