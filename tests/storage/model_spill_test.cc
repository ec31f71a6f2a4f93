// Models under the RAM budget (storage/context_models.cc), with a C++ stand-in for ComfyUI's
// ModelPatcher: weights that count, leave RAM written and file-backed or dropped for a recipe,
// and come back.
#include <ATen/ops/arange.h>
#include <ATen/ops/full.h>

#include <gtest/gtest.h>

#include <mutex>

#include "storage/context.h"
#include "test_util.h"
#include "tests/support/fault_injecting_filesystem.h"

namespace discomfort::storage {
namespace {

using testing::ScratchDir;

constexpr uint64_t kMiB = 1 << 20;

// A model: named weights (one block, `weights_id`, spillable) and a pending patch (its own block).
class FakeModel : public HostObject {
 public:
  FakeModel(uint64_t weights_id, uint64_t weight_mib, uint64_t patch_mib = 0)
      : weights_id_(weights_id) {
    const int64_t floats = static_cast<int64_t>(weight_mib * kMiB / 4);
    weights_.emplace_back("w.a", at::arange(floats / 2, at::kFloat));
    weights_.emplace_back("w.b", at::full({floats / 2}, 3.0f));
    if (patch_mib > 0) patch_ = at::full({static_cast<int64_t>(patch_mib * kMiB / 4)}, 1.0f);
  }
  std::string TypeName() const override { return "FakeModel"; }
  uint64_t ApproxBytes() const override { return 0; }
  std::vector<HostMemoryPart> MeasureMemory() const override {
    std::lock_guard<std::mutex> lock(mu_);
    uint64_t bytes = 0;
    std::set<const void*> seen;
    for (const auto& [_, t] : weights_) {
      if (seen.insert(t.storage().data()).second) bytes += t.storage().nbytes();
    }
    std::vector<HostMemoryPart> parts = {{weights_id_, "cpu", bytes, true}};
    if (patch_.defined()) parts.push_back({weights_id_ + 1000, "cpu", patch_.nbytes(), false});
    return parts;
  }
  bool CanSpillTensors() const override { return true; }
  Result<NamedTensors> TensorsToSpill() override {
    std::lock_guard<std::mutex> lock(mu_);
    ++unloads;
    return weights_;
  }
  Status ReplaceTensors(const NamedTensors& replacements) override {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, tensor] : replacements) {
      for (auto& [own, t] : weights_) {
        if (own == name) t = tensor;
      }
    }
    ++replaced;
    return Status::Ok();
  }
  std::string ReleaseForDrop(const std::string&) override { return held_elsewhere; }

  at::Tensor weight(const std::string& name) const {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [own, t] : weights_) {
      if (own == name) return t;
    }
    return at::Tensor();
  }
  void Tie() {  // a second name for the first weight, as tied embeddings are
    std::lock_guard<std::mutex> lock(mu_);
    weights_.emplace_back("w.tied", weights_.front().second);
  }

  int unloads = 0;
  int replaced = 0;
  std::string held_elsewhere;  // what ReleaseForDrop answers

 private:
  mutable std::mutex mu_;
  uint64_t weights_id_;
  NamedTensors weights_;
  at::Tensor patch_;
};

// Collects the context's model events.
struct Events {
  explicit Events(Context& context) : context(context) {
    token = context.AddEventObserver([this](const nlohmann::json& e) {
      std::lock_guard<std::mutex> lock(mu);
      list.push_back(e);
    });
  }
  ~Events() { context.RemoveEventObserver(token); }
  std::vector<nlohmann::json> Of(const std::string& name) {
    std::lock_guard<std::mutex> lock(mu);
    std::vector<nlohmann::json> out;
    for (const auto& e : list) {
      if (e["event"] == name) out.push_back(e);
    }
    return out;
  }
  Context& context;
  uint64_t token = 0;
  std::mutex mu;
  std::vector<nlohmann::json> list;
};

TEST(ModelSpillTest, ModelsCountUnderTheRamBudgetByDevice) {
  Context context;  // no budget
  auto model = std::make_shared<FakeModel>(1, 8, 1);
  ASSERT_TRUE(context.Put("model", Value::Host(model)).ok());
  Usage usage = context.GetUsage();
  EXPECT_EQ(usage.host_ram_bytes, 9 * kMiB);
  EXPECT_EQ(usage.ram_bytes, 9 * kMiB);
  EXPECT_EQ(usage.host_object_bytes, 9 * kMiB);
  auto info = context.Info("model");
  ASSERT_TRUE(info.ok());
  EXPECT_TRUE(info->model);
  EXPECT_EQ(info->bytes_by_device.at("cpu"), 9 * kMiB);
  EXPECT_FALSE(info->on_disk);
  EXPECT_TRUE(context.CheckConsistency().ok()) << context.CheckConsistency().ToString();
}

