// The run report (python/discomfort/report: one self-contained HTML file from a run's events, trace
// and images), generated from C++ through the embedded interpreter for `discomfort report` and
// `--report`. The report package needs neither the compiled core nor ComfyUI.
#pragma once

#include <string>

#include "discomfort/status.h"

namespace discomfort::bridge {

struct ReportRequest {
  std::string run_dir;
  std::string out;          // "": <run_dir>/report.html
  std::string events_path;  // "": <run_dir>/events.jsonl
  std::string trace_path;   // "": <run_dir>/trace.json when it exists
  std::string until;        // the run's condition, to draw its threshold
  std::string title;
};

// The path written. kNotFound when the run folder holds nothing to report on, kPython (with what
// to install) when the report's libraries are missing.
Result<std::string> GenerateReport(const ReportRequest& request);

}  // namespace discomfort::bridge
