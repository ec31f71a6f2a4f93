// Spill / reload throughput of one large tensor. Disabled by default (it writes GiBs); run with
//   storage_tests --gtest_also_run_disabled_tests --gtest_filter='*Throughput*'
// DISCOMFORT_BENCH_GIB (default 1) sets the size, DISCOMFORT_BENCH_DEVICE (default cpu) the device,
// DISCOMFORT_BENCH_DIR (default /tmp) where the spill folder goes, DISCOMFORT_BENCH_REPEATS
// (default 2) the rounds. Each round, beside each reload from a cold page cache, times a cold
// sequential read() of the same spill file in 64 MiB pieces (as benchmarks/handoff does), before
// or after the reload in turn.
#include <fcntl.h>
#include <unistd.h>

#include <ATen/Context.h>
#include <ATen/ops/arange.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <gtest/gtest.h>

#include "storage/context.h"
#include "test_util.h"

namespace discomfort::storage {
namespace {

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
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
  std::vector<double> ratios[2];  // reload / cold read(), per mode

  for (int round = 0; round < repeats; ++round) {
    for (ReloadMode mode : {ReloadMode::kRead, ReloadMode::kMap}) {
      ContextOptions options;
      options.temp_root = dir_text != nullptr ? dir_text : "/tmp";
      options.reload = mode;
      Context context(options);
      ASSERT_TRUE(context.Put("big", Value::Tensor(tensor)).ok());
      auto start = std::chrono::steady_clock::now();
      ASSERT_TRUE(context.Spill("big").ok());
      const double spill = Seconds(start);
      const std::string path = context.Info("big")->spill_path;
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
          "[throughput] %.2f GiB %s, reload=%s%s: spill %.2f GB/s; cold read() of the file "
          "%.2f GB/s; Get %.3f s, Get + touch %.2f GB/s = %.0f %% of cold read()\n",
          gib, device_name.c_str(), mode == ReloadMode::kRead ? "read" : "map",
          reload_first ? " (first)" : "", bytes / spill / 1e9, bytes / cold_read / 1e9, get,
          bytes / reload / 1e9, 100 * cold_read / reload);
      std::fflush(stdout);
      ratios[mode == ReloadMode::kRead ? 0 : 1].push_back(cold_read / reload);
    }
  }
  for (int mode = 0; mode < 2; ++mode) {
    std::vector<double>& r = ratios[mode];
    std::sort(r.begin(), r.end());
    std::printf("[throughput] reload=%s: median %.0f %% of cold read() over %zu rounds\n",
                mode == 0 ? "read" : "map", 100 * r[r.size() / 2], r.size());
  }
}

}  // namespace
}  // namespace discomfort::storage
