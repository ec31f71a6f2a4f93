// Spill / reload throughput of one large tensor. Disabled by default (it writes GiBs); run with
//   storage_tests --gtest_also_run_disabled_tests --gtest_filter='*Throughput*'
// DISCOMFORT_BENCH_GIB (default 1) sets the size, DISCOMFORT_BENCH_DEVICE (default cpu) the device,
// DISCOMFORT_BENCH_DIR (default /tmp) where the spill folder goes, DISCOMFORT_BENCH_REPEATS
// (default 2) the rounds. Each round times, beside the spill, a direct-I/O sequential write of the
// same size (as `dd oflag=direct bs=16M conv=fdatasync`: the disk's sustained write speed), and
// beside each reload from a cold page cache a cold sequential read() of the same spill file in
// 64 MiB pieces (as benchmarks/handoff does), each before or after the spill / reload in turn.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <ATen/Context.h>
#include <ATen/ops/arange.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "storage/context.h"
#include "test_util.h"

namespace discomfort::storage {
namespace {

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

// O_DIRECT sequential write of `bytes` in 16 MiB requests, then fdatasync; seconds. The file is
// removed after.
double DirectWrite(const std::string& path, uint64_t bytes) {
  constexpr size_t kRequest = size_t{16} << 20;
  void* buffer = std::aligned_alloc(4096, kRequest);
  std::memset(buffer, 0x5a, kRequest);
  auto start = std::chrono::steady_clock::now();
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT, 0644);
  EXPECT_GE(fd, 0) << path;
  for (uint64_t done = 0; done < bytes; done += kRequest) {
    EXPECT_EQ(::write(fd, buffer, kRequest), static_cast<ssize_t>(kRequest));
  }
  ::fdatasync(fd);
  ::close(fd);
  const double seconds = Seconds(start);
  ::unlink(path.c_str());
  std::free(buffer);
  return seconds;
}

// The fraction of the file's pages in the page cache.
double CachedFraction(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  const off_t size = ::lseek(fd, 0, SEEK_END);
  void* map = ::mmap(nullptr, static_cast<size_t>(size), PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return -1;
  std::vector<unsigned char> resident((static_cast<size_t>(size) + 4095) / 4096);
  ::mincore(map, static_cast<size_t>(size), resident.data());
  ::munmap(map, static_cast<size_t>(size));
  size_t cached = 0;
  for (unsigned char flags : resident) cached += flags & 1;
  return static_cast<double>(cached) / static_cast<double>(resident.size());
}

// Cold sequential read() of the whole file into one reused 64 MiB buffer; seconds.
double ColdRead(const std::string& path) {
  testing::DropCache(path);
  std::vector<char> buffer(size_t{64} << 20);
  auto start = std::chrono::steady_clock::now();
  int fd = ::open(path.c_str(), O_RDONLY);
  while (::read(fd, buffer.data(), buffer.size()) > 0) {
  }
  ::close(fd);
  return Seconds(start);
}

TEST(ThroughputTest, DISABLED_SpillAndReloadOfOneLargeTensor) {
  const char* gib_text = std::getenv("DISCOMFORT_BENCH_GIB");
  const char* device_text = std::getenv("DISCOMFORT_BENCH_DEVICE");
  const char* dir_text = std::getenv("DISCOMFORT_BENCH_DIR");
  const char* repeats_text = std::getenv("DISCOMFORT_BENCH_REPEATS");
  const double gib = gib_text != nullptr ? std::atof(gib_text) : 1.0;
  const int repeats = repeats_text != nullptr ? std::atoi(repeats_text) : 2;
  const std::string device_name = device_text != nullptr ? device_text : "cpu";
  if (device_name != "cpu" && !at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  const int64_t elements = static_cast<int64_t>(gib * (1 << 30)) / 4;
  at::Tensor tensor = at::arange(elements, at::kInt).to(at::Device(device_name));
  const double bytes = static_cast<double>(elements) * 4;
  std::vector<double> ratios[2];     // reload / cold read(), per mode
  std::vector<double> spill_ratios;  // spill / direct write

  for (int round = 0; round < repeats; ++round) {
    for (ReloadMode mode : {ReloadMode::kRead, ReloadMode::kMap}) {
      ContextOptions options;
      options.temp_root = dir_text != nullptr ? dir_text : "/tmp";
      options.reload = mode;
      Context context(options);
      ASSERT_TRUE(context.Put("big", Value::Tensor(tensor)).ok());
      const std::string probe = options.temp_root + "/discomfort-direct-write-probe";
      const bool probe_first = (round + (mode == ReloadMode::kMap ? 1 : 0)) % 2 == 0;
      double direct_write = probe_first ? DirectWrite(probe, static_cast<uint64_t>(bytes)) : 0;
      auto start = std::chrono::steady_clock::now();
      ASSERT_TRUE(context.Spill("big").ok());
      const double spill = Seconds(start);
      if (!probe_first) direct_write = DirectWrite(probe, static_cast<uint64_t>(bytes));
      spill_ratios.push_back(direct_write / spill);
      const std::string path = context.Info("big")->spill_path;
      const double cached_after_spill = CachedFraction(path);
      // The host of a VM may cache what the guest reads: the second read of the same blocks can
      // be faster. So the order alternates, and the file is linked to survive the reload.
      const std::string link = path + ".probe";
      ASSERT_EQ(::link(path.c_str(), link.c_str()), 0);
      const bool reload_first = round % 2 == 0;
      double cold_read = reload_first ? 0 : ColdRead(link);
      testing::DropCache(path);

      start = std::chrono::steady_clock::now();
      auto back = context.Get("big");
      ASSERT_TRUE(back.ok()) << back.status().ToString();
      const double get = Seconds(start);
      // One int per 4 KiB page: mapped pages fault in here (page cache or disk).
      at::Tensor host = back->tensor().cpu();
      const int32_t* data = host.const_data_ptr<int32_t>();
      int64_t checksum = 0;
      for (int64_t i = 0; i < elements; i += 1024) checksum += data[i];
      const double reload = Seconds(start);
      if (reload_first) cold_read = ColdRead(link);
      ::unlink(link.c_str());
      int64_t expected = 0;
      for (int64_t i = 0; i < elements; i += 1024) expected += i;
      EXPECT_EQ(checksum, expected);
      EXPECT_EQ(data[elements - 1], elements - 1);
      std::printf(
          "[throughput] %.2f GiB %s, reload=%s%s: spill %.2f GB/s = %.0f %% of a direct write "
          "(%.2f GB/s), %.1f %% of the file cached after it; cold read() of the file "
          "%.2f GB/s; Get %.3f s, Get + touch %.2f GB/s = %.0f %% of cold read()\n",
          gib, device_name.c_str(), mode == ReloadMode::kRead ? "read" : "map",
          reload_first ? " (first)" : "", bytes / spill / 1e9, 100 * direct_write / spill,
          bytes / direct_write / 1e9, 100 * cached_after_spill, bytes / cold_read / 1e9, get,
          bytes / reload / 1e9, 100 * cold_read / reload);
      std::fflush(stdout);
      ratios[mode == ReloadMode::kRead ? 0 : 1].push_back(cold_read / reload);
    }
  }
  std::sort(spill_ratios.begin(), spill_ratios.end());
  std::printf("[throughput] spill: median %.0f %% of a direct write over %zu spills\n",
              100 * spill_ratios[spill_ratios.size() / 2], spill_ratios.size());
  for (int mode = 0; mode < 2; ++mode) {
    std::vector<double>& r = ratios[mode];
    std::sort(r.begin(), r.end());
    std::printf("[throughput] reload=%s: median %.0f %% of cold read() over %zu rounds\n",
                mode == 0 ? "read" : "map", 100 * r[r.size() / 2], r.size());
  }
}

}  // namespace
}  // namespace discomfort::storage
