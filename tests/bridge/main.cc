// Test main for the bridge suites: starts the real ComfyUI (COMFYUI_PATH or ~/ComfyUI) once.
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include <gtest/gtest.h>

#include "tests/bridge/comfy_environment.h"

namespace discomfort::testing {
namespace {
std::unique_ptr<bridge::ComfyBridge> g_bridge;
}

bridge::ComfyBridge& Comfy() { return *g_bridge; }

}  // namespace discomfort::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  // gtest_discover_tests lists tests without running them: no need to import ComfyUI.
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]).rfind("--gtest_list_tests", 0) == 0) return RUN_ALL_TESTS();
  }
  discomfort::bridge::BridgeOptions options;
  options.work_dir = (std::filesystem::temp_directory_path() /
                      ("discomfort-bridge-tests-" + std::to_string(::getpid())))
                         .string();
  options.extra_node_paths = {std::string(DISCOMFORT_SOURCE_DIR) +
                              "/tests/bridge/nodes/discomfort_test_nodes.py"};
  auto started = discomfort::bridge::ComfyBridge::Start(options);
  if (!started.ok()) {
    std::fprintf(stderr, "cannot start ComfyUI for the bridge tests: %s\n%s\n",
                 started.status().ToString().c_str(), started.status().traceback().c_str());
    return 1;
  }
  discomfort::testing::g_bridge = std::move(started).value();
  const int rc = RUN_ALL_TESTS();
  std::error_code ec;
  std::filesystem::remove_all(options.work_dir, ec);
  std::fflush(nullptr);
  std::_Exit(rc);  // the interpreter is never finalized (torch / ComfyUI threads)
}