TEST(ModelSpillTest, SharedWeightsCountOnce) {
  Context context;
  ASSERT_TRUE(context.Put("base", Value::Host(std::make_shared<FakeModel>(7, 8))).ok());
  ASSERT_TRUE(context.Put("lora", Value::Host(std::make_shared<FakeModel>(7, 8, 1))).ok());
  EXPECT_EQ(context.GetUsage().host_ram_bytes, 9 * kMiB);
  ASSERT_TRUE(context.Erase("base").ok());
  EXPECT_EQ(context.GetUsage().host_ram_bytes, 9 * kMiB);  // "lora" still holds the weights
  ASSERT_TRUE(context.Erase("lora").ok());
  EXPECT_EQ(context.GetUsage().host_ram_bytes, 0u);
  EXPECT_TRUE(context.CheckConsistency().ok()) << context.CheckConsistency().ToString();
}

TEST(ModelSpillTest, BeyondTheBudgetWeightsAreWrittenOnceAndPagedOutAfterwards) {
  ScratchDir scratch;
  Context context(testing::BudgetOptions(4 * kMiB, scratch.path()));
  Events events(context);
  auto model = std::make_shared<FakeModel>(1, 8, 1);
  const at::Tensor before = model->weight("w.a").clone();
  const void* old_data = model->weight("w.a").data_ptr();
  ASSERT_TRUE(context.Put("model", Value::Host(model)).ok());

  // Written and swapped in place: same values, now mapping the spill file.
  EXPECT_EQ(model->unloads, 1);
  EXPECT_EQ(model->replaced, 1);
  EXPECT_NE(model->weight("w.a").data_ptr(), old_data);
  EXPECT_TRUE(testing::SameBytes(before, model->weight("w.a")));
  EXPECT_NE(testing::MappingOf(model->weight("w.a").data_ptr()).find(".safetensors"),
            std::string::npos);
  Usage usage = context.GetUsage();
  EXPECT_EQ(usage.host_spilled_bytes, 8 * kMiB);
  EXPECT_EQ(usage.host_ram_bytes, 1 * kMiB);  // the patch stays
  EXPECT_LE(usage.ram_bytes, 4 * kMiB);
  EXPECT_EQ(usage.model_spills, 1u);
  EXPECT_GT(usage.model_write_bytes_per_second, 0);
  auto info = context.Info("model");
  ASSERT_TRUE(info.ok());
  EXPECT_TRUE(info->on_disk);
  ASSERT_EQ(info->spill_files.size(), 1u);
  EXPECT_TRUE(testing::Exists(info->spill_files[0]));
  auto spills = events.Of("model_spill");
  ASSERT_EQ(spills.size(), 1u);
  EXPECT_EQ(spills[0]["action"], "write");
  EXPECT_EQ(spills[0]["written_bytes"], 8 * kMiB);
  EXPECT_EQ(spills[0]["key"], "model");

  // Read again: counted in RAM (the key just read is kept), the very object comes back.
  auto got = context.Get("model");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->host().get(), model.get());
  ASSERT_EQ(events.Of("model_restore").size(), 1u);
  EXPECT_EQ(context.GetUsage().host_spilled_bytes, 0u);
  // Over the budget, it leaves again; its weights are the mapped ones, so nothing is written.
  ASSERT_TRUE(context.EnforceBudget().ok());
  EXPECT_EQ(context.GetUsage().model_spills, 2u);
  spills = events.Of("model_spill");
  ASSERT_EQ(spills.size(), 2u);
  EXPECT_EQ(spills[1]["action"], "page_out");
  EXPECT_EQ(spills[1]["written_bytes"], 0);
  EXPECT_EQ(context.Info("model")->spill_files.size(), 1u);
  EXPECT_TRUE(testing::SameBytes(before, model->weight("w.a")));
  EXPECT_TRUE(context.CheckConsistency().ok()) << context.CheckConsistency().ToString();

  ASSERT_TRUE(context.Erase("model").ok());
  EXPECT_EQ(context.GetUsage().disk_bytes, 0u);
  EXPECT_TRUE(testing::SameBytes(before, model->weight("w.a")));  // the mapping outlives the file
}

