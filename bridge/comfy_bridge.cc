#include "bridge/comfy_bridge.h"

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <mutex>

#include <pybind11/embed.h>
#include <pybind11/stl.h>
#include <spdlog/spdlog.h>

#include "bridge/python_errors.h"
#include "bridge/python_runtime.h"
#include "bridge/value_convert.h"
#include "engine/logging.h"

namespace py = pybind11;
namespace fs = std::filesystem;

namespace discomfort::bridge {
namespace {

std::mutex g_start_mu;
// Held for each whole execution: ComfyUI's executor, node registry and the loaders' value table are
// process-wide.
std::mutex g_execution_mu;
std::string g_started_path;  // the ComfyUI imported into this process
nlohmann::json g_info;

bool IsComfyCheckout(const fs::path& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir / "execution.py", ec) &&
         fs::is_regular_file(dir / "nodes.py", ec) && fs::is_directory(dir / "comfy", ec);
}

py::object Host() { return py::module_::import("discomfort_bridge").attr("HOST"); }

nlohmann::json ToJson(py::handle object) {
  nlohmann::json out;
  if (!PythonToJson(object, &out)) out = py::str(object).cast<std::string>();
  return out;
}

std::string JsonString(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return {};
  return it->is_string() ? it->get<std::string>() : it->dump();
}

}  // namespace

Result<std::string> FindComfyUI(const std::string& explicit_path) {
  std::vector<fs::path> candidates;
  if (!explicit_path.empty()) {
    if (!IsComfyCheckout(explicit_path)) {
      return Status(
          ErrorCode::kNotFound,
          explicit_path + " is not a ComfyUI checkout (no execution.py, nodes.py, comfy/)");
    }
    return fs::canonical(explicit_path).string();
  }
  if (const char* env = std::getenv("COMFYUI_PATH"); env != nullptr && *env) {
    if (!IsComfyCheckout(env)) {
      return Status(ErrorCode::kNotFound,
                    std::string("COMFYUI_PATH=") + env +
                        " is not a ComfyUI checkout (no execution.py, nodes.py, comfy/)");
    }
    return fs::canonical(env).string();
  }
  const fs::path source = DISCOMFORT_SOURCE_DIR;
  if (source.parent_path().filename() == "custom_nodes")
    candidates.push_back(source.parent_path().parent_path());
  if (std::string(DISCOMFORT_DEFAULT_COMFYUI).size() > 0)
    candidates.emplace_back(DISCOMFORT_DEFAULT_COMFYUI);
  if (const char* home = std::getenv("HOME"); home != nullptr)
    candidates.push_back(fs::path(home) / "ComfyUI");
  for (const auto& c : candidates) {
    if (IsComfyCheckout(c)) return fs::canonical(c).string();
  }
  return Status(
      ErrorCode::kNotFound,
      "no ComfyUI checkout found: set COMFYUI_PATH=/path/to/ComfyUI, install Discomfort into "
      "ComfyUI/custom_nodes/, or put ComfyUI at ~/ComfyUI (v0.33.0 and v0.8.0 are supported)");
}

