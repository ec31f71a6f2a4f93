// Checkpoints: two snapshot generations committed by the atomic rename of run.json, written through
// the injectable file system, so a crash or a full disk at any point leaves the previous
// checkpoint.
#include "engine/checkpoint.h"

#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "tests/support/fault_injecting_filesystem.h"

namespace discomfort::engine {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("discomfort-ckpt-test-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // The counter and next_iteration of the checkpoint in dir_, loaded into a fresh context.
  std::pair<int, int> Restored() {
    storage::Context restored;
    auto cp = LoadCheckpoint(dir_.string(), restored);
    EXPECT_TRUE(cp.ok()) << cp.status().ToString();
    if (!cp.ok()) return {-1, -1};
    return {restored.Get("counter")->json().get<int>(), cp->next_iteration};
  }

  fs::path dir_;
};

// A crash between the snapshot and run.json (here: the rename that commits run.json fails) must
// leave the previous checkpoint as a consistent pair, never the new context with the old count.
TEST_F(CheckpointTest, ACheckpointCutShortLeavesThePreviousPairConsistent) {
  storage::FaultInjectingFileSystem faulty;
  storage::Context context;
  ASSERT_TRUE(context.Put("counter", storage::Value::Json(1)).ok());
  ASSERT_TRUE(SaveCheckpoint(context, dir_.string(), json::object(), 1, &faulty).ok());
  ASSERT_TRUE(context.Put("counter", storage::Value::Json(2)).ok());
  faulty.SetRenameFails(true);
  EXPECT_FALSE(SaveCheckpoint(context, dir_.string(), json::object(), 2, &faulty).ok());
  EXPECT_EQ(Restored(), std::make_pair(1, 1));
  faulty.ClearFaults();
  faulty.SetRenameFails(false);
  ASSERT_TRUE(SaveCheckpoint(context, dir_.string(), json::object(), 2, &faulty).ok());
  EXPECT_EQ(Restored(), std::make_pair(2, 2));
  int generations = 0, temporaries = 0;
  for (const auto& entry : fs::directory_iterator(dir_)) {
    const std::string name = entry.path().filename().string();
    generations += name.rfind("context", 0) == 0;
    temporaries += name.find(".tmp") != std::string::npos;
  }
  EXPECT_EQ(generations, 1);  // the older generation is removed once run.json names the new one
  EXPECT_EQ(temporaries, 0);
}

// The disk fills up while a checkpoint is written (the snapshot's tensors, or run.json): the
// save fails with kNoSpace, the previous checkpoint still loads, and once space returns the next
// save succeeds.
TEST_F(CheckpointTest, ADiskFullDuringACheckpointKeepsThePreviousOne) {
  storage::FaultInjectingFileSystem faulty;
  storage::ContextOptions options;
  options.fs = &faulty;
  storage::Context context(options);
  ASSERT_TRUE(context.Put("counter", storage::Value::Json(1)).ok());
  ASSERT_TRUE(SaveCheckpoint(context, dir_.string(), json::object(), 1, &faulty).ok());
  ASSERT_TRUE(context.Put("counter", storage::Value::Json(2)).ok());
  // How many bytes a whole checkpoint of this context writes (into a scratch folder), so the disk
  // can fill up at its start, in its middle and at its very last byte (run.json's).
  const std::string scratch = dir_.string() + "-scratch";
  const uint64_t before = faulty.bytes_written();
  ASSERT_TRUE(SaveCheckpoint(context, scratch, json::object(), 2, &faulty).ok());
  const uint64_t needed = faulty.bytes_written() - before;
  fs::remove_all(scratch);
  ASSERT_GT(needed, 2u);
  for (uint64_t free_bytes : {uint64_t{0}, needed / 2, needed - 1}) {
    faulty.SetFreeSpace(free_bytes);
    Status st = SaveCheckpoint(context, dir_.string(), json::object(), 2, &faulty);
    ASSERT_FALSE(st.ok()) << "with " << free_bytes << " bytes free";
    EXPECT_EQ(st.code(), ErrorCode::kNoSpace) << st.ToString();
    EXPECT_EQ(Restored(), std::make_pair(1, 1));
  }
  faulty.ClearFaults();
  ASSERT_TRUE(SaveCheckpoint(context, dir_.string(), json::object(), 2, &faulty).ok());
  EXPECT_EQ(Restored(), std::make_pair(2, 2));
}

TEST_F(CheckpointTest, AManifestNamingAForeignFolderOrASymlinkIsRefused) {
  storage::Context context;
  ASSERT_TRUE(context.Put("counter", storage::Value::Json(1)).ok());
  ASSERT_TRUE(SaveCheckpoint(context, dir_.string(), json::object(), 1).ok());
  const std::string generation = fs::exists(dir_ / "context-a") ? "context-a" : "context-b";
  // run.json naming a folder elsewhere.
  {
    auto& disk = *storage::FileSystem::Default();
    ASSERT_TRUE(storage::WriteWholeFile(disk, (dir_ / "run.json").string(),
                                        R"({"next_iteration": 1, "context": "../elsewhere"})")
                    .ok());
    storage::Context restored;
    auto cp = LoadCheckpoint(dir_.string(), restored);
    ASSERT_FALSE(cp.ok());
    EXPECT_EQ(cp.status().code(), ErrorCode::kParse);
  }
  // The generation folder replaced by a symbolic link to another snapshot.
  const fs::path elsewhere = dir_.string() + "-elsewhere";
  fs::remove_all(elsewhere);
  fs::rename(dir_ / generation, elsewhere);
  fs::create_directory_symlink(elsewhere, dir_ / generation);
  {
    auto& disk = *storage::FileSystem::Default();
    ASSERT_TRUE(
        storage::WriteWholeFile(disk, (dir_ / "run.json").string(),
                                R"({"next_iteration": 1, "context": ")" + generation + R"("})")
            .ok());
    storage::Context restored;
    auto cp = LoadCheckpoint(dir_.string(), restored);
    ASSERT_FALSE(cp.ok());
    EXPECT_NE(cp.status().message().find("symbolic link"), std::string::npos)
        << cp.status().ToString();
    EXPECT_FALSE(restored.Contains("counter"));
  }
  fs::remove_all(elsewhere);
}

}  // namespace
}  // namespace discomfort::engine