TEST(ModelSpillTest, TiedWeightsStayTied) {
  ScratchDir scratch;
  Context context(testing::BudgetOptions(1 * kMiB, scratch.path()));
  auto model = std::make_shared<FakeModel>(1, 4);
  model->Tie();
  ASSERT_TRUE(context.Put("model", Value::Host(model)).ok());
  ASSERT_EQ(model->replaced, 1);
  EXPECT_EQ(model->weight("w.a").data_ptr(), model->weight("w.tied").data_ptr());
  auto file = context.Info("model")->spill_files.at(0);
  // Written once: 4 MiB of data after a header padded to one 4096-byte block.
  EXPECT_LE(*FileSystem::Default()->FileSize(file), 4 * kMiB + 4096);
}

TEST(ModelSpillTest, PinnedModelsStayAndTheLeastRecentlyUsedLeaves) {
  ScratchDir scratch;
  Context context(testing::BudgetOptions(10 * kMiB, scratch.path()));
  auto a = std::make_shared<FakeModel>(1, 8);
  auto b = std::make_shared<FakeModel>(2, 8);
  ASSERT_TRUE(context.Put("a", Value::Host(a)).ok());
  auto pinned = context.Pin("a");
  ASSERT_TRUE(pinned.ok());
  ASSERT_TRUE(context.Put("b", Value::Host(b)).ok());
  EXPECT_EQ(a->replaced, 0);  // pinned
  EXPECT_EQ(b->replaced, 1);  // the only one free to leave
  pinned->Release();
  ASSERT_TRUE(context.Get("b").ok());  // b back (most recent), a least recently used now
  EXPECT_EQ(a->replaced, 1);
  EXPECT_FALSE(context.Info("b")->on_disk);
  EXPECT_TRUE(context.Info("a")->on_disk);
  EXPECT_TRUE(context.CheckConsistency().ok()) << context.CheckConsistency().ToString();
}

TEST(ModelSpillTest, PutPinnedKeepsAModelLargerThanTheBudgetUntilReleased) {
  ScratchDir scratch;
  Context context(testing::BudgetOptions(1 * kMiB, scratch.path()));
  auto model = std::make_shared<FakeModel>(1, 8);
  auto pinned = context.PutPinned("model", Value::Host(model));
  ASSERT_TRUE(pinned.ok());
  EXPECT_EQ(model->replaced, 0);
  EXPECT_EQ(pinned->value().host().get(), model.get());
  pinned->Release();
  ASSERT_TRUE(context.EnforceBudget().ok());
  EXPECT_EQ(model->replaced, 1);
}

Value WithRecipe(std::shared_ptr<HostObject> host, double rebuild_seconds) {
  auto recipe = std::make_shared<const nlohmann::json>(nlohmann::json{
      {"1", {{"class_type", "CheckpointLoaderSimple"}, {"inputs", {{"ckpt_name", "m"}}}}},
      {"2",
       {{"class_type", "DiscomfortPort"},
        {"inputs", {{"unique_id", "model"}, {"input_data", {"1", 0}}}}}}});
  return Value::Host(std::move(host)).WithRecipe(recipe, rebuild_seconds);
}

TEST(ModelSpillTest, AModelWhoseRecipeRebuildsFasterThanAWriteIsDropped) {
  ScratchDir scratch;
  Context context(testing::BudgetOptions(4 * kMiB, scratch.path()));
  Events events(context);
  std::weak_ptr<FakeModel> alive;
  {
    auto model = std::make_shared<FakeModel>(1, 8);
    alive = model;
    ASSERT_TRUE(context.Put("model", WithRecipe(model, 1e-6)).ok());
  }
  EXPECT_TRUE(alive.expired());  // the context's reference was the last
  auto got = context.Get("model");
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(got->is_recipe());
  EXPECT_EQ(got->recipe()["1"]["class_type"], "CheckpointLoaderSimple");
  EXPECT_DOUBLE_EQ(got->rebuild_seconds(), 1e-6);
  EXPECT_EQ(context.GetUsage().model_drops, 1u);
  EXPECT_EQ(context.GetUsage().host_ram_bytes, 0u);
  auto spills = events.Of("model_spill");
  ASSERT_EQ(spills.size(), 1u);
  EXPECT_EQ(spills[0]["action"], "drop");
  EXPECT_TRUE(context.CheckConsistency().ok()) << context.CheckConsistency().ToString();
}

