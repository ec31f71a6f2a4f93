// The workflow toolkit CLI commands, driven through CLI11 as `discomfort` would. The source is
// compiled into this binary because the real `discomfort` target links the Python bridge.
#include "cli/graph_commands.cc"  // NOLINT(bugprone-suspicious-include)

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "tests/graph/test_util.h"

namespace discomfort::cli {
namespace {

using graph::testing::SourcePath;
using graph::testing::TestDataPath;
using nlohmann::json;

struct CommandRun {
  int exit_code = 0;
  std::string out;
  std::string err;
};

class GraphCommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("discomfort_graph_cli_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  CommandRun Run(const std::vector<std::string>& args) {
    CLI::App app("discomfort");
    CommandRun run;
    AddGraphCommands(app, provider_, &run.exit_code);
    std::vector<std::string> reversed(args.rbegin(), args.rend());
    std::stringstream out, err;
    auto* old_out = std::cout.rdbuf(out.rdbuf());
    auto* old_err = std::cerr.rdbuf(err.rdbuf());
    try {
      app.parse(reversed);
    } catch (const CLI::ParseError& e) {
      run.exit_code = app.exit(e);
    }
    std::cout.rdbuf(old_out);
    std::cerr.rdbuf(old_err);
    run.out = out.str();
    run.err = err.str();
    return run;
  }

  std::string Tmp(const std::string& name) const { return (dir_ / name).string(); }
  static std::string Discomfort(const std::string& file) {
    return TestDataPath("original_discomfort/" + file);
  }
  static std::string ObjectInfo() { return SourcePath("tests/data/object_info_v0.33.0.json"); }

  std::filesystem::path dir_;
  int provider_calls_ = 0;
  ObjectInfoProvider provider_ = [this]() -> Result<json> {
    ++provider_calls_;
    return graph::LoadJsonFile(ObjectInfo());
  };
};

TEST_F(GraphCommandsTest, ConvertWritesTheApiPrompt) {
  const CommandRun run = Run({"convert", Discomfort("testa.json"), "--object-info", ObjectInfo(),
                              "-o", Tmp("testa.api.json")});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(provider_calls_, 0);
  auto written = graph::LoadJsonFile(Tmp("testa.api.json"));
  ASSERT_TRUE(written.ok());
  auto expected = graph::ConvertUiToApi(*graph::LoadJsonFile(Discomfort("testa.json")),
                                        graph::testing::V033Definitions());
  ASSERT_TRUE(expected.ok());
  EXPECT_EQ(*written, *expected);

  // Without --object-info the live provider supplies the definitions; stdout by default.
  const CommandRun live = Run({"convert", Discomfort("testa.json")});
  ASSERT_EQ(live.exit_code, 0) << live.err;
  EXPECT_EQ(provider_calls_, 1);
  EXPECT_EQ(json::parse(live.out), *expected);

  // An API prompt passes through without definitions.
  const CommandRun api = Run({"convert", Tmp("testa.api.json")});
  ASSERT_EQ(api.exit_code, 0) << api.err;
  EXPECT_EQ(provider_calls_, 1);
  EXPECT_EQ(json::parse(api.out), *expected);
}

TEST_F(GraphCommandsTest, ConvertDynamicPromptSeedAndOptOut) {
  const std::string ui = Tmp("dynamic.json");
  {
    std::ofstream f(ui);
    f << R"({"version": 0.4, "links": [], "nodes": [{"id": 6, "type": "CLIPTextEncode",
             "widgets_values": ["{a|b|c|d|e|f|g|h} cat // note"]}]})";
  }
  std::set<std::string> texts;
  for (int seed = 0; seed < 8; ++seed) {
    const CommandRun run =
        Run({"convert", ui, "--object-info", ObjectInfo(), "--prompt-seed", std::to_string(seed)});
    ASSERT_EQ(run.exit_code, 0) << run.err;
    const std::string text = json::parse(run.out)["6"]["inputs"]["text"];
    EXPECT_EQ(text.size(), std::string("a cat ").size()) << text;
    EXPECT_EQ(text.substr(1), " cat ");
    // The same seed converts to the same text.
    const CommandRun again =
        Run({"convert", ui, "--object-info", ObjectInfo(), "--prompt-seed", std::to_string(seed)});
    EXPECT_EQ(json::parse(again.out)["6"]["inputs"]["text"], text);
    texts.insert(text);
  }
  EXPECT_GT(texts.size(), 1u);  // seeds choose differently
  const CommandRun raw =
      Run({"convert", ui, "--object-info", ObjectInfo(), "--no-dynamic-prompts"});
  ASSERT_EQ(raw.exit_code, 0) << raw.err;
  EXPECT_EQ(json::parse(raw.out)["6"]["inputs"]["text"], "{a|b|c|d|e|f|g|h} cat // note");
}

