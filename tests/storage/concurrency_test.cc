// Several threads put, get, pin, spill and erase at once; the store's invariants must hold.
#include <ATen/ops/full.h>

#include <atomic>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "storage/context.h"
#include "test_util.h"

namespace discomfort::storage {
namespace {

using testing::ScratchDir;

constexpr int kKeys = 6;
constexpr int64_t kElements = 16 * 1024;  // int32: 64 KiB per value

// Every element of a value is key * 1'000'000 + sequence, so a torn or mixed-up value shows.
at::Tensor Tagged(int key, int sequence) {
  return at::full({kElements}, key * 1'000'000 + sequence, at::TensorOptions().dtype(at::kInt));
}

// Empty when the tensor is whole and belongs to `key`; else what is wrong.
std::string CheckTagged(const at::Tensor& tensor, int key) {
  if (tensor.scalar_type() != at::kInt || tensor.numel() != kElements) return "wrong shape";
  const int32_t* data = tensor.const_data_ptr<int32_t>();
  const int32_t first = data[0];
  if (first / 1'000'000 != key) return "value of another key";
  for (int64_t i = 1; i < kElements; ++i) {
    if (data[i] != first) return "torn value at " + std::to_string(i);
  }
  return "";
}

TEST(ConcurrencyTest, HammerFromSeveralThreadsKeepsInvariants) {
  ScratchDir scratch;
  ContextOptions options = testing::BudgetOptions(3 * kElements * 4, scratch.path());
  options.io_chunk_bytes = 16 * 1024;  // spills take several writes: more interleavings
  Context context(options);
  constexpr int kThreads = 4;
  constexpr int kOperations = 400;
  std::atomic<int> failures{0};
  std::atomic<int> sequence{0};
  std::vector<std::string> messages(kThreads);

  auto worker = [&](int thread_index) {
    std::mt19937 random(1234 + thread_index);
    uint64_t last_version[kKeys] = {};
    auto fail = [&](const std::string& what) {
      if (failures.fetch_add(1) == 0) messages[thread_index] = what;
    };
    for (int op = 0; op < kOperations; ++op) {
      const int key_index = static_cast<int>(random() % kKeys);
      const std::string key = "k" + std::to_string(key_index);
      switch (random() % 7) {
        case 0:
        case 1: {
          Status put = context.Put(key, Value::Tensor(Tagged(key_index, ++sequence)));
          if (!put.ok()) fail("put: " + put.ToString());
          break;
        }
        case 2:
        case 3: {
          auto got = context.Get(key);
          if (got.ok()) {
            std::string wrong = CheckTagged(got->tensor(), key_index);
            if (!wrong.empty()) fail("get " + key + ": " + wrong);
          } else if (got.status().code() != ErrorCode::kNotFound) {
            fail("get: " + got.status().ToString());
          }
          break;
        }
        case 4: {
          auto pinned = context.Pin(key);
          if (pinned.ok()) {
            std::this_thread::yield();
            std::string wrong = CheckTagged(pinned->tensor(), key_index);
            if (!wrong.empty()) fail("pin " + key + ": " + wrong);
            auto info = context.Info(key);
            // While pinned (same version) it must be in memory.
            if (info.ok() && info->version == pinned->version() && info->on_disk) {
              fail("pinned value " + key + " is on disk");
            }
          } else if (pinned.status().code() != ErrorCode::kNotFound) {
            fail("pin: " + pinned.status().ToString());
          }
          break;
        }
        case 5: {
          Status spilled = context.Spill(key);
          if (!spilled.ok() && spilled.code() != ErrorCode::kNotFound &&
              spilled.code() != ErrorCode::kInvalidArgument) {  // pinned by another thread
            fail("spill: " + spilled.ToString());
          }
          break;
        }
        case 6: {
          Status erased = context.Erase(key);
          if (!erased.ok() && erased.code() != ErrorCode::kNotFound) {
            fail("erase: " + erased.ToString());
          }
          break;
        }
      }
      // Versions only grow (0 after an erase; a later put is larger than anything before).
      const uint64_t version = context.Version(key);
      if (version != 0 && version < last_version[key_index]) fail("version went backwards");
      if (version != 0) last_version[key_index] = version;
      Usage usage = context.GetUsage();
      if (usage.count > kKeys) fail("more values than keys");
    }
  };

  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) threads.emplace_back(worker, i);
  for (auto& thread : threads) thread.join();

  EXPECT_EQ(failures.load(), 0) << [&] {
    std::string all;
    for (const auto& m : messages) all += m + "\n";
    return all;
  }();
  Status consistent = context.CheckConsistency();
  EXPECT_TRUE(consistent.ok()) << consistent.ToString();
  ASSERT_TRUE(context.EnforceBudget().ok());
  Usage usage = context.GetUsage();
  EXPECT_LE(usage.ram_bytes, usage.ram_budget_bytes);
  EXPECT_EQ(usage.pinned_count, 0u);
  EXPECT_GT(usage.spills, 0u);
  // Exactly one spill file per spilled value: no leaks from races between spill and erase.
  EXPECT_EQ(testing::CountFiles(context.temp_dir()), usage.spilled_count);
  for (const std::string& key : context.Keys()) {
    auto value = context.Get(key);
    ASSERT_TRUE(value.ok());
    EXPECT_EQ(CheckTagged(value->tensor(), key[1] - '0'), "") << key;
  }
}

}  // namespace
}  // namespace discomfort::storage