TEST(ModelSpillTest, AnExpensiveRecipeOrAnObjectHeldElsewhereIsWrittenInstead) {
  ScratchDir scratch;
  Context context(testing::BudgetOptions(4 * kMiB, scratch.path()));
  Events events(context);
  auto slow = std::make_shared<FakeModel>(1, 8);
  ASSERT_TRUE(context.Put("slow", WithRecipe(slow, 1e6)).ok());
  EXPECT_EQ(slow->replaced, 1);
  EXPECT_TRUE(context.Info("slow")->has_recipe);  // still an object, still with its recipe

  auto held = std::make_shared<FakeModel>(2, 8);
  held->held_elsewhere = "held by a list besides the context";
  ASSERT_TRUE(context.Put("held", WithRecipe(held, 1e-6)).ok());
  EXPECT_EQ(held->replaced, 1);
  auto spills = events.Of("model_spill");
  ASSERT_EQ(spills.size(), 2u);
  EXPECT_EQ(spills[0]["action"], "write");
  EXPECT_EQ(spills[1]["action"], "write");
  EXPECT_NE(spills[1]["reason"].get<std::string>().find("not dropped"), std::string::npos);
  EXPECT_EQ(context.GetUsage().model_drops, 0u);
}

TEST(ModelSpillTest, TheSpillModeOverridesTheCost) {
  ScratchDir scratch;
  ContextOptions options = testing::BudgetOptions(4 * kMiB, scratch.path());
  options.model_spill = ModelSpill::kWrite;
  Context writes(options);
  auto cheap = std::make_shared<FakeModel>(1, 8);
  ASSERT_TRUE(writes.Put("model", WithRecipe(cheap, 1e-6)).ok());
  EXPECT_EQ(cheap->replaced, 1);
  EXPECT_EQ(writes.GetUsage().model_drops, 0u);

  options.model_spill = ModelSpill::kDrop;
  Context drops(options);
  ASSERT_TRUE(drops.Put("model", WithRecipe(std::make_shared<FakeModel>(2, 8), 1e6)).ok());
  EXPECT_EQ(drops.GetUsage().model_drops, 1u);
}

TEST(ModelSpillTest, AFailedWriteLeavesTheModelInRamAndSaysWhich) {
  ScratchDir scratch;
  FaultInjectingFileSystem fs;
  ContextOptions options = testing::BudgetOptions(4 * kMiB, scratch.path());
  options.fs = &fs;
  Context context(options);
  fs.SetFreeSpace(1 * kMiB);
  auto model = std::make_shared<FakeModel>(1, 8);
  const at::Tensor before = model->weight("w.a").clone();
  Status put = context.Put("model", Value::Host(model));
  EXPECT_EQ(put.code(), ErrorCode::kNoSpace) << put.ToString();
  EXPECT_NE(put.message().find("'model'"), std::string::npos) << put.message();
  EXPECT_EQ(model->replaced, 0);
  EXPECT_TRUE(testing::SameBytes(before, model->weight("w.a")));
  EXPECT_EQ(context.GetUsage().host_ram_bytes, 8 * kMiB);
  EXPECT_EQ(testing::CountFiles(context.temp_dir()), 0u);  // no partial file left
  fs.ClearFaults();
  ASSERT_TRUE(context.EnforceBudget().ok());
  EXPECT_EQ(model->replaced, 1);
  EXPECT_TRUE(context.CheckConsistency().ok()) << context.CheckConsistency().ToString();
}

TEST(ModelSpillTest, SnapshotsKeepAModelWithARecipeAsItsRecipe) {
  ScratchDir scratch;
  Context context;
  ASSERT_TRUE(context.Put("model", WithRecipe(std::make_shared<FakeModel>(1, 1), 2.5)).ok());
  ASSERT_TRUE(context.Put("plain", Value::Host(std::make_shared<FakeModel>(2, 1))).ok());
  auto saved = context.SaveSnapshot(scratch / "snap");
  ASSERT_TRUE(saved.ok()) << saved.status().ToString();
  EXPECT_EQ(saved->not_persisted, std::vector<std::string>{"plain"});

  Context fresh;
  auto loaded = fresh.LoadSnapshot(scratch / "snap");
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  auto model = fresh.Get("model");
  ASSERT_TRUE(model.ok());
  ASSERT_TRUE(model->is_recipe());
  EXPECT_EQ(model->recipe()["2"]["inputs"]["unique_id"], "model");
  EXPECT_DOUBLE_EQ(model->rebuild_seconds(), 2.5);
  EXPECT_FALSE(fresh.Contains("plain"));
}

}  // namespace
}  // namespace discomfort::storage
