// `discomfort report RUN_DIR`, and the report `--report` writes after a run or a sweep.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

namespace discomfort::cli {

void AddReportCommand(CLI::App& app, int* exit_code);

// After `run --report` / `sweep --report`: writes RUN_DIR/report.html and says where on stderr;
// a report that cannot be made is a warning (the run's own result stands). Returns the path or "".
std::string WriteRunReport(const std::string& run_dir, const std::string& events_path,
                           const std::string& trace_path, const std::string& until);

}  // namespace discomfort::cli
