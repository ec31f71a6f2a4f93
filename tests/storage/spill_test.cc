// Spilling over the RAM budget, reloading, pinning, and failures of the disk.
#include <ATen/Context.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>

#include <gtest/gtest.h>

#include "storage/context.h"
#include "test_util.h"
#include "tests/support/fault_injecting_filesystem.h"

namespace discomfort::storage {
namespace {

using testing::SameBytes;
using testing::ScratchDir;

constexpr int64_t kKiB = 1024;

// A float32 tensor of `kib` KiB whose elements encode `tag`.
at::Tensor Block(int64_t kib, float tag) { return at::full({kib * kKiB / 4}, tag); }

bool OnDisk(const Context& context, const std::string& key) {
  auto info = context.Info(key);
  return info.ok() && info->on_disk;
}

TEST(SpillTest, LeastRecentlyUsedTensorSpillsOverBudget) {
  ScratchDir scratch;
  Context context(testing::BudgetOptions(1024 * kKiB, scratch.path()));
  ASSERT_TRUE(context.Put("a", Value::Tensor(Block(512, 1))).ok());
  ASSERT_TRUE(context.Put("b", Value::Tensor(Block(512, 2))).ok());
  EXPECT_EQ(context.GetUsage().spilled_count, 0u);  // exactly at the budget
  ASSERT_TRUE(context.Get("a").ok());               // b is now the least recently used
  ASSERT_TRUE(context.Put("c", Value::Tensor(Block(512, 3))).ok());

  EXPECT_TRUE(OnDisk(context, "b"));
  EXPECT_FALSE(OnDisk(context, "a"));
  EXPECT_FALSE(OnDisk(context, "c"));
  Usage usage = context.GetUsage();
  EXPECT_LE(usage.ram_bytes, 1024u * kKiB);
  EXPECT_GT(usage.disk_bytes, 512u * kKiB);
  EXPECT_EQ(usage.spills, 1u);
  const std::string path = context.Info("b")->spill_path;
  EXPECT_EQ(path.rfind(context.temp_dir() + "/", 0), 0u);
  EXPECT_TRUE(testing::Exists(path));
  EXPECT_TRUE(context.CheckConsistency().ok());

  // Bringing b back pushes out the least recently used of the others (a).
  const uint64_t version = context.Version("b");
  auto b = context.Get("b");
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(SameBytes(Block(512, 2), b->tensor()));
  EXPECT_EQ(context.Version("b"), version);  // spilling never changes the version
  EXPECT_FALSE(OnDisk(context, "b"));
  EXPECT_TRUE(OnDisk(context, "a"));
  EXPECT_FALSE(testing::Exists(path));
  EXPECT_EQ(context.GetUsage().reloads, 1u);
  EXPECT_TRUE(context.CheckConsistency().ok());
}

TEST(SpillTest, ReloadIsByteExactForEveryDtypeAndLayout) {
  ScratchDir scratch;
  ContextOptions options;
  options.force_spill = true;
  options.temp_root = scratch.path();
  options.io_chunk_bytes = 64;  // many chunks even for small tensors
  Context context(options);
  const c10::ScalarType dtypes[] = {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16, at::kLong,
                                    at::kInt,   at::kShort,  at::kChar, at::kByte,     at::kBool};
  std::vector<std::pair<std::string, at::Tensor>> expected;
  for (c10::ScalarType dtype : dtypes) {
    at::Tensor base = at::arange(8 * 9 * 10, at::kFloat).mul(0.37).remainder(50).to(dtype);
    base = base.view({8, 9, 10});
    const std::string name = c10::toString(dtype);
    expected.push_back({name + "/contiguous", base.clone()});
    expected.push_back({name + "/permuted", base.permute({2, 0, 1})});
    expected.push_back({name + "/stepped", base.slice(2, 1, 10, 3)});
    expected.push_back({name + "/scalar", base[3][4][5]});
  }
  for (const auto& [key, tensor] : expected) {
    ASSERT_TRUE(context.Put(key, Value::Tensor(tensor)).ok()) << key;
    EXPECT_TRUE(OnDisk(context, key)) << key;
  }
  EXPECT_EQ(context.GetUsage().ram_bytes, 0u);
  for (const auto& [key, tensor] : expected) {
    auto reloaded = context.Get(key);
    ASSERT_TRUE(reloaded.ok()) << key << ": " << reloaded.status().ToString();
    EXPECT_TRUE(SameBytes(tensor, reloaded->tensor())) << key;
  }
  EXPECT_TRUE(context.CheckConsistency().ok());
}

TEST(SpillTest, ReloadedCpuTensorMapsTheSpillFile) {
  ScratchDir scratch;
  ContextOptions options = testing::BudgetOptions(0, scratch.path());
  options.reload = ReloadMode::kMap;
  Context context(options);
  at::Tensor original = at::arange(1 << 18, at::kFloat);  // 1 MiB
  ASSERT_TRUE(context.Put("x", Value::Tensor(original)).ok());
  ASSERT_TRUE(OnDisk(context, "x"));
  const std::string path = context.Info("x")->spill_path;

  auto reloaded = context.Get("x");
  ASSERT_TRUE(reloaded.ok());
  const void* data = reloaded->tensor().const_data_ptr();
  EXPECT_NE(data, original.const_data_ptr());
  // The tensor's memory is a mapping of the spill file (now unlinked), not an anonymous copy.
  const std::string mapping = testing::MappingOf(data);
  EXPECT_NE(mapping.find(path), std::string::npos) << mapping;
  EXPECT_TRUE(SameBytes(original, reloaded->tensor()));
  // Writes to the reloaded tensor are private and allowed.
  reloaded->tensor().add_(1);
  EXPECT_EQ(reloaded->tensor()[0].item<float>(), 1.0f);
}

TEST(SpillTest, SpilledFileOpensWithPythonSafetensors) {
  const std::string python = testing::PythonWithSafetensors();
  if (python.empty()) GTEST_SKIP() << "no venv Python with torch + safetensors";
  ScratchDir scratch;
  ContextOptions options;
  options.force_spill = true;
  options.temp_root = scratch.path();
  Context context(options);
  at::Tensor grid = at::arange(60, at::kFloat).view({5, 12});
  ASSERT_TRUE(context.Put("latent", Value::Tensor(grid.to(at::kBFloat16).t())).ok());
  ASSERT_TRUE(context.Put("ids", Value::Tensor(grid.to(at::kLong))).ok());
  testing::WriteText(scratch / "check.py",
                     "import torch\nfrom safetensors.torch import load_file\n"
                     "grid = torch.arange(60, dtype=torch.float32).view(5, 12)\n"
                     "a = load_file('" +
                         context.Info("latent")->spill_path +
                         "')\n"
                         "b = load_file('" +
                         context.Info("ids")->spill_path +
                         "')\n"
                         "assert torch.equal(a['latent'], grid.to(torch.bfloat16).t())\n"
                         "assert torch.equal(b['ids'], grid.long())\n");
  EXPECT_EQ(testing::RunPython(python, scratch / "check.py"), 0);
}

TEST(SpillTest, PinnedValuesStayInMemory) {
  ScratchDir scratch;
  Context context(testing::BudgetOptions(1024 * kKiB, scratch.path()));
  ASSERT_TRUE(context.Put("a", Value::Tensor(Block(512, 1))).ok());
  {
    auto pinned = context.Pin("a");
    ASSERT_TRUE(pinned.ok());
    EXPECT_EQ(context.Info("a")->pins, 1);
    EXPECT_EQ(context.Spill("a").code(), ErrorCode::kInvalidArgument);
    ASSERT_TRUE(context.Put("b", Value::Tensor(Block(512, 2))).ok());
    ASSERT_TRUE(context.Put("c", Value::Tensor(Block(512, 3))).ok());
    EXPECT_FALSE(OnDisk(context, "a"));  // the oldest, but pinned
    EXPECT_TRUE(OnDisk(context, "b"));
    EXPECT_EQ(context.GetUsage().pinned_count, 1u);
    EXPECT_EQ(pinned->tensor().data_ptr(), context.Get("a")->tensor().data_ptr());
  }
  EXPECT_EQ(context.Info("a")->pins, 0);
  ASSERT_TRUE(context.Spill("a").ok());
  EXPECT_TRUE(OnDisk(context, "a"));

  // Pinning a spilled value brings it back and keeps it.
  auto pinned_b = context.Pin("b");
  ASSERT_TRUE(pinned_b.ok());
  EXPECT_FALSE(OnDisk(context, "b"));
  EXPECT_TRUE(SameBytes(Block(512, 2), pinned_b->tensor()));
  ASSERT_TRUE(context.Put("d", Value::Tensor(Block(512, 4))).ok());
  EXPECT_FALSE(OnDisk(context, "b"));
  pinned_b->Release();
  EXPECT_EQ(context.Info("b")->pins, 0);
  EXPECT_TRUE(context.CheckConsistency().ok());
}

TEST(SpillTest, PinFollowsTheVersionNotTheKey) {
  ScratchDir scratch;
  Context context(testing::BudgetOptions(0, scratch.path()));
  ASSERT_TRUE(context.Put("a", Value::Tensor(Block(4, 1))).ok());
  auto pinned = context.Pin("a");
  ASSERT_TRUE(pinned.ok());
  ASSERT_TRUE(context.Put("a", Value::Tensor(Block(4, 2))).ok());  // replaces the pinned value
  EXPECT_EQ(context.Info("a")->pins, 0);
  EXPECT_TRUE(OnDisk(context, "a"));  // the new value is not pinned: budget 0 spills it
  EXPECT_TRUE(SameBytes(Block(4, 1), pinned->tensor()));  // the handle keeps the old value
  PinnedValue moved = std::move(pinned).value();
  moved.Release();
  EXPECT_EQ(context.Info("a")->pins, 0);
}

TEST(SpillTest, PinMayOutliveTheContext) {
  ScratchDir scratch;
  PinnedValue survivor;
  {
    Context context(testing::BudgetOptions(0, scratch.path()));
    ASSERT_TRUE(context.Put("a", Value::Tensor(Block(4, 7))).ok());
    survivor = std::move(context.Pin("a").value());
  }
  EXPECT_TRUE(SameBytes(Block(4, 7), survivor.tensor()));
  survivor.Release();  // no context left: nothing to unpin, no crash
}

TEST(SpillTest, WriteErrorKeepsTheValueInMemory) {
  ScratchDir scratch;
  FaultInjectingFileSystem fs;
  ContextOptions options = testing::BudgetOptions(512 * kKiB, scratch.path());
  options.fs = &fs;
  options.io_chunk_bytes = 64 * kKiB;
  Context context(options);
  at::Tensor a = Block(512, 1);
  ASSERT_TRUE(context.Put("a", Value::Tensor(a)).ok());
  fs.FailWritesAfter(3);  // the header and two chunks, then EIO
  Status put = context.Put("b", Value::Tensor(Block(512, 2)));
  EXPECT_EQ(put.code(), ErrorCode::kIO) << put.ToString();
  EXPECT_NE(put.message().find("'a'"), std::string::npos) << put.message();
  EXPECT_NE(put.message().find("stays in memory"), std::string::npos);
  EXPECT_TRUE(context.Contains("b"));  // b is stored anyway

  EXPECT_FALSE(OnDisk(context, "a"));
  EXPECT_EQ(context.Get("a")->tensor().data_ptr(), a.data_ptr());  // the very same memory
  EXPECT_EQ(testing::CountFiles(context.temp_dir()), 0u);          // no partial file left
  EXPECT_EQ(context.GetUsage().disk_bytes, 0u);
  EXPECT_TRUE(context.CheckConsistency().ok());

  fs.ClearFaults();  // the disk recovers: the next pass spills
  ASSERT_TRUE(context.EnforceBudget().ok());
  EXPECT_LE(context.GetUsage().ram_bytes, 512u * kKiB);
  EXPECT_TRUE(SameBytes(Block(512, 1), context.Get("a")->tensor()));
  EXPECT_TRUE(SameBytes(Block(512, 2), context.Get("b")->tensor()));
}

TEST(SpillTest, FullDiskMidSpillIsNoSpaceAndLosesNothing) {
  ScratchDir scratch;
  FaultInjectingFileSystem fs;
  ContextOptions options = testing::BudgetOptions(256 * kKiB, scratch.path());
  options.fs = &fs;
  Context context(options);
  fs.SetFreeSpace(300 * kKiB);  // room for one 256 KiB spill, not two
  ASSERT_TRUE(context.Put("a", Value::Tensor(Block(256, 1))).ok());
  ASSERT_TRUE(context.Put("b", Value::Tensor(Block(256, 2))).ok());  // spills a
  EXPECT_TRUE(OnDisk(context, "a"));
  Status put = context.Put("c", Value::Tensor(Block(256, 3)));  // b does not fit
  EXPECT_EQ(put.code(), ErrorCode::kNoSpace) << put.ToString();
  EXPECT_EQ(put.where().port, "b");
  EXPECT_FALSE(OnDisk(context, "b"));
  EXPECT_EQ(testing::CountFiles(context.temp_dir()), 1u);  // a's file only

  for (auto [key, tag] : {std::pair{"a", 1}, {"b", 2}, {"c", 3}}) {
    auto value = context.Get(key);
    ASSERT_TRUE(value.ok()) << key;
    EXPECT_TRUE(SameBytes(Block(256, tag), value->tensor())) << key;
  }
  EXPECT_TRUE(context.CheckConsistency().ok());
}

TEST(SpillTest, FsyncFailureOfSpillFileIsAnError) {
  ScratchDir scratch;
  FaultInjectingFileSystem fs;
  ContextOptions options = testing::BudgetOptions(0, scratch.path());
  options.fs = &fs;
  options.sync_spill_files = true;
  Context context(options);
  fs.SetSyncFails(true);
  EXPECT_EQ(context.Put("a", Value::Tensor(Block(4, 1))).code(), ErrorCode::kIO);
  EXPECT_FALSE(OnDisk(context, "a"));
  EXPECT_EQ(testing::CountFiles(context.temp_dir()), 0u);
}

TEST(SpillTest, ReplaceAndEraseRemoveSpillFiles) {
  ScratchDir scratch;
  Context context(testing::BudgetOptions(0, scratch.path()));
  ASSERT_TRUE(context.Put("a", Value::Tensor(Block(8, 1))).ok());
  const std::string first = context.Info("a")->spill_path;
  ASSERT_TRUE(testing::Exists(first));
  ASSERT_TRUE(context.Put("a", Value::Tensor(Block(8, 2))).ok());
  EXPECT_FALSE(testing::Exists(first));
  EXPECT_TRUE(SameBytes(Block(8, 2), context.Get("a")->tensor()));
  ASSERT_TRUE(context.Spill("a").ok());
  ASSERT_TRUE(context.Erase("a").ok());
  EXPECT_EQ(testing::CountFiles(context.temp_dir()), 0u);
  EXPECT_EQ(context.GetUsage().disk_bytes, 0u);
}

TEST(SpillTest, ViewsSpillUntilTheirStorageIsFree) {
  ScratchDir scratch;
  Context context(testing::BudgetOptions(64 * kKiB, scratch.path()));
  at::Tensor base = Block(64, 5);
  ASSERT_TRUE(context.Put("half1", Value::Tensor(base.narrow(0, 0, 8192))).ok());
  ASSERT_TRUE(context.Put("half2", Value::Tensor(base.narrow(0, 8192, 8192))).ok());
  EXPECT_EQ(context.GetUsage().ram_bytes, 64u * kKiB);
  ASSERT_TRUE(context.Put("new", Value::Tensor(Block(16, 6))).ok());
  // Spilling one half frees nothing; both halves go, and the shared storage leaves the count.
  EXPECT_TRUE(OnDisk(context, "half1"));
  EXPECT_TRUE(OnDisk(context, "half2"));
  EXPECT_EQ(context.GetUsage().ram_bytes, 16u * kKiB);
  EXPECT_TRUE(SameBytes(base.narrow(0, 8192, 8192), context.Get("half2")->tensor()));
}

TEST(SpillTest, TensorsTheFormatCannotHoldStayInMemory) {
  ScratchDir scratch;
  Context context(testing::BudgetOptions(0, scratch.path()));
  at::Tensor complex = at::zeros({16}, at::TensorOptions().dtype(at::kComplexFloat));
  EXPECT_TRUE(context.Put("z", Value::Tensor(complex)).ok());  // nothing else could spill
  EXPECT_FALSE(OnDisk(context, "z"));
  Status spill = context.Spill("z");
  EXPECT_EQ(spill.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(spill.message().find("dtype"), std::string::npos);
  EXPECT_EQ(context.Spill("missing").code(), ErrorCode::kNotFound);
  ASSERT_TRUE(context.Put("j", Value::Json(1)).ok());
  EXPECT_EQ(context.Spill("j").code(), ErrorCode::kInvalidArgument);
}

TEST(SpillTest, ForceSpillFromTheEnvironment) {
  ScratchDir scratch;
  ::setenv("DISCOMFORT_FORCE_SPILL", "1", 1);
  ContextOptions options;
  options.temp_root = scratch.path();
  Context context(options);
  ::unsetenv("DISCOMFORT_FORCE_SPILL");
  ASSERT_TRUE(context.Put("a", Value::Tensor(Block(4, 1))).ok());
  EXPECT_TRUE(OnDisk(context, "a"));
  EXPECT_TRUE(SameBytes(Block(4, 1), context.Get("a")->tensor()));
  // The tensor just read stays until the next put, then spills again.
  ASSERT_TRUE(context.Put("b", Value::Json(2)).ok());
  EXPECT_TRUE(OnDisk(context, "a"));
}

TEST(SpillTest, RequiresGradSurvivesASpill) {
  ScratchDir scratch;
  Context context(testing::BudgetOptions(0, scratch.path()));
  ASSERT_TRUE(context.Put("w", Value::Tensor(Block(4, 1).requires_grad_(true))).ok());
  ASSERT_TRUE(OnDisk(context, "w"));
  EXPECT_TRUE(context.Get("w")->tensor().requires_grad());
}

// Runs only where CUDA is present (not on the CPU CI machine).
TEST(SpillTest, CudaTensorsSpillThroughStagingAndReturnToTheirDevice) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  ScratchDir scratch;
  ContextOptions options;
  options.max_device_gb = 0;
  options.temp_root = scratch.path();
  options.io_chunk_bytes = 1 << 20;  // several staging chunks
  Context context(options);
  at::Tensor host = at::arange(3 << 20, at::kFloat).mul(0.5).view({3, 1 << 20});
  at::Tensor device = host.to(at::Device("cuda:0"));
  ASSERT_TRUE(context.Put("g", Value::Tensor(device)).ok());
  ASSERT_TRUE(context.Put("g_t", Value::Tensor(device.to(at::kBFloat16).t())).ok());
  EXPECT_TRUE(OnDisk(context, "g"));
  EXPECT_TRUE(OnDisk(context, "g_t"));
  EXPECT_EQ(context.Info("g")->device, "cuda:0");
  auto back = context.Get("g");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(back->tensor().is_cuda());
  EXPECT_TRUE(SameBytes(host, back->tensor()));
  EXPECT_TRUE(SameBytes(host.to(at::kBFloat16).t(), context.Get("g_t")->tensor()));
  EXPECT_TRUE(context.CheckConsistency().ok());
}

}  // namespace
}  // namespace discomfort::storage