TEST_F(GraphCommandsTest, ConvertFailuresExitWithTwoAndExplain) {
  provider_ = []() -> Result<json> {
    return Status(ErrorCode::kPython, "ComfyUI is not available");
  };
  CommandRun run = Run({"convert", Discomfort("testa.json")});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.err.find("ComfyUI is not available"), std::string::npos) << run.err;

  run = Run({"convert", Discomfort("testrunner2.json"), "--object-info", ObjectInfo()});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.err.find("unknown node type 'DiscomfortTestRunner'"), std::string::npos) << run.err;
}

TEST_F(GraphCommandsTest, PortsPrintsJson) {
  const CommandRun run = Run({"ports", Discomfort("latent_from_input_image.json")});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const json ports = json::parse(run.out);
  ASSERT_EQ(ports["inputs"].size(), 2u);
  ASSERT_EQ(ports["outputs"].size(), 1u);
  EXPECT_EQ(ports["outputs"][0]["unique_id"], "latent");
  EXPECT_EQ(ports["outputs"][0]["type"], "LATENT");
  EXPECT_EQ(ports["outputs"][0]["pass_by"], "val");
  std::set<std::string> inputs;
  for (const json& p : ports["inputs"]) inputs.insert(p["unique_id"].get<std::string>());
  EXPECT_EQ(inputs, (std::set<std::string>{"input_image", "vae"}));
}

TEST_F(GraphCommandsTest, ValidateReportsProblems) {
  CommandRun run =
      Run({"validate", Discomfort("sdxl_run_ksampler.json"), "--object-info", ObjectInfo()});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(json::parse(run.out)["ok"], true);

  run = Run(
      {"validate", Discomfort("discomfort_supir_upscaler.json"), "--object-info", ObjectInfo()});
  EXPECT_EQ(run.exit_code, 2);
  const json report = json::parse(run.out);
  EXPECT_EQ(report["ok"], false);
  EXPECT_GE(report["problems"].size(), 1u);
  EXPECT_NE(run.err.find("unknown node type"), std::string::npos) << run.err;

  run = Run({"validate", Discomfort("discomfort_supir_upscaler.json"), "--no-definitions"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
}

TEST_F(GraphCommandsTest, StitchAndPrune) {
  const CommandRun run =
      Run({"stitch", Discomfort("sdxl_load_model_and_lora.json"),
           Discomfort("latent_1024x1024_empty.json"), Discomfort("sdxl_run_ksampler.json"), "-o",
           Tmp("stitched.json"), "--delete-input-ports"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const json summary = json::parse(run.out);
  EXPECT_TRUE(summary["inputs"].empty());  // deleted
  ASSERT_EQ(summary["outputs"].size(), 1u);
  EXPECT_EQ(summary["outputs"][0]["unique_id"], "output_image");
  auto stitched = graph::LoadJsonFile(Tmp("stitched.json"));
  ASSERT_TRUE(stitched.ok());
  EXPECT_EQ(graph::DetectFormat(*stitched), graph::WorkflowFormat::kUiV04);

  const CommandRun pruned =
      Run({"prune", Discomfort("sdxl_load_model_and_lora.json"), "--output", "vae"});
  ASSERT_EQ(pruned.exit_code, 0) << pruned.err;
  EXPECT_EQ(json::parse(pruned.out)["nodes"].size(), 3u);

  const CommandRun missing = Run({"prune", Discomfort("workflow1.json"), "--output", "nope"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("no OUTPUT port with unique_id 'nope'"), std::string::npos);
}

}  // namespace
}  // namespace discomfort::cli
