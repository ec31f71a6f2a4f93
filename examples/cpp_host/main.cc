// cpp_host: a farm worker in miniature. Reads a JSON job, runs its loop on the embedded ComfyUI,
// checks that a tensor made here crossed the engine by pointer, writes the images and prints a
// JSON summary on stdout. Ctrl-C / SIGTERM cancel cleanly (exit 130).
//
//   cpp_host job.json
//   {"workflows": ["feedback.json", "identity.json"], "iterations": 3, "output_dir": "out",
//    "inputs": {"frame": "@seed.png"},                  // as the CLI's --set (JSON, @png, @json)
//    "probe": {"port": "probe", "returns_as": "probe_out", "shape": [1, 32, 32, 3]}}
#include <atomic>
#include <chrono>
#include <csignal>
#include <fstream>
#include <iostream>
#include <thread>

#include <ATen/ATen.h>
#include <discomfort/discomfort.h>

namespace {

std::atomic<bool> g_stop{false};
extern "C" void OnStop(int) { g_stop.store(true); }

int Fail(const discomfort::Status& st) {
  std::cerr << "cpp_host: " << st.ToString() << "\n";
  return st.code() == discomfort::ErrorCode::kCancelled ? 130 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: cpp_host JOB.json\n";
    return 2;
  }
  std::ifstream in(argv[1]);
  const nlohmann::json job = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!in || job.is_discarded() || !job.is_object()) {
    std::cerr << "cpp_host: " << argv[1] << " is not a JSON job\n";
    return 2;
  }
  std::signal(SIGINT, OnStop);
  std::signal(SIGTERM, OnStop);

  auto engine = discomfort::Engine::Create();
  if (!engine.ok()) return Fail(engine.status());

  discomfort::RunOptions run;
  for (const auto& path : job.value("workflows", nlohmann::json::array())) {
    run.workflows.push_back(discomfort::Workflow::File(path.get<std::string>()));
  }
  run.iterations = job.value("iterations", 1);
  run.output_dir = job.value("output_dir", "");
  const nlohmann::json inputs = job.value("inputs", nlohmann::json::object());
  for (const auto& [key, value] : inputs.items()) {
    run.set_values.push_back(key + "=" +
                             (value.is_string() ? value.get<std::string>() : value.dump()));
  }

  discomfort::Context context;
  at::Tensor probe;
  const nlohmann::json probe_job = job.value("probe", nlohmann::json::object());
  if (!probe_job.empty()) {
    // An input made in C++: a horizontal gradient, handed to ComfyUI without a copy.
    const auto shape = probe_job.value("shape", std::vector<int64_t>{1, 32, 32, 3});
    probe = at::linspace(0.0, 1.0, shape[2]).view({1, 1, shape[2], 1}).expand(shape).contiguous();
    if (auto st = context.Put(probe_job.value("port", "probe"), probe); !st.ok()) return Fail(st);
  }

  // Signal handlers may only set a flag: this thread turns it into a cancel and an interrupt.
  std::atomic<bool> finished{false};
  std::thread watcher([&] {
    while (!finished.load()) {
      if (g_stop.load()) {
        run.cancel.Cancel();
        engine.value()->Interrupt();
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  auto result = engine.value()->Run(context, run);
  finished.store(true);
  watcher.join();
  if (!result.ok()) return Fail(result.status());

  nlohmann::json summary = {{"iterations_completed", result->iterations_completed},
                            {"files", result->files},
                            {"outputs", nlohmann::json::object()}};
  for (const auto& [uid, value] : result->outputs) summary["outputs"][uid] = value.Describe();
  if (probe.defined()) {
    const auto returned = result->outputs.find(probe_job.value("returns_as", "probe_out"));
    const bool same = returned != result->outputs.end() && returned->second.is_tensor() &&
                      returned->second.tensor().data_ptr() == probe.data_ptr();
    summary["probe_same_storage"] = same;
    if (!same) {
      std::cerr << "cpp_host: the probe tensor did not come back as the very same storage\n";
      std::cout << summary.dump() << std::endl;
      return 1;
    }
  }
  std::cout << summary.dump() << std::endl;
  return 0;
}
