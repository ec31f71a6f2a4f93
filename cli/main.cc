// The discomfort command line: dispatches to the commands. `run`/`resume` and `sweep` live in
// their own files; the workflow toolkit commands in graph_commands.cc.
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include <CLI/CLI.hpp>

#include "cli/graph_commands.h"
#include "cli/report_command.h"
#include "cli/run_command.h"
#include "cli/session.h"
#include "cli/sweep_command.h"
#include "engine/logging.h"
#include "storage/filesystem.h"

namespace {

using discomfort::Result;
using discomfort::Status;
using nlohmann::json;

int ObjectInfoCommand(const discomfort::cli::CommonOptions& common, const std::string& out_path) {
  auto bridge = discomfort::cli::StartBridge(common);
  if (!bridge.ok()) return discomfort::cli::Fail(bridge.status());
  auto info = (*bridge)->ObjectInfo();
  if (!info.ok()) return discomfort::cli::Fail(info.status());
  const std::string text = info->dump(1) + "\n";
  if (out_path.empty() || out_path == "-") {
    std::cout << text << std::flush;
    return 0;
  }
  auto& fs = *discomfort::storage::FileSystem::Default();
  if (Status st = discomfort::storage::WriteWholeFile(fs, out_path, text, /*sync=*/false);
      !st.ok()) {
    return discomfort::cli::Fail(st);
  }
  std::cerr << "[discomfort] " << info->size() << " node definitions written to " << out_path
            << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  discomfort::engine::UseDiscomfortLogger();
  CLI::App app{"Discomfort: run ComfyUI workflows in loops, in-process"};
  app.require_subcommand(1);
  int exit_code = 0;

  discomfort::cli::AddRunCommands(app, &exit_code);
  discomfort::cli::AddSweepCommand(app, &exit_code);
  discomfort::cli::AddReportCommand(app, &exit_code);

  discomfort::cli::CommonOptions oi_common;
  std::string oi_out;
  CLI::App* oi_cmd = app.add_subcommand(
      "object-info", "dump node definitions (/object_info shape) from the embedded ComfyUI");
  oi_cmd->add_option("-o,--out", oi_out, "output file (default stdout)");
  discomfort::cli::AddCommonOptions(oi_cmd, &oi_common);
  oi_cmd->callback([&] { exit_code = ObjectInfoCommand(oi_common, oi_out); });

  discomfort::cli::CommonOptions graph_common;
  discomfort::cli::AddGraphCommands(
      app,
      [&graph_common]() -> Result<json> {
        auto bridge = discomfort::cli::StartBridge(graph_common);
        if (!bridge.ok()) return bridge.status();
        return (*bridge)->ObjectInfo();
      },
      &exit_code);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  discomfort::cli::RemoveTemporaryWorkDir();
  std::cout.flush();
  std::fflush(nullptr);
  // Skip static destructors: the embedded interpreter and torch keep threads that must not be
  // torn down under them.
  std::_Exit(exit_code);
}
