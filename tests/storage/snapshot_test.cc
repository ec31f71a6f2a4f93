// Snapshots (save/load of the whole context) and Export/Import of one value.
#include <ATen/ops/arange.h>
#include <ATen/ops/zeros.h>

#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "storage/context.h"
#include "test_util.h"
#include "tests/support/fault_injecting_filesystem.h"

namespace discomfort::storage {
namespace {

using testing::SameBytes;
using testing::ScratchDir;

class NamedHost : public HostObject {
 public:
  explicit NamedHost(std::string payload) : payload_(std::move(payload)) {}
  std::string TypeName() const override { return "NamedHost"; }
  const std::string& payload() const { return payload_; }

 private:
  std::string payload_;
};

const nlohmann::json kRecipe = {
    {"4",
     {{"class_type", "CheckpointLoaderSimple"}, {"inputs", {{"ckpt_name", "sd15.safetensors"}}}}}};

at::Tensor Grid() { return at::arange(2 * 3 * 4, at::kFloat).view({2, 3, 4}); }

void Fill(Context& context) {
  ASSERT_TRUE(context.Put("image", Value::Tensor(Grid())).ok());
  ASSERT_TRUE(
      context.Put("latent", Value::Tensor(Grid().to(at::kBFloat16).permute({2, 0, 1}))).ok());
  ASSERT_TRUE(context.Put("mask", Value::Tensor(Grid().remainder(3).to(at::kBool))).ok());
  ASSERT_TRUE(context.Put("seed", Value::Json(int64_t{1} << 40)).ok());
  ASSERT_TRUE(context.Put("prompt", Value::Json("a cat, \"quoted\"")).ok());
  ASSERT_TRUE(context.Put("model_recipe", Value::Recipe(kRecipe)).ok());
  ASSERT_TRUE(context.Put("model", Value::Host(std::make_shared<NamedHost>("weights"))).ok());
}

void ExpectFilled(const Context& context) {
  EXPECT_TRUE(SameBytes(Grid(), context.Get("image")->tensor()));
  EXPECT_TRUE(
      SameBytes(Grid().to(at::kBFloat16).permute({2, 0, 1}), context.Get("latent")->tensor()));
  EXPECT_TRUE(SameBytes(Grid().remainder(3).to(at::kBool), context.Get("mask")->tensor()));
  EXPECT_EQ(context.Get("seed")->json(), int64_t{1} << 40);
  EXPECT_EQ(context.Get("prompt")->json(), "a cat, \"quoted\"");
  EXPECT_TRUE(context.Get("model_recipe")->is_recipe());
  EXPECT_EQ(context.Get("model_recipe")->json(), kRecipe);
}

TEST(SnapshotTest, RoundTripsTensorsJsonAndRecipes) {
  ScratchDir scratch;
  Context source(testing::BudgetOptions(64, scratch.path()));  // most tensors are spilled
  Fill(source);
  ASSERT_GT(source.GetUsage().spilled_count, 0u);
  auto saved = source.SaveSnapshot(scratch / "snap");
  ASSERT_TRUE(saved.ok()) << saved.status().ToString();
  EXPECT_EQ(saved->not_persisted, std::vector<std::string>{"model"});
  EXPECT_EQ(saved->keys.size(), 6u);

  auto manifest = nlohmann::json::parse(testing::ReadText(scratch / "snap/manifest.json"));
  EXPECT_EQ(manifest["format"], "discomfort-snapshot");
  EXPECT_EQ(manifest["not_persisted"][0]["key"], "model");
  EXPECT_EQ(manifest["not_persisted"][0]["type"], "NamedHost");

  ContextOptions options;
  options.temp_root = scratch.path();
  Context restored(options);
  ASSERT_TRUE(restored.Put("unrelated", Value::Json(0)).ok());
  auto loaded = restored.LoadSnapshot(scratch / "snap");
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->keys.size(), 6u);
  EXPECT_EQ(loaded->not_persisted, std::vector<std::string>{"model"});
  ExpectFilled(restored);
  EXPECT_FALSE(restored.Contains("model"));
  EXPECT_TRUE(restored.Contains("unrelated"));
  EXPECT_TRUE(restored.CheckConsistency().ok());
}

TEST(SnapshotTest, PickleHookPersistsHostObjectsWhenGiven) {
  ScratchDir scratch;
  ContextOptions options;
  options.temp_root = scratch.path();
  options.serialize_host = [](const HostObject& object) -> Result<std::string> {
    return "pickled:" + static_cast<const NamedHost&>(object).payload();
  };
  options.deserialize_host = [](const std::string& type,
                                const std::string& bytes) -> Result<std::shared_ptr<HostObject>> {
    EXPECT_EQ(type, "NamedHost");
    return std::shared_ptr<HostObject>(std::make_shared<NamedHost>(bytes));
  };
  Context source(options);
  Fill(source);
  auto saved = source.SaveSnapshot(scratch / "snap");
  ASSERT_TRUE(saved.ok()) << saved.status().ToString();
  EXPECT_TRUE(saved->not_persisted.empty());

  Context restored(options);
  ASSERT_TRUE(restored.LoadSnapshot(scratch / "snap").ok());
  auto model = restored.Get("model");
  ASSERT_TRUE(model.ok());
  EXPECT_EQ(static_cast<const NamedHost&>(*model->host()).payload(), "pickled:weights");
}

TEST(SnapshotTest, ResavingReplacesTheSnapshotAndLeavesNoTemporaries) {
  ScratchDir scratch;
  ContextOptions options;
  options.temp_root = scratch / "tmp";
  Context context(options);
  ASSERT_TRUE(context.Put("n", Value::Json(1)).ok());
  ASSERT_TRUE(context.SaveSnapshot(scratch / "snaps/run").ok());
  ASSERT_TRUE(context.Put("n", Value::Json(2)).ok());
  ASSERT_TRUE(context.Put("t", Value::Tensor(Grid())).ok());
  ASSERT_TRUE(context.SaveSnapshot(scratch / "snaps/run").ok());
  EXPECT_EQ(testing::CountFiles(scratch / "snaps"), 1u);

  Context restored(options);
  ASSERT_TRUE(restored.LoadSnapshot(scratch / "snaps/run").ok());
  EXPECT_EQ(restored.Get("n")->json(), 2);
  EXPECT_TRUE(SameBytes(Grid(), restored.Get("t")->tensor()));
}

TEST(SnapshotTest, FullDiskLeavesThePreviousSnapshotIntact) {
  ScratchDir scratch;
  FaultInjectingFileSystem fs;
  ContextOptions options;
  options.temp_root = scratch.path();
  options.fs = &fs;
  Context context(options);
  Fill(context);
  ASSERT_TRUE(context.SaveSnapshot(scratch / "snaps/run").ok());

  ASSERT_TRUE(context.Put("image", Value::Tensor(at::zeros({256, 256}))).ok());
  fs.SetFreeSpace(100 * 1024);  // the new image alone is 256 KiB
  auto failed = context.SaveSnapshot(scratch / "snaps/run");
  EXPECT_EQ(failed.status().code(), ErrorCode::kNoSpace) << failed.status().ToString();
  EXPECT_NE(failed.status().message().find("untouched"), std::string::npos);
  EXPECT_EQ(testing::CountFiles(scratch / "snaps"), 1u);  // the staging folder is gone

  fs.SetFreeSpace(uint64_t{1} << 30);
  fs.SetRenameFails(true);  // a crash-like failure at the very end
  EXPECT_FALSE(context.SaveSnapshot(scratch / "snaps/run").ok());
  EXPECT_EQ(testing::CountFiles(scratch / "snaps"), 1u);

  ContextOptions fresh;
  fresh.temp_root = scratch.path();
  Context restored(fresh);
  ASSERT_TRUE(restored.LoadSnapshot(scratch / "snaps/run").ok());
  ExpectFilled(restored);  // the first snapshot, whole
  EXPECT_TRUE(SameBytes(at::zeros({256, 256}), context.Get("image")->tensor()));  // nothing lost
}

TEST(SnapshotTest, BadSnapshotsLeaveTheContextUnchanged) {
  ScratchDir scratch;
  ContextOptions options;
  options.temp_root = scratch.path();
  Context context(options);
  ASSERT_TRUE(context.Put("keep", Value::Json(1)).ok());
  EXPECT_EQ(context.LoadSnapshot(scratch / "missing").status().code(), ErrorCode::kNotFound);

  testing::MakeDirs(scratch / "garbage");
  testing::WriteText(scratch / "garbage/manifest.json", "{not json");
  EXPECT_EQ(context.LoadSnapshot(scratch / "garbage").status().code(), ErrorCode::kParse);

  // A manifest whose second tensor file is missing: the first value must not be put either.
  Context source(options);
  ASSERT_TRUE(source.Put("a", Value::Tensor(Grid())).ok());
  ASSERT_TRUE(source.Put("b", Value::Tensor(Grid())).ok());
  ASSERT_TRUE(source.SaveSnapshot(scratch / "broken").ok());
  auto manifest = nlohmann::json::parse(testing::ReadText(scratch / "broken/manifest.json"));
  testing::Remove(scratch / ("broken/" + manifest["entries"][1]["file"].get<std::string>()));
  EXPECT_FALSE(context.LoadSnapshot(scratch / "broken").ok());
  EXPECT_EQ(context.Keys(), std::vector<std::string>{"keep"});
}

// Found by tests/fuzz/snapshot_fuzz: a manifest field of the wrong type ("format": [...]) made
// json::value() throw out of LoadSnapshot (std::terminate in `discomfort resume`). And a manifest
// may not name files outside its folder (an untrusted snapshot reading, or unpickling, any file).
TEST(SnapshotTest, DamagedOrEscapingManifestsAreParseErrors) {
  ScratchDir scratch;
  ContextOptions options;
  options.temp_root = scratch.path();
  Context context(options);
  ASSERT_TRUE(context.Put("keep", Value::Json(1)).ok());
  testing::MakeDirs(scratch / "typed");
  for (const char* manifest :
       {R"({"format": ["x"], "entries": []})",
        R"({"format": "discomfort-snapshot", "format_version": "1", "entries": []})",
        R"({"format": "discomfort-snapshot", "entries": [{"key": 1, "kind": "json"}]})"}) {
    testing::WriteText(scratch / "typed/manifest.json", manifest);
    Result<SnapshotReport> loaded(Status{});
    ASSERT_NO_THROW(loaded = context.LoadSnapshot(scratch / "typed")) << manifest;
    EXPECT_EQ(loaded.status().code(), ErrorCode::kParse) << manifest;
  }

  Context source(options);
  ASSERT_TRUE(source.Put("a", Value::Tensor(Grid())).ok());
  ASSERT_TRUE(source.SaveSnapshot(scratch / "inner/snap").ok());
  auto manifest = nlohmann::json::parse(testing::ReadText(scratch / "inner/snap/manifest.json"));
  const std::string file = manifest["entries"][0]["file"].get<std::string>();
  // The same tensor file, reached from outside the snapshot folder: refused.
  testing::MakeDirs(scratch / "inner/other");
  manifest["entries"][0]["file"] = "../snap/" + file;
  testing::WriteText(scratch / "inner/other/manifest.json", manifest.dump());
  auto escaped = context.LoadSnapshot(scratch / "inner/other");
  ASSERT_FALSE(escaped.ok());
  EXPECT_NE(escaped.status().message().find("outside the snapshot folder"), std::string::npos)
      << escaped.status().ToString();
  manifest["entries"][0]["file"] = scratch / ("inner/snap/" + file);  // absolute
  testing::WriteText(scratch / "inner/other/manifest.json", manifest.dump());
  EXPECT_FALSE(context.LoadSnapshot(scratch / "inner/other").ok());
  EXPECT_EQ(context.Keys(), std::vector<std::string>{"keep"});
}

// Found by tests/reliability/faults.py (kill9): a writer killed mid-snapshot left its staging
// folder (a whole snapshot's worth of files) beside the snapshot for good. The next save removes
// the staging folders of dead processes, and only those.
TEST(SnapshotTest, SavingRemovesStagingLeftByDeadWriters) {
  ScratchDir scratch;
  ContextOptions options;
  options.temp_root = scratch.path();
  Context context(options);
  ASSERT_TRUE(context.Put("a", Value::Tensor(Grid())).ok());
  int dead = 4194000;  // near pid_max: find one that is not running
  while (FileSystem::Default()->ProcessAlive(dead)) ++dead;
  const std::string stale = scratch / ("snap.tmp-" + std::to_string(dead) + "-3");
  const std::string live = scratch / ("snap.tmp-" + std::to_string(::getppid()) + "-1");
  testing::MakeDirs(stale + "/tensors");
  testing::MakeDirs(live);
  ASSERT_TRUE(context.SaveSnapshot(scratch / "snap").ok());
  EXPECT_FALSE(testing::Exists(stale));
  EXPECT_TRUE(testing::Exists(live));  // a live writer's staging is its own business
  EXPECT_TRUE(testing::Exists(scratch / "snap/manifest.json"));
}

TEST(ExportImportTest, TensorJsonAndRecipeRoundTrip) {
  ScratchDir scratch;
  ContextOptions options;
  options.temp_root = scratch.path();
  Context context(options);
  Fill(context);
  ASSERT_TRUE(context.Export("latent", scratch / "latent.safetensors").ok());
  ASSERT_TRUE(context.Export("prompt", scratch / "prompt.json").ok());
  ASSERT_TRUE(context.Export("model_recipe", scratch / "recipe.json").ok());
  EXPECT_EQ(context.Export("model", scratch / "model.bin").code(), ErrorCode::kTypeMismatch);
  EXPECT_EQ(context.Export("missing", scratch / "x.json").code(), ErrorCode::kNotFound);
  EXPECT_EQ(testing::CountFiles(scratch.path()), 3u);  // no temporaries left beside them

  Context other(options);
  ASSERT_TRUE(other.Import("latent", scratch / "latent.safetensors").ok());
  ASSERT_TRUE(other.Import("prompt", scratch / "prompt.json").ok());
  ASSERT_TRUE(other.Import("model_recipe", scratch / "recipe.json", ValueKind::kRecipe).ok());
  EXPECT_TRUE(
      SameBytes(Grid().to(at::kBFloat16).permute({2, 0, 1}), other.Get("latent")->tensor()));
  EXPECT_EQ(other.Get("prompt")->json(), "a cat, \"quoted\"");
  EXPECT_TRUE(other.Get("model_recipe")->is_recipe());
  EXPECT_EQ(other.Get("model_recipe")->json(), kRecipe);
  // A safetensors file holding one tensor imports under any key.
  ASSERT_TRUE(other.Import("renamed", scratch / "latent.safetensors").ok());
  EXPECT_EQ(other.Import("x", scratch / "missing.json").code(), ErrorCode::kNotFound);
}

TEST(ExportImportTest, ExportOfASpilledTensorLeavesItOnDisk) {
  ScratchDir scratch;
  Context context(testing::BudgetOptions(0, scratch.path()));
  ASSERT_TRUE(context.Put("t", Value::Tensor(Grid())).ok());
  ASSERT_TRUE(context.Info("t")->on_disk);
  ASSERT_TRUE(context.Export("t", scratch / "t.safetensors").ok());
  EXPECT_TRUE(context.Info("t")->on_disk);
  Context other(testing::BudgetOptions(1 << 20, scratch.path()));
  ASSERT_TRUE(other.Import("t", scratch / "t.safetensors").ok());
  EXPECT_TRUE(SameBytes(Grid(), other.Get("t")->tensor()));
}

}  // namespace
}  // namespace discomfort::storage
