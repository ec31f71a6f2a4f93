// Spill / reload throughput of one large tensor. Disabled by default (it writes GiBs); run with
//   storage_tests --gtest_also_run_disabled_tests --gtest_filter='*Throughput*'
// DISCOMFORT_BENCH_GIB (default 1) sets the size, DISCOMFORT_BENCH_DEVICE (default cpu) the device,
// DISCOMFORT_BENCH_DIR (default /tmp) where the spill folder goes.
#include <ATen/Context.h>
#include <ATen/ops/arange.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include <gtest/gtest.h>

#include "storage/context.h"
#include "test_util.h"

namespace discomfort::storage {
namespace {

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

TEST(ThroughputTest, DISABLED_SpillAndReloadOfOneLargeTensor) {
  const char* gib_text = std::getenv("DISCOMFORT_BENCH_GIB");
  const char* device_text = std::getenv("DISCOMFORT_BENCH_DEVICE");
  const char* dir_text = std::getenv("DISCOMFORT_BENCH_DIR");
  const double gib = gib_text != nullptr ? std::atof(gib_text) : 1.0;
  const std::string device_name = device_text != nullptr ? device_text : "cpu";
  if (device_name != "cpu" && !at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  const int64_t elements = static_cast<int64_t>(gib * (1 << 30)) / 4;
  at::Tensor tensor = at::arange(elements, at::kInt).to(at::Device(device_name));
  const double bytes = static_cast<double>(elements) * 4;

  for (bool sync : {true, false, true, false}) {
    ContextOptions options;
    options.temp_root = dir_text != nullptr ? dir_text : "/tmp";
    options.sync_spill_files = sync;
    Context context(options);
    ASSERT_TRUE(context.Put("big", Value::Tensor(tensor)).ok());
    auto start = std::chrono::steady_clock::now();
    ASSERT_TRUE(context.Spill("big").ok());
    const double spill = Seconds(start);

    start = std::chrono::steady_clock::now();
    auto back = context.Get("big");
    ASSERT_TRUE(back.ok());
    const double get = Seconds(start);
    start = std::chrono::steady_clock::now();
    // Read one int per 4 KiB page: CPU pages fault in from the mapping (page cache or disk).
    at::Tensor host = back->tensor().cpu();
    const int32_t* data = host.const_data_ptr<int32_t>();
    int64_t checksum = 0;
    for (int64_t i = 0; i < elements; i += 1024) checksum += data[i];
    const double touch = Seconds(start);
    int64_t expected = 0;
    for (int64_t i = 0; i < elements; i += 1024) expected += i;
    EXPECT_EQ(checksum, expected);
    EXPECT_EQ(data[elements - 1], elements - 1);
    std::printf(
        "[throughput] %.2f GiB %s spill%s: %.2f s = %.2f GB/s; Get: %.4f s; "
        "first full read after Get: %.2f s = %.2f GB/s\n",
        gib, device_name.c_str(), sync ? " +fsync" : "", spill, bytes / spill / 1e9, get, touch,
        bytes / touch / 1e9);
  }
}

}  // namespace
}  // namespace discomfort::storage