Result<std::unique_ptr<ComfyBridge>> ComfyBridge::Start(const BridgeOptions& options) {
  engine::UseDiscomfortLogger();  // logs on stderr (or the embedding program's sink), never stdout
  DISCOMFORT_ASSIGN_OR_RETURN(std::string comfy, FindComfyUI(options.comfyui_path));
  RuntimeOptions runtime;
  runtime.venv_python = options.venv_python;
  DISCOMFORT_RETURN_IF_ERROR(EnsurePythonRuntime(runtime));

  std::lock_guard<std::mutex> lock(g_start_mu);
  if (!g_started_path.empty()) {
    if (g_started_path != comfy) {
      return Status(ErrorCode::kInvalidArgument,
                    "this process already imported ComfyUI from " + g_started_path +
                        "; one ComfyUI per process (its modules are global), cannot also use " +
                        comfy);
    }
    std::unique_ptr<ComfyBridge> bridge(new ComfyBridge());
    bridge->info_ = g_info;
    return bridge;
  }
  fs::path work = options.work_dir.empty()
                      ? fs::temp_directory_path() / ("discomfort-" + std::to_string(::getpid()))
                      : fs::path(options.work_dir);
  work = fs::absolute(work);
  py::gil_scoped_acquire gil;
  try {
    py::object force_cpu =
        options.force_cpu ? py::object(py::bool_(*options.force_cpu)) : py::none();
    py::object info = Host().attr("start")(
        comfy, (work / "output").string(), (work / "temp").string(), (work / "input").string(),
        (work / "user").string(), force_cpu, options.verbose, options.extra_node_paths);
    g_info = ToJson(info);
    // Python's log lines (ComfyUI, custom nodes) join the engine's: stderr, or the embedding
    // program's sink.
    Host().attr("forward_logging")(py::cpp_function([](int level, const std::string& text) {
      py::gil_scoped_release release;  // a sink may block; it must not hold the interpreter
      const auto spd = level >= 40   ? spdlog::level::err
                       : level >= 30 ? spdlog::level::warn
                       : level >= 20 ? spdlog::level::info
                                     : spdlog::level::debug;
      spdlog::log(spd, "{}", text);
    }));
    if (options.python_stdout_to_stderr) {
      // A command's stdout carries only its output: a node's print() goes to stderr.
      py::module_ sys = py::module_::import("sys");
      sys.attr("stdout") = sys.attr("stderr");
    }
  } catch (py::error_already_set& e) {
    Status st = StatusFromPythonError(e, ErrorCode::kPython);
    return Status(ErrorCode::kPython,
                  "importing ComfyUI from " + comfy + " failed: " + st.message())
        .set_traceback(st.traceback());
  }
  g_started_path = comfy;
  std::unique_ptr<ComfyBridge> bridge(new ComfyBridge());
  bridge->info_ = g_info;
  for (const auto& w : bridge->ImportWarnings()) {
    spdlog::warn("[discomfort] optional ComfyUI node module not loaded: {}", w);
  }
  return bridge;
}

ComfyBridge::~ComfyBridge() = default;

std::vector<std::string> ComfyBridge::ImportWarnings() const {
  std::vector<std::string> out;
  for (const auto& w : info_.value("import_failed", nlohmann::json::array())) {
    out.push_back(w.is_string() ? w.get<std::string>() : w.dump());
  }
  return out;
}

Result<nlohmann::json> ComfyBridge::ObjectInfo() {
  py::gil_scoped_acquire gil;
  try {
    // Node definitions hold tuples, enums and infinities: Python serializes, C++ parses.
    const std::string text = Host().attr("object_info")().cast<std::string>();
    nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded())
      return Status(ErrorCode::kInternal, "node definitions are not valid JSON");
    for (const auto& [name, why] : j["failures"].items()) {
      spdlog::warn("[discomfort] node {} has no definition: {}", name, why.dump());
    }
    return j["object_info"];
  } catch (py::error_already_set& e) {
    return StatusFromPythonError(e, ErrorCode::kPython);
  }
}

