// The context's own temporary folder: removed on close, reclaimed from dead processes.
#include <unistd.h>

#include <ATen/ops/arange.h>

#include <gtest/gtest.h>

#include "storage/context.h"
#include "test_util.h"

namespace discomfort::storage {
namespace {

using testing::SameBytes;
using testing::ScratchDir;

TEST(TempDirTest, FolderIsNamedWithThePidAndRemovedOnClose) {
  ScratchDir scratch;
  at::Tensor reloaded;
  std::string temp_dir;
  {
    Context context(testing::BudgetOptions(0, scratch.path()));
    temp_dir = context.temp_dir();
    EXPECT_NE(temp_dir.find("discomfort-ctx-" + std::to_string(::getpid()) + "-"),
              std::string::npos);
    ASSERT_TRUE(context.Put("a", Value::Tensor(at::arange(1000, at::kFloat))).ok());
    ASSERT_TRUE(context.Put("b", Value::Tensor(at::arange(2000, at::kFloat))).ok());
    EXPECT_EQ(testing::CountFiles(temp_dir), 2u);
    reloaded = context.Get("a")->tensor();  // a mapping of a spill file
  }
  EXPECT_FALSE(testing::Exists(temp_dir));
  EXPECT_TRUE(SameBytes(at::arange(1000, at::kFloat), reloaded));  // the mapping outlives it
}

TEST(TempDirTest, TwoContextsHaveTwoFolders) {
  ScratchDir scratch;
  Context first(testing::BudgetOptions(0, scratch.path()));
  Context second(testing::BudgetOptions(0, scratch.path()));
  EXPECT_NE(first.temp_dir(), second.temp_dir());
  ASSERT_TRUE(first.Put("a", Value::Tensor(at::arange(10, at::kFloat))).ok());
  ASSERT_TRUE(second.Put("a", Value::Tensor(at::arange(20, at::kFloat))).ok());
  EXPECT_TRUE(SameBytes(at::arange(10, at::kFloat), first.Get("a")->tensor()));
  EXPECT_TRUE(SameBytes(at::arange(20, at::kFloat), second.Get("a")->tensor()));
}

TEST(TempDirTest, FoldersOfDeadProcessesAreReclaimedAtOpen) {
  ScratchDir scratch;
  const int dead = testing::DeadPid();
  const std::string stale = scratch / ("discomfort-ctx-" + std::to_string(dead) + "-0");
  const std::string live_other = scratch / "discomfort-ctx-1-0";  // pid 1 always runs
  const std::string unrelated = scratch / "discomfort-ctx-notapid-0";
  const std::string foreign = scratch / "someone-else";
  for (const auto& dir : {stale, live_other, unrelated, foreign}) {
    testing::MakeDirs(dir);
    testing::WriteText(dir + "/7.safetensors", "data");
  }
  ContextOptions options;
  options.temp_root = scratch.path();
  Context context(options);
  EXPECT_FALSE(testing::Exists(stale));
  EXPECT_TRUE(testing::Exists(live_other));
  EXPECT_TRUE(testing::Exists(unrelated));
  EXPECT_TRUE(testing::Exists(foreign));
  EXPECT_EQ(Context::ReclaimStaleTempDirs(*FileSystem::Default(), scratch.path()), 0);
}

TEST(TempDirTest, LeftoverFolderWithOurOwnNameIsReused) {
  ScratchDir scratch;
  Context context(testing::BudgetOptions(0, scratch.path()));
  // A dead process with our pid (pid reuse) left a folder with the very name we will use.
  testing::MakeDirs(context.temp_dir());
  testing::WriteText(context.temp_dir() + "/stale.safetensors", "junk");
  ASSERT_TRUE(context.Put("a", Value::Tensor(at::arange(10, at::kFloat))).ok());
  EXPECT_FALSE(testing::Exists(context.temp_dir() + "/stale.safetensors"));
  EXPECT_EQ(testing::CountFiles(context.temp_dir()), 1u);
}

}  // namespace
}  // namespace discomfort::storage
