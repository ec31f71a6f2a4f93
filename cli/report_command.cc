#include "cli/report_command.h"

#include <iostream>

#include <spdlog/spdlog.h>

#include "bridge/report.h"
#include "cli/session.h"

namespace discomfort::cli {

std::string WriteRunReport(const std::string& run_dir, const std::string& events_path,
                           const std::string& trace_path, const std::string& until) {
  bridge::ReportRequest request;
  request.run_dir = run_dir;
  request.events_path = events_path;
  request.trace_path = trace_path;
  request.until = until;
  auto written = bridge::GenerateReport(request);
  if (!written.ok()) {
    spdlog::warn("[discomfort] no report: {}", written.status().ToString());
    return "";
  }
  std::cerr << "[discomfort] report: " << *written << "\n";
  return *written;
}

void AddReportCommand(CLI::App& app, int* exit_code) {
  static bridge::ReportRequest request;
  CLI::App* cmd =
      app.add_subcommand("report", "write one self-contained HTML report of a run or sweep folder");
  cmd->add_option("run_dir", request.run_dir,
                  "the run's --out folder (its events.jsonl, trace.json and images)")
      ->required();
  cmd->add_option("-o,--out", request.out, "the HTML file (default RUN_DIR/report.html)");
  cmd->add_option("--events", request.events_path,
                  "the run's events file (default RUN_DIR/events.jsonl)");
  cmd->add_option("--trace", request.trace_path,
                  "the run's trace (default RUN_DIR/trace.json when present)");
  cmd->add_option("--until", request.until, "the run's until condition, to draw its threshold");
  cmd->add_option("--title", request.title, "the report's title");
  cmd->callback([exit_code] {
    auto written = bridge::GenerateReport(request);
    if (!written.ok()) {
      *exit_code = Fail(written.status());
      return;
    }
    std::cout << *written << std::endl;  // the command's output: where the report is
  });
}

}  // namespace discomfort::cli
