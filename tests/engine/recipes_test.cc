// Values passed by reference (engine/recipes.h) with a fake executor: recipes are built for the
// objects OUTPUT ports of by-reference types produce (INPUT values frozen in, other objects'
// recipes stitched in), kept through snapshots, and run once when an INPUT port reads one.
#include "engine/recipes.h"

#include <gtest/gtest.h>

#include <mutex>

#include "engine/loop.h"
#include "graph/api_prompt.h"
#include "tests/engine/fake_executor.h"

namespace discomfort::engine {
namespace {

using nlohmann::json;
using testing::FakeExecutor;

json Link(const std::string& node, int slot = 0) { return json::array({node, slot}); }
json Port(const std::string& uid) {
  return {{"class_type", "DiscomfortPort"}, {"inputs", {{"unique_id", uid}}}};
}
json Port(const std::string& uid, json source) {
  return {{"class_type", "DiscomfortPort"},
          {"inputs", {{"unique_id", uid}, {"input_data", std::move(source)}}}};
}

// The node definitions the ports' types come from.
const json kObjectInfo = {
    {"Loader",
     {{"input", {{"required", {{"name", json::array({"STRING"})}}}}},
      {"output", json::array({"MODEL", "CLIP"})}}},
    {"Lora",
     {{"input",
       {{"required", {{"model", json::array({"MODEL"})}, {"strength", json::array({"FLOAT"})}}}}},
      {"output", json::array({"MODEL"})}}},
    {"Sampler",
     {{"input",
       {{"required", {{"model", json::array({"MODEL"})}, {"seed", json::array({"INT"})}}}}},
      {"output", json::array({"IMAGE"})}}}};

// A stand-in for a ComfyUI object (a MODEL).
class FakeObject : public storage::HostObject {
 public:
  explicit FakeObject(std::string made_by) : made_by(std::move(made_by)) {}
  std::string TypeName() const override { return "ModelPatcher"; }
  std::string made_by;
};

PreparedWorkflow Prepare(const std::string& name, const json& prompt, size_t index) {
  auto prepared = PrepareWorkflow({name, prompt}, index, &kObjectInfo);
  EXPECT_TRUE(prepared.ok()) << prepared.status().ToString();
  return std::move(prepared).value();
}

// Loader(name) -> OUTPUT model / clip.
json LoaderWorkflow() {
  return {{"1", {{"class_type", "Loader"}, {"inputs", {{"name", "ckpt.safetensors"}}}}},
          {"2", Port("model", Link("1", 0))},
          {"3", Port("clip", Link("1", 1))}};
}

// INPUT model, INPUT strength -> Lora -> OUTPUT lora_model; Sampler(INPUT seed) -> OUTPUT image.
json LoraWorkflow() {
  return {{"10", Port("model")},
          {"11", Port("strength")},
          {"12", Port("seed")},
          {"20",
           {{"class_type", "Lora"}, {"inputs", {{"model", Link("10")}, {"strength", Link("11")}}}}},
          {"21", Port("lora_model", Link("20"))},
          {"30",
           {{"class_type", "Sampler"}, {"inputs", {{"model", Link("20")}, {"seed", Link("12")}}}}},
          {"31", Port("image", Link("30"))}};
}

// Executes the fake nodes: objects for MODEL / CLIP outputs, a JSON number for IMAGE.
struct Fake {
  std::mutex mu;
  std::vector<ExecutionRequest> recipe_runs;
  FakeExecutor::Body Body() {
    return [this](const ExecutionRequest& r) -> Result<ExecutionOutcome> {
      if (r.slot == kRecipeSlot) {
        std::lock_guard<std::mutex> lock(mu);
        recipe_runs.push_back(r);
      }
      ExecutionOutcome out;
      for (const auto& [id, node] : r.prompt->items()) {
        if (node["class_type"] != graph::kSaverClass) continue;
        const std::string uid = node["inputs"]["unique_id"];
        const json source = node["inputs"]["input_data"];
        const json& producer = (*r.prompt)[source[0].get<std::string>()];
        if (producer["class_type"] == "Sampler") {
          out.outputs[uid] = storage::Value::Json(42);
        } else {
          out.outputs[uid] = storage::Value::Host(
              std::make_shared<FakeObject>(producer["class_type"].get<std::string>()));
        }
        out.node_times.push_back({source[0].get<std::string>(), 1.5});
      }
      return out;
    };
  }
};

TEST(RecipesTest, ObjectsOfByReferenceTypesCarryTheirRecipe) {
  Fake fake;
  FakeExecutor executor(fake.Body());
  storage::Context context;
  LoopRunner runner(executor, context);
  std::vector<json> events;
  LoopOptions options;
  options.on_event = [&events](const json& e) { events.push_back(e); };
  auto result = runner.Run({Prepare("loader.json", LoaderWorkflow(), 0)}, options);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  auto model = context.Get("model");
  ASSERT_TRUE(model.ok());
  ASSERT_TRUE(model->is_host());
  ASSERT_TRUE(model->has_recipe());
  const json& recipe = model->recipe();
  EXPECT_EQ(recipe.size(), 2u);  // the loader and the OUTPUT port; the "clip" port pruned
  EXPECT_EQ(recipe["1"]["class_type"], "Loader");
  EXPECT_EQ(recipe["2"]["inputs"]["unique_id"], "model");
  EXPECT_DOUBLE_EQ(model->rebuild_seconds(), 1.5);  // the loader's time
  EXPECT_TRUE(context.Get("clip")->has_recipe());
  for (const json& e : events) EXPECT_NE(e["event"], "recipe_skipped") << e.dump();
}

TEST(RecipesTest, InputValuesAreFrozenInAndInputObjectsRecipesStitchedIn) {
  Fake fake;
  FakeExecutor executor(fake.Body());
  storage::Context context;
  ASSERT_TRUE(context.Put("strength", storage::Value::Json(0.75)).ok());
  ASSERT_TRUE(context.Put("seed", storage::Value::Json(3)).ok());
  LoopRunner runner(executor, context);
  auto result = runner.Run(
      {Prepare("loader.json", LoaderWorkflow(), 0), Prepare("lora.json", LoraWorkflow(), 1)}, {});
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  auto lora = context.Get("lora_model");
  ASSERT_TRUE(lora.ok());
  ASSERT_TRUE(lora->has_recipe());
  const json& recipe = lora->recipe();
  // Lora, its OUTPUT port, and the loader stitched in from "model"'s recipe; no INPUT ports,
  // no sampler (not an ancestor).
  EXPECT_EQ(recipe.size(), 3u) << recipe.dump();
  EXPECT_EQ(recipe["20"]["inputs"]["strength"], 0.75);
  EXPECT_EQ(recipe["20"]["inputs"]["model"], Link("10.1"));
  EXPECT_EQ(recipe["10.1"]["class_type"], "Loader");
  auto ports = graph::DiscoverPorts(recipe);
  ASSERT_TRUE(ports.ok());
  EXPECT_TRUE(ports->inputs.empty());
  ASSERT_EQ(ports->outputs.size(), 1u);
  EXPECT_EQ(ports->outputs[0].unique_id, "lora_model");
  EXPECT_DOUBLE_EQ(lora->rebuild_seconds(), 1.5 + 1.5);
  EXPECT_FALSE(context.Get("image")->has_recipe());  // IMAGE passes by value
}

TEST(RecipesTest, AnObjectReadFromATensorGetsNoRecipeAndAnEventSaysWhy) {
  Fake fake;
  FakeExecutor executor(fake.Body());
  storage::Context context;
  ASSERT_TRUE(context.Put("model", storage::Value::Host(std::make_shared<FakeObject>("user")))
                  .ok());  // an object without a recipe
  ASSERT_TRUE(context.Put("strength", storage::Value::Json(0.5)).ok());
  ASSERT_TRUE(context.Put("seed", storage::Value::Json(1)).ok());
  LoopRunner runner(executor, context);
  std::vector<json> skipped;
  LoopOptions options;
  options.iterations = 3;
  options.on_event = [&skipped](const json& e) {
    if (e["event"] == "recipe_skipped") skipped.push_back(e);
  };
  auto result = runner.Run({Prepare("lora.json", LoraWorkflow(), 0)}, options);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_FALSE(context.Get("lora_model")->has_recipe());
  ASSERT_EQ(skipped.size(), 1u);  // once, not every iteration
  EXPECT_EQ(skipped[0]["port"], "lora_model");
  EXPECT_NE(skipped[0]["reason"].get<std::string>().find("'model'"), std::string::npos)
      << skipped[0].dump();
}

TEST(RecipesTest, AnInputThatReadsARecipeRunsItOnceAndKeepsTheObject) {
  Fake fake;
  FakeExecutor executor(fake.Body());
  storage::Context context;
  // A snapshot made elsewhere: "model" as its recipe.
  json recipe = {{"1", {{"class_type", "Loader"}, {"inputs", {{"name", "ckpt.safetensors"}}}}},
                 {"2", Port("model", Link("1", 0))}};
  ASSERT_TRUE(context.Put("model", storage::Value::Recipe(recipe)).ok());
  ASSERT_TRUE(context.Put("strength", storage::Value::Json(0.5)).ok());
  ASSERT_TRUE(context.Put("seed", storage::Value::Json(1)).ok());
  LoopRunner runner(executor, context);
  std::vector<json> runs;
  LoopOptions options;
  options.iterations = 3;
  options.on_event = [&runs](const json& e) {
    if (e["event"] == "recipe_run") runs.push_back(e);
  };
  auto result = runner.Run({Prepare("lora.json", LoraWorkflow(), 0)}, options);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_EQ(fake.recipe_runs.size(), 1u);
  EXPECT_EQ((*fake.recipe_runs[0].prompt)["2"]["class_type"], graph::kSaverClass);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0]["port"], "model");
  EXPECT_EQ(runs[0]["iteration"], 0);
  auto model = context.Get("model");
  ASSERT_TRUE(model.ok());
  ASSERT_TRUE(model->is_host());
  EXPECT_EQ(std::static_pointer_cast<FakeObject>(model->host())->made_by, "Loader");
  EXPECT_EQ(model->recipe(), recipe);  // the object carries the recipe it came from
  EXPECT_GE(model->rebuild_seconds(), 0);
  // Every workflow execution got the object, not the recipe.
  for (const auto& request : executor.requests) {
    if (request.slot == kRecipeSlot) continue;
    EXPECT_TRUE(request.inputs.at("model").is_host());
  }
  // And the LoRA'd model got a recipe through it.
  EXPECT_TRUE(context.Get("lora_model")->has_recipe());
}

