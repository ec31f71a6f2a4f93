#include "storage/context.h"

#include <ATen/ops/arange.h>
#include <ATen/ops/zeros.h>

#include <gtest/gtest.h>

#include "test_util.h"

namespace discomfort::storage {
namespace {

using testing::ScratchDir;

class FakeHost : public HostObject {
 public:
  explicit FakeHost(uint64_t bytes) : bytes_(bytes) {}
  std::string TypeName() const override { return "FakeModel"; }
  uint64_t ApproxBytes() const override { return bytes_; }

 private:
  uint64_t bytes_;
};

TEST(ContextTest, GetReturnsTheSameTensorNotACopy) {
  Context context;
  at::Tensor tensor = at::zeros({64, 64});
  ASSERT_TRUE(context.Put("image", Value::Tensor(tensor)).ok());
  auto got = context.Get("image");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->tensor().unsafeGetTensorImpl(), tensor.unsafeGetTensorImpl());
  EXPECT_TRUE(context.CheckConsistency().ok());
}

TEST(ContextTest, VersionIsZeroWhenAbsentAndGrowsOnEveryPut) {
  Context context;
  EXPECT_EQ(context.Version("a"), 0u);
  ASSERT_TRUE(context.Put("a", Value::Json(1)).ok());
  const uint64_t first = context.Version("a");
  EXPECT_GT(first, 0u);
  ASSERT_TRUE(context.Put("b", Value::Json(2)).ok());
  EXPECT_GT(context.Version("b"), first);
  ASSERT_TRUE(context.Put("a", Value::Json(1)).ok());  // same value, still a new version
  const uint64_t second = context.Version("a");
  EXPECT_GT(second, context.Version("b"));
  ASSERT_TRUE(context.Erase("a").ok());
  EXPECT_EQ(context.Version("a"), 0u);
  ASSERT_TRUE(context.Put("a", Value::Json(3)).ok());
  EXPECT_GT(context.Version("a"), second);  // never reused after an erase
}

TEST(ContextTest, MissingKeysAndEmptyKeysAreErrors) {
  Context context;
  auto missing = context.Get("nope");
  EXPECT_EQ(missing.status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(missing.status().where().port, "nope");
  EXPECT_EQ(context.Erase("nope").code(), ErrorCode::kNotFound);
  EXPECT_EQ(context.Info("nope").status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(context.Pin("nope").status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(context.Put("", Value::Json(1)).code(), ErrorCode::kInvalidArgument);
  EXPECT_FALSE(context.Contains(""));
}

TEST(ContextTest, KeysContainsAndErase) {
  Context context;
  ASSERT_TRUE(context.Put("b", Value::Json("x")).ok());
  ASSERT_TRUE(context.Put("a", Value::Json(true)).ok());
  EXPECT_EQ(context.Keys(), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(context.Contains("a"));
  ASSERT_TRUE(context.Erase("a").ok());
  EXPECT_FALSE(context.Contains("a"));
  EXPECT_EQ(context.Keys(), std::vector<std::string>{"b"});
  EXPECT_EQ(context.GetUsage().count, 1u);
}

TEST(ContextTest, InfoDescribesEachKind) {
  Context context;
  ASSERT_TRUE(context.Put("t", Value::Tensor(at::zeros({2, 3}, at::kHalf))).ok());
  ASSERT_TRUE(context.Put("j", Value::Json({{"steps", 20}})).ok());
  ASSERT_TRUE(context.Put("r", Value::Recipe({{"1", {{"class_type", "CheckpointLoader"}}}})).ok());
  ASSERT_TRUE(context.Put("h", Value::Host(std::make_shared<FakeHost>(123))).ok());

  auto tensor = context.Info("t");
  ASSERT_TRUE(tensor.ok());
  EXPECT_EQ(tensor->kind, ValueKind::kTensor);
  EXPECT_EQ(tensor->bytes, 12u);
  EXPECT_EQ(tensor->device, "cpu");
  EXPECT_EQ(tensor->dtype, "float16");
  EXPECT_EQ(tensor->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_FALSE(tensor->on_disk);
  EXPECT_EQ(tensor->version, context.Version("t"));

  EXPECT_EQ(context.Info("j")->kind, ValueKind::kJson);
  EXPECT_EQ(context.Info("j")->bytes, nlohmann::json({{"steps", 20}}).dump().size());
  EXPECT_EQ(context.Info("r")->kind, ValueKind::kRecipe);
  EXPECT_EQ(context.Info("h")->kind, ValueKind::kHostObject);
  EXPECT_EQ(context.Info("h")->bytes, 123u);
  EXPECT_EQ(context.Info("h")->device, "");
}

TEST(ContextTest, ViewsOfOneStorageAreCountedOnce) {
  Context context;
  at::Tensor base = at::zeros({1024});  // 4 KiB
  ASSERT_TRUE(context.Put("whole", Value::Tensor(base)).ok());
  ASSERT_TRUE(context.Put("slice", Value::Tensor(base.narrow(0, 0, 10))).ok());
  ASSERT_TRUE(context.Put("square", Value::Tensor(base.view({32, 32}))).ok());
  EXPECT_EQ(context.GetUsage().ram_bytes, 4096u);

  ASSERT_TRUE(context.Put("other", Value::Tensor(at::zeros({256}))).ok());
  EXPECT_EQ(context.GetUsage().ram_bytes, 4096u + 1024u);

  ASSERT_TRUE(context.Erase("whole").ok());
  ASSERT_TRUE(context.Erase("slice").ok());
  EXPECT_EQ(context.GetUsage().ram_bytes, 4096u + 1024u);  // "square" still holds it
  ASSERT_TRUE(context.Erase("square").ok());
  EXPECT_EQ(context.GetUsage().ram_bytes, 1024u);
  ASSERT_TRUE(context.Put("other", Value::Json(7)).ok());  // replacing releases the tensor
  EXPECT_EQ(context.GetUsage().ram_bytes, 1u);
  EXPECT_TRUE(context.CheckConsistency().ok());
}

TEST(ContextTest, HostObjectsAreReportedButNotBudgeted) {
  ScratchDir scratch;
  Context context(testing::BudgetOptions(1 << 20, scratch.path()));
  ASSERT_TRUE(
      context.Put("model", Value::Host(std::make_shared<FakeHost>(uint64_t{8} << 30))).ok());
  Usage usage = context.GetUsage();
  EXPECT_EQ(usage.host_object_bytes, uint64_t{8} << 30);
  EXPECT_EQ(usage.ram_bytes, 0u);
  EXPECT_EQ(usage.ram_budget_bytes, 1u << 20);
  EXPECT_EQ(context.Spill("model").code(), ErrorCode::kInvalidArgument);
}

TEST(ContextTest, BudgetFromGigabytesOrPercentOfAvailableMemory) {
  ScratchDir scratch;
  ContextOptions in_gb;
  in_gb.max_ram_gb = 1.5;
  in_gb.temp_root = scratch.path();
  EXPECT_EQ(Context(in_gb).GetUsage().ram_budget_bytes, uint64_t{3} << 29);

  ContextOptions in_percent;
  in_percent.max_ram_percent = 50;
  in_percent.temp_root = scratch.path();
  auto available = Context::ParseMemAvailable(testing::ReadText("/proc/meminfo"));
  ASSERT_TRUE(available.ok());
  const uint64_t budget = Context(in_percent).GetUsage().ram_budget_bytes;
  // MemAvailable moves a little between the two reads.
  EXPECT_NEAR(static_cast<double>(budget), *available / 2.0, *available * 0.05);

  EXPECT_EQ(Context().GetUsage().ram_budget_bytes, 0u);  // unlimited
}

TEST(ContextTest, ParsesMemAvailable) {
  auto parsed = Context::ParseMemAvailable(
      "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   2048 kB\n");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(*parsed, 2048u * 1024u);
  EXPECT_EQ(Context::ParseMemAvailable("MemTotal: 1 kB\n").status().code(), ErrorCode::kParse);
}

TEST(ContextTest, DescribeAndKindNames) {
  EXPECT_EQ(Value::Tensor(at::zeros({1, 2}, at::kFloat)).Describe(), "tensor Float[1,2] cpu");
  EXPECT_EQ(Value::Json(42).Describe(), "json 42");
  EXPECT_STREQ(ValueKindName(ValueKind::kRecipe), "recipe");
}

}  // namespace
}  // namespace discomfort::storage
