// The context's budget for tensors on a CUDA device (max_device_gb). These run only where torch
// sees a CUDA device, and say so when skipped: the CPU CI machine has none, a GPU machine runs
// them through benchmarks/gpu/device_check.sh. Device tensors count against the device budget,
// never the RAM budget; beyond it the least recently used unpinned one spills (device -> pinned
// staging -> safetensors) and comes back to its device, bit for bit, when read.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "storage/context.h"
#include "tests/storage/test_util.h"

namespace discomfort::storage {
namespace {

using testing::SameBytes;
using testing::ScratchDir;

constexpr uint64_t kMiB = uint64_t{1} << 20;

class DeviceBudgetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!at::hasCUDA()) {
      GTEST_SKIP() << "no CUDA device: at::hasCUDA() is false (libtorch_cuda not loaded or no "
                      "GPU); runs on a GPU machine (benchmarks/gpu/device_check.sh)";
    }
  }
  ContextOptions DeviceBudget(std::optional<uint64_t> bytes) const {
    ContextOptions options;
    if (bytes) options.max_device_gb = static_cast<double>(*bytes) / (1024.0 * 1024.0 * 1024.0);
    options.temp_root = scratch_.path();
    options.io_chunk_bytes = 1 << 20;  // several staging chunks per tensor
    return options;
  }
  // `mib` MiB of float32 on the first CUDA device, values distinct per `scale`.
  static at::Tensor OnDevice(int64_t mib, double scale) {
    return at::arange(mib * static_cast<int64_t>(kMiB / 4), at::kFloat)
        .mul(scale)
        .to(at::Device("cuda:0"));
  }
  static bool OnDisk(const Context& context, const std::string& key) {
    auto info = context.Info(key);
    return info.ok() && info->on_disk;
  }

  ScratchDir scratch_;
};

TEST_F(DeviceBudgetTest, LeastRecentlyUsedTensorSpillsAndComesBackToItsDevice) {
  Context context(DeviceBudget(10 * kMiB));
  const at::Tensor a = OnDevice(4, 0.5);
  const at::Tensor b = OnDevice(4, 0.25);
  const at::Tensor c = OnDevice(4, 2.0);
  ASSERT_TRUE(context.Put("a", Value::Tensor(a)).ok());
  ASSERT_TRUE(context.Put("b", Value::Tensor(b)).ok());
  EXPECT_FALSE(OnDisk(context, "a"));                    // 8 MiB: within the budget
  ASSERT_TRUE(context.Put("c", Value::Tensor(c)).ok());  // 12 MiB: the oldest leaves
  EXPECT_TRUE(OnDisk(context, "a"));
  EXPECT_FALSE(OnDisk(context, "b"));
  EXPECT_FALSE(OnDisk(context, "c"));
  Usage usage = context.GetUsage();
  EXPECT_EQ(usage.device_bytes, 8 * kMiB);
  EXPECT_EQ(usage.device_budget_bytes, 10 * kMiB);
  EXPECT_EQ(usage.spills, 1u);
  EXPECT_EQ(context.Info("a")->device, "cuda:0");

  auto back = context.Get("a");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(back->tensor().is_cuda());
  EXPECT_EQ(back->tensor().device(), a.device());
  EXPECT_TRUE(SameBytes(a, back->tensor()));
  EXPECT_EQ(context.GetUsage().reloads, 1u);
  EXPECT_TRUE(context.CheckConsistency().ok());
}

TEST_F(DeviceBudgetTest, DeviceTensorsAreNotChargedToTheRamBudget) {
  ContextOptions options = DeviceBudget(std::nullopt);
  options.max_ram_gb = 0;  // every CPU tensor spills at once
  Context context(options);
  ASSERT_TRUE(context.Put("gpu", Value::Tensor(OnDevice(2, 1.0))).ok());
  ASSERT_TRUE(context.Put("cpu", Value::Tensor(at::ones({1024}))).ok());
  EXPECT_FALSE(OnDisk(context, "gpu"));
  EXPECT_TRUE(OnDisk(context, "cpu"));
  EXPECT_EQ(context.GetUsage().device_bytes, 2 * kMiB);
}

// Shapes the staging path must get right: a transposed view, a view with a storage offset, a size
// that is no multiple of the staging chunk nor of the direct-I/O block, and narrow dtypes.
TEST_F(DeviceBudgetTest, ZeroBudgetSpillsEveryTensorAndEachComesBackExact) {
  Context context(DeviceBudget(0));
  const at::Device cuda("cuda:0");
  const at::Tensor base = at::arange(3 * ((1 << 20) + 7), at::kFloat).view({3, (1 << 20) + 7});
  const std::vector<std::pair<std::string, at::Tensor>> cases = {
      {"transposed", base.to(cuda).t()},
      {"offset_view", base.to(cuda).narrow(0, 1, 2)},
      {"odd_bytes", at::arange((3 << 20) + 123, at::kInt).remainder(251).to(at::kByte).to(cuda)},
      {"half", base.to(at::kHalf).to(cuda)},
      {"flags", base.remainder(3).eq(0).to(cuda)},
  };
  for (const auto& [key, tensor] : cases) {
    ASSERT_TRUE(context.Put(key, Value::Tensor(tensor)).ok()) << key;
    EXPECT_TRUE(OnDisk(context, key)) << key;
  }
  EXPECT_EQ(context.GetUsage().device_bytes, 0u);
  for (const auto& [key, tensor] : cases) {
    auto back = context.Get(key);
    ASSERT_TRUE(back.ok()) << key << ": " << back.status().ToString();
    EXPECT_TRUE(back->tensor().is_cuda()) << key;
    EXPECT_TRUE(SameBytes(tensor, back->tensor())) << key;
  }
  EXPECT_TRUE(context.CheckConsistency().ok());
}

TEST_F(DeviceBudgetTest, APinnedTensorStaysUntilReleased) {
  Context context(DeviceBudget(std::nullopt));
  ASSERT_TRUE(context.Put("a", Value::Tensor(OnDevice(2, 1.0))).ok());
  ASSERT_TRUE(context.Put("b", Value::Tensor(OnDevice(2, 3.0))).ok());
  auto pinned = context.Pin("b");
  ASSERT_TRUE(pinned.ok()) << pinned.status().ToString();
  ASSERT_TRUE(context.SetDeviceBudget(0.0).ok());  // nothing may stay on the device...
  EXPECT_TRUE(OnDisk(context, "a"));
  EXPECT_FALSE(OnDisk(context, "b"));  // ...but what an iteration is using
  EXPECT_TRUE(pinned->tensor().is_cuda());
  pinned->Release();
  ASSERT_TRUE(context.EnforceBudget().ok());
  EXPECT_TRUE(OnDisk(context, "b"));
  EXPECT_EQ(context.GetUsage().device_bytes, 0u);
}

TEST_F(DeviceBudgetTest, SnapshotRestoresDeviceTensorsOnTheirDevice) {
  const at::Tensor weights = OnDevice(3, 0.125);
  {
    Context context(DeviceBudget(std::nullopt));
    ASSERT_TRUE(context.Put("w", Value::Tensor(weights)).ok());
    auto saved = context.SaveSnapshot(scratch_ / "snapshot");
    ASSERT_TRUE(saved.ok()) << saved.status().ToString();
  }
  Context restored(DeviceBudget(std::nullopt));
  auto loaded = restored.LoadSnapshot(scratch_ / "snapshot");
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  auto back = restored.Get("w");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(back->tensor().is_cuda());
  EXPECT_TRUE(SameBytes(weights, back->tensor()));
}

}  // namespace
}  // namespace discomfort::storage