Status StatusFromValidation(const nlohmann::json& validation, const nlohmann::json& prompt) {
  const nlohmann::json& error = validation.value("error", nlohmann::json::object());
  const nlohmann::json& node_errors = validation.value("node_errors", nlohmann::json::object());
  std::string message = JsonString(error, "message");
  const std::string details = JsonString(error, "details");
  ErrorLocation where;
  // The first failing node's first error carries the most precise information.
  for (const auto& [node_id, entry] : node_errors.items()) {
    where.node_id = node_id;
    where.class_type = JsonString(entry, "class_type");
    const auto& errors = entry.value("errors", nlohmann::json::array());
    if (!errors.empty()) {
      const auto& first = errors[0];
      message = JsonString(first, "message");
      std::string det = JsonString(first, "details");
      if (!det.empty()) message += ": " + det;
      const auto& extra = first.value("extra_info", nlohmann::json::object());
      where.input_name = JsonString(extra, "input_name");
    }
    break;
  }
  if (where.node_id.empty()) {
    if (!details.empty()) message += ": " + details;
    // invalid_prompt errors name the node in extra_info or only in the text.
    const auto& extra = error.value("extra_info", nlohmann::json::object());
    where.node_id = JsonString(extra, "node_id");
    where.class_type = JsonString(extra, "class_type");
    if (where.node_id.empty()) {
      // ComfyUI writes "Node ID '#<id>'" into the message or the details.
      const std::string text = message + " " + details;
      for (const auto& [id, node] : prompt.items()) {
        const std::string tag = "#" + id;
        const size_t at = text.find(tag);
        if (at == std::string::npos) continue;
        const size_t end = at + tag.size();
        if (end < text.size() &&
            (std::isalnum(static_cast<unsigned char>(text[end])) || text[end] == ':'))
          continue;
        where.node_id = id;
        where.class_type = node.value("class_type", "");
        break;
      }
    }
  }
  if (message.empty()) message = "ComfyUI rejected the prompt";
  Status st(ErrorCode::kValidation, message, where);
  st.set_extra(validation);
  return st;
}

Status ComfyBridge::Validate(const nlohmann::json& prompt) {
  py::gil_scoped_acquire gil;
  try {
    nlohmann::json result = ToJson(Host().attr("validate")(JsonToPython(prompt)));
    if (result.value("ok", false)) return Status::Ok();
    return StatusFromValidation(result, prompt);
  } catch (py::error_already_set& e) {
    return StatusFromPythonError(e, ErrorCode::kPython);
  }
}

