// ComfyUI as a library: imports a ComfyUI checkout into the (embedded or hosting) Python,
// registers Discomfort's nodes, and validates/executes prompts with ComfyUI's own
// validate_prompt and long-lived PromptExecutors. Implements engine::Executor.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "discomfort/status.h"
#include "engine/executor.h"
#include "engine/workflow_resolver.h"

namespace discomfort::bridge {

struct BridgeOptions {
  std::string comfyui_path;       // empty: FindComfyUI()
  std::string work_dir;           // output/, temp/, input/, user/ are created under it
  std::optional<bool> force_cpu;  // unset: CPU when torch sees no CUDA device
  bool verbose = false;           // let ComfyUI's INFO logging through
  std::string venv_python;        // see RuntimeOptions
  // Custom-node files or packages to load besides ComfyUI's built-in nodes.
  std::vector<std::string> extra_node_paths;
  // Python's sys.stdout becomes sys.stderr (the CLI: stdout carries only a command's output).
  bool python_stdout_to_stderr = false;
};

// COMFYUI_PATH, else the ComfyUI whose custom_nodes/ holds this repository, else the checkout
// the build was configured with, else ~/ComfyUI. The error says how to point to one.
Result<std::string> FindComfyUI(const std::string& explicit_path = {});

class ComfyBridge final : public engine::Executor, public engine::NodeDefinitionSource {
 public:
  // ComfyUI can be imported once per process; later calls return errors if options differ in
  // comfyui_path, otherwise another handle onto the same imported ComfyUI.
  static Result<std::unique_ptr<ComfyBridge>> Start(const BridgeOptions& options);
  ~ComfyBridge() override;

  // {"comfyui_path", "comfyui_version", "device", "cpu", "import_failed": [...], ...}
  const nlohmann::json& info() const { return info_; }
  // Optional built-in node modules that failed to import (a warning, not fatal).
  std::vector<std::string> ImportWarnings() const;

  // Node definitions in the /object_info shape, from the live registry (V1 and V3 nodes).
  Result<nlohmann::json> ObjectInfo() override;
  // ComfyUI's validate_prompt; errors name the node, class and input.
  Status Validate(const nlohmann::json& prompt);

  // One execution at a time in the process, whichever thread or handle asks (ComfyUI's executor
  // state is global): concurrent callers take turns, each execution whole.
  Result<engine::ExecutionOutcome> Execute(const engine::ExecutionRequest& request) override;
  void Interrupt() override;
  // Drops the executor (and its node cache) of a slot.
  void ResetSlot(const std::string& slot) override;
  // Loads a custom-node file or package into the running ComfyUI (errors name the path).
  Status LoadNodes(const std::string& path);

 private:
  ComfyBridge() = default;
  nlohmann::json info_;
};

// Translates ComfyUI's validate_prompt result ({"error", "node_errors"}) into a Status naming
// the first failing node, its class_type and input.
Status StatusFromValidation(const nlohmann::json& validation, const nlohmann::json& prompt);

}  // namespace discomfort::bridge
