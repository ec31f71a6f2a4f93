// Reloading spilled tensors by reading the file in full (ReloadMode::kRead): exact bytes in fresh
// memory, short reads, parallel chunks, and read failures that leave the value spilled.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <ATen/ops/arange.h>
#include <ATen/ops/randint.h>

#include <cstring>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "storage/context.h"
#include "storage/safetensors.h"
#include "test_util.h"
#include "tests/support/fault_injecting_filesystem.h"

namespace discomfort::storage {
namespace {

using testing::SameBytes;
using testing::ScratchDir;

bool OnDisk(const Context& context, const std::string& key) {
  auto info = context.Info(key);
  return info.ok() && info->on_disk;
}

// A float tensor whose size is not a multiple of any block or chunk size.
at::Tensor Odd(int64_t elements = 300'007) { return at::arange(elements, at::kFloat).mul_(0.5); }

ContextOptions ReadOptions(const ScratchDir& scratch, FileSystem* fs = nullptr) {
  ContextOptions options = testing::BudgetOptions(0, scratch.path());  // spill everything
  options.reload = ReloadMode::kRead;
  options.reload_chunk_bytes = 64 * 1024;  // many chunks for a small tensor
  options.fs = fs;
  return options;
}

TEST(ReloadTest, ReadModeGivesExactBytesInFreshMemoryAndFreesTheFile) {
  ScratchDir scratch;
  Context context(ReadOptions(scratch));
  at::Tensor original = Odd();
  ASSERT_TRUE(context.Put("x", Value::Tensor(original)).ok());
  ASSERT_TRUE(OnDisk(context, "x"));
  const std::string path = context.Info("x")->spill_path;
  testing::DropCache(path);  // the direct-I/O path

  auto back = context.Get("x");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(SameBytes(original, back->tensor()));
  EXPECT_NE(back->tensor().const_data_ptr(), original.const_data_ptr());
  // Anonymous memory, not a view of the (now removed) file: its disk space is free already.
  EXPECT_EQ(testing::MappingOf(back->tensor().const_data_ptr()).find(path), std::string::npos);
  EXPECT_FALSE(testing::Exists(path));
  EXPECT_EQ(context.GetUsage().disk_bytes, 0u);
  EXPECT_EQ(context.GetUsage().reloads, 1u);
  EXPECT_TRUE(context.CheckConsistency().ok());
  back->tensor().add_(1);  // writable
  EXPECT_EQ(back->tensor()[1].item<float>(), 1.5f);
}

TEST(ReloadTest, ReadModeKeepsDtypeShapeAndGrad) {
  ScratchDir scratch;
  Context context(ReadOptions(scratch));
  at::Tensor ints = at::randint(-1000, 1000, {3, 5, 7}, at::kLong);
  at::Tensor half = Odd(4099).to(at::kHalf).view({1, 4099});
  at::Tensor grad = Odd(10).requires_grad_(true);
  ASSERT_TRUE(context.Put("ints", Value::Tensor(ints)).ok());
  ASSERT_TRUE(context.Put("half", Value::Tensor(half)).ok());
  ASSERT_TRUE(context.Put("grad", Value::Tensor(grad)).ok());
  EXPECT_TRUE(SameBytes(ints, context.Get("ints")->tensor()));
  EXPECT_TRUE(SameBytes(half, context.Get("half")->tensor()));
  at::Tensor grad_back = context.Get("grad")->tensor();
  EXPECT_TRUE(SameBytes(grad.detach(), grad_back.detach()));
  EXPECT_TRUE(grad_back.requires_grad());
}

TEST(ReloadTest, ShortReadsAreContinued) {
  ScratchDir scratch;
  FaultInjectingFileSystem fs;
  Context context(ReadOptions(scratch, &fs));
  at::Tensor original = Odd();
  ASSERT_TRUE(context.Put("x", Value::Tensor(original)).ok());
  fs.SetMaxReadBytes(10'000);  // not a multiple of the block size either
  const uint64_t before = fs.reads();
  auto back = context.Get("x");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(SameBytes(original, back->tensor()));
  // ~1.2 MB in reads of at most 10 000 bytes.
  EXPECT_GE(fs.reads() - before, static_cast<uint64_t>(original.numel() * 4 / 10'000));
}

TEST(ReloadTest, ParallelChunkedReadMatchesTheMappedFile) {
  ScratchDir scratch;
  const std::string path = scratch / "t.safetensors";
  at::Tensor a = Odd(1'000'003);
  at::Tensor b = at::randint(0, 255, {77, 1001}, at::kByte);
  ASSERT_TRUE(WriteSafetensors(*FileSystem::Default(), path, {{"a", a}, {"b", b}}).ok());
  testing::DropCache(path);
  for (int threads : {1, 3, 8}) {
    SafetensorsReadOptions read;
    read.load = SafetensorsLoad::kRead;
    read.threads = threads;
    read.chunk_bytes = 40'000;  // rounded up to whole blocks: 40 960
    auto contents = ReadSafetensors(*FileSystem::Default(), path, read);
    ASSERT_TRUE(contents.ok()) << contents.status().ToString();
    ASSERT_EQ(contents->tensors.size(), 2u);
    EXPECT_EQ(contents->tensors[0].first, "a");
    EXPECT_TRUE(SameBytes(a, contents->tensors[0].second)) << threads;
    EXPECT_TRUE(SameBytes(b, contents->tensors[1].second)) << threads;
    EXPECT_EQ(contents->file_bytes, SafetensorsFileBytes({{"a", a}, {"b", b}}));
  }
}

TEST(ReloadTest, DirectReadBypassesThePageCache) {
  ScratchDir scratch;
  const std::string path = scratch / "cold.bin";
  std::string bytes(3 * 1024 * 1024 + 123, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7 + i / 4096);
  testing::WriteText(path, bytes);
  testing::DropCache(path);
  ReadOpenOptions open_options;
  open_options.direct_io = true;
  auto file = FileSystem::Default()->OpenForRead(path, open_options);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  ASSERT_EQ((*file)->size(), bytes.size());
  const size_t capacity = 4 * 1024 * 1024;
  void* buffer =
      ::mmap(nullptr, capacity, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(buffer, MAP_FAILED);
  size_t done = 0;
  while (done < bytes.size()) {
    auto n = (*file)->Read(done, capacity - done, static_cast<char*>(buffer) + done);
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    ASSERT_GT(*n, 0u);
    done += *n;
  }
  EXPECT_EQ(done, bytes.size());
  EXPECT_EQ(std::memcmp(buffer, bytes.data(), bytes.size()), 0);
  ::munmap(buffer, capacity);

  // O_DIRECT left the file uncached (on file systems that have it; tmpfs is always cached).
  int fd = ::open(path.c_str(), O_RDONLY);
  void* map = ::mmap(nullptr, bytes.size(), PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  ASSERT_NE(map, MAP_FAILED);
  const size_t pages = (bytes.size() + 4095) / 4096;
  std::vector<unsigned char> resident(pages);
  ASSERT_EQ(::mincore(map, bytes.size(), resident.data()), 0);
  ::munmap(map, bytes.size());
  size_t cached = 0;
  for (unsigned char flags : resident) cached += flags & 1;
  const int direct_fd = ::open(path.c_str(), O_RDONLY | O_DIRECT);
  if (direct_fd < 0) GTEST_SKIP() << "no O_DIRECT on this file system";
  ::close(direct_fd);
  EXPECT_LT(cached, pages / 4) << cached << " of " << pages << " pages cached";
}

TEST(ReloadTest, ReadErrorNamesKeyAndFileAndKeepsTheValueSpilled) {
  ScratchDir scratch;
  FaultInjectingFileSystem fs;
  Context context(ReadOptions(scratch, &fs));
  at::Tensor original = Odd();
  ASSERT_TRUE(context.Put("latent", Value::Tensor(original)).ok());
  const std::string path = context.Info("latent")->spill_path;
  fs.FailReadsAfter(3);  // EIO in the middle of the chunks
  auto failed = context.Get("latent");
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), ErrorCode::kIO);
  EXPECT_NE(failed.status().message().find("'latent'"), std::string::npos)
      << failed.status().message();
  EXPECT_NE(failed.status().message().find(path), std::string::npos);
  EXPECT_NE(failed.status().message().find("Input/output error"), std::string::npos);
  EXPECT_EQ(failed.status().where().port, "latent");
  EXPECT_TRUE(OnDisk(context, "latent"));
  EXPECT_TRUE(testing::Exists(path));
  EXPECT_EQ(context.GetUsage().reloads, 0u);
  EXPECT_TRUE(context.CheckConsistency().ok());
  EXPECT_FALSE(context.Pin("latent").ok());  // pins fail the same way

  fs.ClearFaults();  // the disk recovers: the value was never lost
  auto back = context.Get("latent");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(SameBytes(original, back->tensor()));
  EXPECT_TRUE(context.CheckConsistency().ok());
}

TEST(ReloadTest, FileTruncatedWhileReadIsAShortReadError) {
  ScratchDir scratch;
  FaultInjectingFileSystem fs;
  Context context(ReadOptions(scratch, &fs));
  ASSERT_TRUE(context.Put("x", Value::Tensor(Odd())).ok());
  const std::string path = context.Info("x")->spill_path;
  fs.SetReadableBytes(500'000);
  auto failed = context.Get("x");
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), ErrorCode::kIO);
  const std::string& message = failed.status().message();
  EXPECT_NE(message.find("'x'"), std::string::npos) << message;
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("short read"), std::string::npos) << message;
  EXPECT_TRUE(OnDisk(context, "x"));
  EXPECT_TRUE(context.CheckConsistency().ok());
}

TEST(ReloadTest, FileTruncatedBeforeReadIsMalformed) {
  ScratchDir scratch;
  Context context(ReadOptions(scratch));
  ASSERT_TRUE(context.Put("x", Value::Tensor(Odd())).ok());
  const std::string path = context.Info("x")->spill_path;
  ASSERT_EQ(::truncate(path.c_str(), 500'000), 0);
  auto failed = context.Get("x");
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), ErrorCode::kParse);  // the header promises more bytes
  EXPECT_NE(failed.status().message().find("'x'"), std::string::npos);
  EXPECT_NE(failed.status().message().find(path), std::string::npos);
  EXPECT_TRUE(OnDisk(context, "x"));
}

TEST(ReloadTest, VanishedSpillFileIsAnIOErrorNamingIt) {
  ScratchDir scratch;
  Context context(ReadOptions(scratch));
  ASSERT_TRUE(context.Put("x", Value::Tensor(Odd())).ok());
  const std::string path = context.Info("x")->spill_path;
  ASSERT_EQ(::unlink(path.c_str()), 0);
  auto failed = context.Get("x");
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), ErrorCode::kIO);  // the key exists; its data is gone
  EXPECT_NE(failed.status().message().find("'x'"), std::string::npos);
  EXPECT_NE(failed.status().message().find(path), std::string::npos);
  EXPECT_TRUE(context.Contains("x"));
  ASSERT_TRUE(context.Erase("x").ok());  // and it can still be dropped cleanly
  EXPECT_TRUE(context.CheckConsistency().ok());
}

TEST(ReloadTest, ConcurrentGetsOfOneSpilledTensorReloadItOnce) {
  ScratchDir scratch;
  ContextOptions options = ReadOptions(scratch);
  options.max_ram_gb.reset();  // spill only when asked, so the reload stays in memory
  Context context(options);
  at::Tensor original = Odd(2'000'000);
  for (int round = 0; round < 5; ++round) {
    ASSERT_TRUE(context.Put("x", Value::Tensor(original)).ok());
    ASSERT_TRUE(context.Spill("x").ok());
    std::vector<at::Tensor> seen(6);
    std::vector<std::thread> threads;
    for (size_t i = 0; i < seen.size(); ++i) {
      threads.emplace_back([&, i] {
        if (i % 2 == 0) {
          auto value = context.Get("x");
          if (value.ok()) seen[i] = value->tensor();
        } else {
          auto pinned = context.Pin("x");
          if (pinned.ok()) seen[i] = pinned->tensor();
        }
      });
    }
    for (auto& thread : threads) thread.join();
    for (const at::Tensor& tensor : seen) {
      ASSERT_TRUE(tensor.defined());
      EXPECT_TRUE(SameBytes(original, tensor));
      // All share the one committed copy (losers of the race drop theirs).
      EXPECT_EQ(tensor.const_data_ptr(), seen[0].const_data_ptr());
    }
    EXPECT_FALSE(OnDisk(context, "x"));
    EXPECT_TRUE(context.CheckConsistency().ok());
  }
  EXPECT_EQ(context.GetUsage().reloads, 5u);
}

TEST(ReloadTest, ModeIsSelectableByEnvironment) {
  for (const char* mode : {"map", "read"}) {
    ScratchDir scratch;
    ContextOptions options = ReadOptions(scratch);
    options.reload = std::string(mode) == "map" ? ReloadMode::kRead : ReloadMode::kMap;
    ::setenv("DISCOMFORT_RELOAD", mode, 1);
    Context context(options);  // asks for the other mode; the environment wins
    ::unsetenv("DISCOMFORT_RELOAD");
    ASSERT_TRUE(context.Put("x", Value::Tensor(Odd())).ok());
    const std::string path = context.Info("x")->spill_path;
    auto back = context.Get("x");
    ASSERT_TRUE(back.ok());
    EXPECT_TRUE(SameBytes(Odd(), back->tensor()));
    const bool mapped =
        testing::MappingOf(back->tensor().const_data_ptr()).find(path) != std::string::npos;
    EXPECT_EQ(mapped, std::string(mode) == "map") << mode;
  }
}

TEST(ReloadTest, DefaultModeMapsTheFile) {
  ScratchDir scratch;
  if (const char* env = std::getenv("DISCOMFORT_RELOAD"); env != nullptr && *env != '\0') {
    GTEST_SKIP() << "DISCOMFORT_RELOAD is set";
  }
  Context context(testing::BudgetOptions(0, scratch.path()));
  EXPECT_TRUE(context.Put("x", Value::Tensor(Odd())).ok());
  const std::string path = context.Info("x")->spill_path;
  auto back = context.Get("x");
  ASSERT_TRUE(back.ok());
  EXPECT_NE(testing::MappingOf(back->tensor().const_data_ptr()).find(path), std::string::npos);
}

}  // namespace
}  // namespace discomfort::storage