Result<engine::ExecutionOutcome> ComfyBridge::Execute(const engine::ExecutionRequest& request) {
  if (!request.prompt) return Status(ErrorCode::kInternal, "execution request without a prompt");
  std::unique_lock<std::mutex> turn(g_execution_mu, std::defer_lock);
  if (PyGILState_Check()) {
    py::gil_scoped_release release;  // the thread running now may need the GIL to finish
    turn.lock();
  } else {
    turn.lock();
  }
  py::gil_scoped_acquire gil;
  try {
    py::dict inputs, versions;
    for (const auto& [uid, value] : request.inputs) {
      auto object = ValueToPython(value);
      if (!object.ok()) {
        Status st = object.TakeStatus();
        st.where().port = uid;
        return st;
      }
      inputs[py::str(uid)] = *object;
    }
    for (const auto& [uid, version] : request.versions) versions[py::str(uid)] = py::int_(version);
    py::object on_event = py::none();
    if (request.on_progress) {
      // ComfyUI's executor events, translated to the engine's small vocabulary.
      auto forward = request.on_progress;
      on_event = py::cpp_function([forward](const std::string& event, py::dict data) {
        try {
          if (event == "executing" && !data["node"].is_none()) {
            forward("node_start", {{"node", py::str(data["node"]).cast<std::string>()}});
          } else if (event == "progress_state") {
            for (auto item : data["nodes"].cast<py::dict>()) {
              py::dict node = item.second.cast<py::dict>();
              // Only nodes that report steps (samplers, upscalers): every node "starts" at 0 of 1.
              if (py::str(node["state"]).cast<std::string>() != "running" ||
                  node["max"].cast<double>() <= 1)
                continue;
              forward("progress", {{"node", py::str(item.first).cast<std::string>()},
                                   {"value", node["value"].cast<double>()},
                                   {"max", node["max"].cast<double>()}});
            }
          } else if (event == "execution_cached") {
            nlohmann::json nodes = nlohmann::json::array();
            for (py::handle n : data["nodes"]) nodes.push_back(py::str(n).cast<std::string>());
            if (!nodes.empty()) forward("cached", {{"nodes", nodes}});
          }
        } catch (const std::exception& e) {
          spdlog::debug("[discomfort] progress event dropped: {}", e.what());
        }
      });
    }
    py::dict result = Host().attr("execute")(request.slot, JsonToPython(*request.prompt), inputs,
                                             versions, on_event, py::arg("exact") = request.exact);

    const bool ok = result["ok"].cast<bool>();
    const std::string stage = result["stage"].cast<std::string>();
    if (!ok && stage == "validation") {
      Status st = StatusFromValidation(ToJson(result), *request.prompt);
      st.where().workflow = request.workflow_name;
      return st;
    }
    if (!ok || result.contains("error")) {
      nlohmann::json error =
          result.contains("error") ? ToJson(result["error"]) : nlohmann::json::object();
      ErrorLocation where;
      where.workflow = request.workflow_name;
      where.node_id = JsonString(error, "node_id");
      where.class_type = JsonString(error, "class_type");
      const bool interrupted = result.contains("interrupted");
      std::string message = JsonString(error, "message");
      // Python messages may end with the newline of a formatted exception: one line per error.
      while (!message.empty() && std::isspace(static_cast<unsigned char>(message.back())))
        message.pop_back();
      const std::string type = JsonString(error, "exception_type");
      if (!type.empty()) message = type + ": " + message;
      if (message.empty()) message = "execution failed";
      Status st(interrupted ? ErrorCode::kCancelled : ErrorCode::kExecution, message, where);
      st.set_traceback(JsonString(error, "traceback"));
      return st;
    }
    engine::ExecutionOutcome outcome;
    for (auto item : result["outputs"].cast<py::dict>()) {
      outcome.outputs[item.first.cast<std::string>()] = ValueFromPython(item.second);
    }
    outcome.ui = ToJson(result["ui"]);
    outcome.seconds = result["seconds"].cast<double>();
    for (py::handle entry : result["node_times"]) {
      auto pair = entry.cast<py::tuple>();
      outcome.node_times.push_back({pair[0].cast<std::string>(), pair[1].cast<double>()});
    }
    return outcome;
  } catch (py::error_already_set& e) {
    Status st = StatusFromPythonError(e, ErrorCode::kPython);
    st.where().workflow = request.workflow_name;
    return st;
  } catch (const py::cast_error& e) {
    return Status(ErrorCode::kInternal,
                  std::string("unexpected result from the Python host: ") + e.what());
  }
}

void ComfyBridge::Interrupt() {
  py::gil_scoped_acquire gil;
  try {
    Host().attr("interrupt")();
  } catch (py::error_already_set& e) {
    spdlog::error("[discomfort] interrupt failed: {}",
                  StatusFromPythonError(e, ErrorCode::kPython).ToString());
  }
}

Status ComfyBridge::LoadNodes(const std::string& path) {
  py::gil_scoped_acquire gil;
  try {
    Host().attr("load_nodes")(path);
    return Status::Ok();
  } catch (py::error_already_set& e) {
    const bool missing = e.matches(PyExc_FileNotFoundError);
    Status st = StatusFromPythonError(e, ErrorCode::kPython);
    ErrorLocation where;
    where.workflow = path;
    return Status(missing ? ErrorCode::kNotFound : ErrorCode::kPython,
                  "loading custom nodes from " + path + " failed: " + st.message(), where)
        .set_traceback(st.traceback());
  }
}

void ComfyBridge::ResetSlot(const std::string& slot) {
  py::gil_scoped_acquire gil;
  try {
    Host().attr("reset_executor")(slot);
  } catch (py::error_already_set& e) {
    spdlog::error("[discomfort] {}", StatusFromPythonError(e, ErrorCode::kPython).ToString());
  }
}

}  // namespace discomfort::bridge
