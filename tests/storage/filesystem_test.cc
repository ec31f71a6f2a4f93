#include "storage/filesystem.h"
#include "tests/support/fault_injecting_filesystem.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <gtest/gtest.h>

#include "test_util.h"

namespace discomfort::storage {
namespace {

using testing::ScratchDir;

TEST(PosixFileSystemTest, WritesReadsListsAndRemoves) {
  ScratchDir scratch;
  FileSystem& fs = *FileSystem::Default();
  ASSERT_TRUE(fs.CreateDir(scratch / "a/b").ok());
  auto file = fs.NewWritableFile(scratch / "a/b/f.bin");
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  ASSERT_TRUE((*file)->Append("hello ", 6).ok());
  ASSERT_TRUE((*file)->Append("world", 5).ok());
  ASSERT_TRUE((*file)->Sync().ok());
  ASSERT_TRUE((*file)->Close().ok());

  auto text = fs.ReadFile(scratch / "a/b/f.bin");
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "hello world");
  EXPECT_EQ(*fs.FileSize(scratch / "a/b/f.bin"), 11u);
  auto names = fs.ListDir(scratch / "a/b");
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, std::vector<std::string>{"f.bin"});

  auto mapped = fs.MapFile(scratch / "a/b/f.bin");
  ASSERT_TRUE(mapped.ok());
  EXPECT_EQ(std::string(reinterpret_cast<char*>((*mapped)->data()), (*mapped)->size()),
            "hello world");
  // The mapping is private: writing through it leaves the file alone.
  (*mapped)->data()[0] = 'J';
  EXPECT_EQ(*fs.ReadFile(scratch / "a/b/f.bin"), "hello world");

  ASSERT_TRUE(fs.RemoveFile(scratch / "a/b/f.bin").ok());
  EXPECT_FALSE(fs.Exists(scratch / "a/b/f.bin"));
  EXPECT_EQ(fs.RemoveFile(scratch / "a/b/f.bin").code(), ErrorCode::kNotFound);
  ASSERT_TRUE(fs.RemoveAll(scratch / "a").ok());
  EXPECT_FALSE(fs.Exists(scratch / "a"));
  EXPECT_TRUE(fs.RemoveAll(scratch / "a").ok());  // nothing there is fine
}

TEST(PosixFileSystemTest, ReplaceDirSwapsAnExistingDirectory) {
  ScratchDir scratch;
  FileSystem& fs = *FileSystem::Default();
  ASSERT_TRUE(fs.CreateDir(scratch / "old").ok());
  testing::WriteText(scratch / "old/marker", "old");
  ASSERT_TRUE(fs.CreateDir(scratch / "new").ok());
  testing::WriteText(scratch / "new/marker", "new");

  ASSERT_TRUE(fs.ReplaceDir(scratch / "new", scratch / "old").ok());
  EXPECT_EQ(testing::ReadText(scratch / "old/marker"), "new");
  EXPECT_FALSE(fs.Exists(scratch / "new"));
  EXPECT_EQ(testing::CountFiles(scratch.path()), 1u);  // the old copy is gone

  // Into a fresh name it is a plain rename.
  ASSERT_TRUE(fs.ReplaceDir(scratch / "old", scratch / "fresh").ok());
  EXPECT_EQ(testing::ReadText(scratch / "fresh/marker"), "new");
}

TEST(PosixFileSystemTest, ProcessAliveTellsLiveFromDead) {
  FileSystem& fs = *FileSystem::Default();
  EXPECT_TRUE(fs.ProcessAlive(::getpid()));
  EXPECT_FALSE(fs.ProcessAlive(testing::DeadPid()));
  EXPECT_FALSE(fs.ProcessAlive(0));
}

TEST(PosixFileSystemTest, MissingFilesAreNotFound) {
  FileSystem& fs = *FileSystem::Default();
  EXPECT_EQ(fs.ReadFile("/nonexistent/discomfort/x").status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(fs.MapFile("/nonexistent/discomfort/x").status().code(), ErrorCode::kNotFound);
}

TEST(ErrnoStatusTest, MapsDiskFullAndMissing) {
  EXPECT_EQ(ErrnoStatus("write", "/x", ENOSPC).code(), ErrorCode::kNoSpace);
  EXPECT_EQ(ErrnoStatus("write", "/x", EDQUOT).code(), ErrorCode::kNoSpace);
  EXPECT_EQ(ErrnoStatus("open", "/x", ENOENT).code(), ErrorCode::kNotFound);
  EXPECT_EQ(ErrnoStatus("write", "/x", EIO).code(), ErrorCode::kIO);
  EXPECT_NE(ErrnoStatus("write", "/x", ENOSPC).message().find("/x"), std::string::npos);
}

TEST(FaultInjectingFileSystemTest, FullDiskWritesWhatFitsThenFails) {
  ScratchDir scratch;
  FaultInjectingFileSystem fs;
  fs.SetFreeSpace(10);
  auto file = fs.NewWritableFile(scratch / "f");
  ASSERT_TRUE(file.ok());
  EXPECT_TRUE((*file)->Append("0123456", 7).ok());
  Status full = (*file)->Append("789abcdef", 9);
  EXPECT_EQ(full.code(), ErrorCode::kNoSpace);
  EXPECT_EQ((*file)->Append("x", 1).code(), ErrorCode::kNoSpace);  // still full
  ASSERT_TRUE((*file)->Close().ok());
  EXPECT_EQ(testing::ReadText(scratch / "f"), "0123456789");
  EXPECT_EQ(fs.bytes_written(), 10u);
  EXPECT_EQ(fs.faults_injected(), 2u);

  fs.ClearFaults();
  auto again = fs.NewWritableFile(scratch / "g");
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE((*again)->Append("plenty of room", 14).ok());
}

TEST(FaultInjectingFileSystemTest, WriteErrorAfterNAppends) {
  ScratchDir scratch;
  FaultInjectingFileSystem fs;
  fs.FailWritesAfter(2);
  auto file = fs.NewWritableFile(scratch / "f");
  ASSERT_TRUE(file.ok());
  EXPECT_TRUE((*file)->Append("a", 1).ok());
  EXPECT_TRUE((*file)->Append("b", 1).ok());
  EXPECT_EQ((*file)->Append("c", 1).code(), ErrorCode::kIO);
}

TEST(FaultInjectingFileSystemTest, RenameAndSyncFailures) {
  ScratchDir scratch;
  FaultInjectingFileSystem fs;
  testing::WriteText(scratch / "a", "a");
  fs.SetRenameFails(true);
  EXPECT_EQ(fs.Rename(scratch / "a", scratch / "b").code(), ErrorCode::kIO);
  EXPECT_TRUE(fs.Exists(scratch / "a"));
  fs.SetSyncFails(true);
  auto file = fs.NewWritableFile(scratch / "c");
  ASSERT_TRUE(file.ok());
  EXPECT_EQ((*file)->Sync().code(), ErrorCode::kIO);
  fs.ClearFaults();
  EXPECT_TRUE(fs.Rename(scratch / "a", scratch / "b").ok());
}

}  // namespace
}  // namespace discomfort::storage