TEST(RecipesTest, AFailingRecipeIsAnErrorNamingThePort) {
  FakeExecutor executor([](const ExecutionRequest& r) -> Result<ExecutionOutcome> {
    if (r.slot == kRecipeSlot) {
      ErrorLocation where;
      where.node_id = "1";
      where.class_type = "Loader";
      return Status(ErrorCode::kExecution, "file not found", where);
    }
    return ExecutionOutcome();
  });
  storage::Context context;
  json recipe = {{"1", {{"class_type", "Loader"}, {"inputs", {{"name", "gone.safetensors"}}}}},
                 {"2", Port("model", Link("1", 0))}};
  ASSERT_TRUE(context.Put("model", storage::Value::Recipe(recipe)).ok());
  ASSERT_TRUE(context.Put("strength", storage::Value::Json(0.5)).ok());
  ASSERT_TRUE(context.Put("seed", storage::Value::Json(1)).ok());
  LoopRunner runner(executor, context);
  auto result = runner.Run({Prepare("lora.json", LoraWorkflow(), 0)}, {});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kExecution);
  EXPECT_EQ(result.status().where().node_id, "1");
  EXPECT_NE(result.status().message().find("recipe of 'model'"), std::string::npos)
      << result.status().ToString();
  EXPECT_TRUE(context.Get("model")->is_recipe());  // nothing lost
}

TEST(RecipesTest, AUiFormatRecipeIsAClearError) {
  FakeExecutor executor([](const ExecutionRequest&) { return ExecutionOutcome(); });
  storage::Context context;
  json ui = {{"nodes", json::array()}, {"links", json::array()}, {"version", 0.4}};
  ASSERT_TRUE(context.Put("model", storage::Value::Recipe(ui)).ok());
  ASSERT_TRUE(context.Put("strength", storage::Value::Json(0.5)).ok());
  ASSERT_TRUE(context.Put("seed", storage::Value::Json(1)).ok());
  LoopRunner runner(executor, context);
  auto result = runner.Run({Prepare("lora.json", LoraWorkflow(), 0)}, {});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(result.status().where().port, "model");
  EXPECT_NE(result.status().message().find("API-format"), std::string::npos);
}

}  // namespace
}  // namespace discomfort::engine
