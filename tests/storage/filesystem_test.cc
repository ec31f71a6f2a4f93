#include "storage/filesystem.h"
#include "storage/posix_writable_file.h"
#include "tests/support/fault_injecting_filesystem.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <memory>

#include <gtest/gtest.h>

#include "test_util.h"

namespace discomfort::storage {
namespace {

using testing::ScratchDir;

constexpr size_t kMiB = size_t{1} << 20;

// Bytes that differ from position to position (and between seeds), so a misplaced block shows.
std::string Pattern(size_t size, uint32_t seed) {
  std::string bytes(size, '\0');
  uint32_t state = seed * 2654435761u + 1;
  for (char& byte : bytes) {
    state = state * 1664525u + 1013904223u;
    byte = static_cast<char>(state >> 24);
  }
  return bytes;
}

// Page-aligned memory holding `bytes`: what pinned staging buffers look like to the writer.
std::shared_ptr<char> AlignedCopy(const std::string& bytes) {
  // aligned_alloc wants a size that is a multiple of the alignment.
  const size_t size =
      (bytes.size() + kDirectIOAlignment - 1) / kDirectIOAlignment * kDirectIOAlignment;
  void* memory = std::aligned_alloc(kDirectIOAlignment, std::max(size, kDirectIOAlignment));
  std::memcpy(memory, bytes.data(), bytes.size());
  return std::shared_ptr<char>(static_cast<char*>(memory), std::free);
}

// The fraction of the file's pages in the page cache.
double CachedFraction(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  EXPECT_GE(fd, 0) << path;
  const off_t size = ::lseek(fd, 0, SEEK_END);
  void* map = ::mmap(nullptr, static_cast<size_t>(size), PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  EXPECT_NE(map, MAP_FAILED);
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> resident((static_cast<size_t>(size) + page - 1) / page);
  EXPECT_EQ(::mincore(map, static_cast<size_t>(size), resident.data()), 0);
  ::munmap(map, static_cast<size_t>(size));
  size_t cached = 0;
  for (unsigned char flags : resident) cached += flags & 1;
  return static_cast<double>(cached) / static_cast<double>(resident.size());
}

WriteOpenOptions Direct(uint64_t size_hint = 0) {
  WriteOpenOptions options;
  options.direct_io = true;
  options.size_hint = size_hint;
  return options;
}

// Appends `expected` in pieces that exercise every path of the direct writer: aligned memory at an
// aligned offset (written without a copy), small unaligned pieces, pieces spanning several
// buffers, and the unaligned tail.
Status AppendInAwkwardPieces(WritableFile& file, const std::string& expected) {
  const size_t cuts[] = {3 * kDirectIOAlignment, 3 * kDirectIOAlignment + 100,
                         4 * kDirectIOAlignment, 4 * kDirectIOAlignment + 20 * kMiB,
                         expected.size()};
  std::shared_ptr<char> aligned = AlignedCopy(expected);
  size_t at = 0;
  for (size_t cut : cuts) {
    cut = std::min(cut, expected.size());
    // Aligned source where the piece starts on an aligned offset; a misaligned one otherwise.
    const char* source = at % kDirectIOAlignment == 0 && cut - at >= kDirectIOAlignment
                             ? aligned.get() + at
                             : expected.data() + at;
    DISCOMFORT_RETURN_IF_ERROR(file.Append(source, cut - at));
    at = cut;
  }
  return Status::Ok();
}

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

TEST(DirectWriteTest, KeepsEveryByteWhateverTheAlignmentAndSizeHint) {
  ScratchDir scratch;
  const std::string expected = Pattern(41 * kMiB + 4321, 1);
  // No hint, the exact size, a reservation too large (cut back) and one too small (outgrown).
  for (uint64_t hint :
       {uint64_t{0}, uint64_t{expected.size()}, uint64_t{64 * kMiB}, uint64_t{kMiB}}) {
    SCOPED_TRACE(hint);
    const std::string path = scratch / ("f" + std::to_string(hint));
    auto file = FileSystem::Default()->OpenForWrite(path, Direct(hint));
    ASSERT_TRUE(file.ok()) << file.status().ToString();
    ASSERT_TRUE(AppendInAwkwardPieces(**file, expected).ok());
    ASSERT_TRUE((*file)->Close().ok());
    EXPECT_EQ(*FileSystem::Default()->FileSize(path), expected.size());
    EXPECT_TRUE(testing::ReadText(path) == expected);
  }
}

TEST(DirectWriteTest, SyncMidwayLeavesAWholeFileAndWritingGoesOn) {
  ScratchDir scratch;
  const std::string expected = Pattern(3 * kMiB + 77, 2);
  auto file = FileSystem::Default()->OpenForWrite(scratch / "f", Direct(expected.size()));
  ASSERT_TRUE(file.ok());
  ASSERT_TRUE((*file)->Append(expected.data(), 5000).ok());
  ASSERT_TRUE((*file)->Sync().ok());
  EXPECT_TRUE(testing::ReadText(scratch / "f") == expected.substr(0, 5000));  // padding cut off
  ASSERT_TRUE((*file)->Append(expected.data() + 5000, expected.size() - 5000).ok());
  ASSERT_TRUE((*file)->Sync().ok());
  ASSERT_TRUE((*file)->Close().ok());
  EXPECT_TRUE(testing::ReadText(scratch / "f") == expected);
}

TEST(DirectWriteTest, LeavesNothingInThePageCache) {
  ScratchDir scratch;
  const std::string bytes = Pattern(48 * kMiB + 5, 3);
  auto direct = FileSystem::Default()->OpenForWrite(scratch / "direct", Direct(bytes.size()));
  ASSERT_TRUE(direct.ok());
  ASSERT_TRUE((*direct)->Append(bytes.data(), bytes.size()).ok());
  ASSERT_TRUE((*direct)->Close().ok());
  EXPECT_LT(CachedFraction(scratch / "direct"), 0.05);
  // The measure itself: a plain write of the same bytes stays cached.
  ASSERT_TRUE(WriteWholeFile(*FileSystem::Default(), scratch / "plain", bytes, false).ok());
  EXPECT_GT(CachedFraction(scratch / "plain"), 0.5);
}

// A file system that refuses O_DIRECT when the file is opened (tmpfs before Linux 6.6, some
// network file systems): written behind through the page cache, nothing left cached.
TEST(DirectWriteTest, RefusedOpenFallsBackToWriteBehind) {
  ScratchDir scratch;
  PosixWriteCalls calls = PosixWriteCalls::System();
  std::atomic<int> refused{0};
  calls.open = [&refused](const char* path, int flags) {
    if ((flags & O_DIRECT) != 0) {
      ++refused;
      errno = EINVAL;
      return -1;
    }
    return ::open(path, flags, 0644);
  };
  const std::string expected = Pattern(37 * kMiB + 3, 4);
  auto file = OpenPosixWritableFile(scratch / "f", O_TRUNC, Direct(expected.size()), calls);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ(refused, 1);
  ASSERT_TRUE(AppendInAwkwardPieces(**file, expected).ok());
  ASSERT_TRUE((*file)->Close().ok());
  // Measured before reading it back: the read caches it.
  EXPECT_LT(CachedFraction(scratch / "f"), 0.05);
  EXPECT_TRUE(testing::ReadText(scratch / "f") == expected);
}

// O_DIRECT accepted at open but refused by the writes (a device with larger blocks): the file
// turns into a write-behind one where it stands, nothing lost or cached.
TEST(DirectWriteTest, RefusedWritesMidwaySwitchToWriteBehind) {
  ScratchDir scratch;
  PosixWriteCalls calls = PosixWriteCalls::System();
  std::atomic<int> refused{0};
  calls.pwrite = [&refused](int fd, const void* data, size_t size, off_t offset) -> ssize_t {
    if ((::fcntl(fd, F_GETFL) & O_DIRECT) != 0 && offset >= static_cast<off_t>(20 * kMiB)) {
      ++refused;
      errno = EINVAL;
      return -1;
    }
    return ::pwrite(fd, data, size, offset);
  };
  const std::string expected = Pattern(45 * kMiB + 999, 5);
  auto file = OpenPosixWritableFile(scratch / "f", O_TRUNC, Direct(expected.size()), calls);
  ASSERT_TRUE(file.ok());
  ASSERT_TRUE(AppendInAwkwardPieces(**file, expected).ok());
  ASSERT_TRUE((*file)->Close().ok());
  EXPECT_GE(refused, 1);
  // Measured before reading it back: the read caches it.
  EXPECT_LT(CachedFraction(scratch / "f"), 0.05);
  EXPECT_TRUE(testing::ReadText(scratch / "f") == expected);
}

TEST(DirectWriteTest, WorksOnTmpfs) {
  struct statfs info;
  if (::statfs("/dev/shm", &info) != 0 || info.f_type != 0x01021994 /* TMPFS_MAGIC */) {
    GTEST_SKIP() << "/dev/shm is not a tmpfs here";
  }
  char name[] = "/dev/shm/discomfort-direct-XXXXXX";
  ASSERT_NE(::mkdtemp(name), nullptr);
  const std::string dir = name;
  const std::string expected = Pattern(9 * kMiB + 1, 6);
  auto file = FileSystem::Default()->OpenForWrite(dir + "/f", Direct(expected.size()));
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  ASSERT_TRUE(AppendInAwkwardPieces(**file, expected).ok());
  ASSERT_TRUE((*file)->Sync().ok());
  ASSERT_TRUE((*file)->Close().ok());
  EXPECT_TRUE(testing::ReadText(dir + "/f") == expected);
  ASSERT_TRUE(FileSystem::Default()->RemoveAll(dir).ok());
}

// ENOSPC from the write itself (no room was reserved: the file system cannot), after part of the
// data went in: kNoSpace from Append or Close, whichever sees it first.
TEST(DirectWriteTest, FullDiskDuringTheWritesIsNoSpace) {
  ScratchDir scratch;
  PosixWriteCalls calls = PosixWriteCalls::System();
  std::atomic<int64_t> free_bytes{int64_t{30 * kMiB}};
  calls.fallocate = [](int, off_t) {
    errno = EOPNOTSUPP;
    return -1;
  };
  calls.pwrite = [&free_bytes](int fd, const void* data, size_t size, off_t offset) -> ssize_t {
    const int64_t room = free_bytes.fetch_sub(static_cast<int64_t>(size));
    if (room <= 0) {
      errno = ENOSPC;
      return -1;
    }
    // What fits, rounded down to whole blocks as a direct write would be.
    size = std::min<size_t>(size, static_cast<size_t>(room) / 4096 * 4096);
    if (size == 0) {
      errno = ENOSPC;
      return -1;
    }
    return ::pwrite(fd, data, size, offset);
  };
  auto file = OpenPosixWritableFile(scratch / "f", O_TRUNC, Direct(64 * kMiB), calls);
  ASSERT_TRUE(file.ok());
  const std::string piece = Pattern(4 * kMiB + 1, 7);
  Status status;
  for (int i = 0; i < 16 && status.ok(); ++i) status = (*file)->Append(piece.data(), piece.size());
  if (status.ok()) status = (*file)->Close();
  EXPECT_EQ(status.code(), ErrorCode::kNoSpace) << status.ToString();
  EXPECT_EQ((*file)->Append("x", 1).code(), ErrorCode::kNoSpace);  // still full
}

TEST(DirectWriteTest, ReservationOnAFullDiskFailsTheOpenAndLeavesNoFile) {
  ScratchDir scratch;
  PosixWriteCalls calls = PosixWriteCalls::System();
  calls.fallocate = [](int, off_t) {
    errno = ENOSPC;
    return -1;
  };
  auto file = OpenPosixWritableFile(scratch / "f", O_TRUNC, Direct(8 * kMiB), calls);
  EXPECT_EQ(file.status().code(), ErrorCode::kNoSpace) << file.status().ToString();
  EXPECT_FALSE(testing::Exists(scratch / "f"));
  // A file system without fallocate just goes on without the reservation.
  calls.fallocate = [](int, off_t) {
    errno = EOPNOTSUPP;
    return -1;
  };
  auto unreserved = OpenPosixWritableFile(scratch / "g", O_TRUNC, Direct(8 * kMiB), calls);
  ASSERT_TRUE(unreserved.ok());
  ASSERT_TRUE((*unreserved)->Append("abc", 3).ok());
  ASSERT_TRUE((*unreserved)->Close().ok());
  EXPECT_EQ(testing::ReadText(scratch / "g"), "abc");
}

TEST(DirectWriteTest, FaultInjectionAppliesToDirectFiles) {
  ScratchDir scratch;
  FaultInjectingFileSystem fs;
  fs.SetFreeSpace(10);
  auto file = fs.OpenForWrite(scratch / "f", Direct());
  ASSERT_TRUE(file.ok());
  EXPECT_TRUE((*file)->Append("0123456", 7).ok());
  EXPECT_EQ((*file)->Append("789abcdef", 9).code(), ErrorCode::kNoSpace);
  ASSERT_TRUE((*file)->Close().ok());
  EXPECT_EQ(testing::ReadText(scratch / "f"), "0123456789");  // what fit, as with NewWritableFile
}

}  // namespace
}  // namespace discomfort::storage
