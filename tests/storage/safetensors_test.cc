#include "storage/safetensors.h"
#include "tests/support/fault_injecting_filesystem.h"

#include <ATen/ops/arange.h>
#include <ATen/ops/zeros.h>

#include <cstring>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace discomfort::storage {
namespace {

using testing::SameBytes;
using testing::ScratchDir;

at::Tensor Arange(int64_t n, c10::ScalarType dtype) {
  return at::arange(n, at::TensorOptions().dtype(at::kLong)).to(dtype);
}

TEST(SafetensorsTest, HeaderIsLengthPrefixedJsonWithAlignedData) {
  ScratchDir scratch;
  at::Tensor tensor = Arange(12, at::kBFloat16).view({3, 4});
  ASSERT_TRUE(WriteSafetensors(*FileSystem::Default(), scratch / "t.safetensors", {{"x", tensor}},
                               {.metadata = {{"who", "test"}}})
                  .ok());
  const std::string bytes = testing::ReadText(scratch / "t.safetensors");
  ASSERT_GE(bytes.size(), 8u);
  uint64_t header_length = 0;
  for (int i = 7; i >= 0; --i) header_length = (header_length << 8) | uint8_t(bytes[i]);
  EXPECT_EQ((8 + header_length) % 4096, 0u);  // data page-aligned (8 is the format's rule)
  ASSERT_EQ(bytes.size(), 8 + header_length + 24);
  auto header = nlohmann::json::parse(bytes.substr(8, header_length));
  EXPECT_EQ(header["x"]["dtype"], "BF16");
  EXPECT_EQ(header["x"]["shape"], nlohmann::json({3, 4}));
  EXPECT_EQ(header["x"]["data_offsets"], nlohmann::json({0, 24}));
  EXPECT_EQ(header["__metadata__"]["who"], "test");
  EXPECT_EQ(std::memcmp(bytes.data() + 8 + header_length, tensor.const_data_ptr(), 24), 0);
  EXPECT_EQ(SafetensorsFileBytes({{"x", tensor}}, {{"who", "test"}}), bytes.size());
}

TEST(SafetensorsTest, RoundTripsEveryDtypeAndNonContiguousViews) {
  ScratchDir scratch;
  FileSystem& fs = *FileSystem::Default();
  const c10::ScalarType dtypes[] = {at::kFloat,  at::kDouble,        at::kHalf,       at::kBFloat16,
                                    at::kLong,   at::kInt,           at::kShort,      at::kChar,
                                    at::kByte,   at::kBool,          at::kUInt16,     at::kUInt32,
                                    at::kUInt64, at::kFloat8_e4m3fn, at::kFloat8_e5m2};
  for (c10::ScalarType dtype : dtypes) {
    SCOPED_TRACE(c10::toString(dtype));
    at::Tensor base = Arange(6 * 7 * 5, at::kFloat).remainder(97).to(dtype).view({6, 7, 5});
    std::vector<std::pair<std::string, at::Tensor>> tensors = {
        {"contiguous", base},
        {"transposed", base.transpose(0, 2)},
        {"strided", base.slice(1, 1, 7, 3)},
        {"scalar", base[1][2][3]},
        {"empty", base.narrow(0, 0, 0)},
    };
    const std::string path = scratch / (std::string(c10::toString(dtype)) + ".safetensors");
    // A tiny chunk forces row-by-row writes of the non-contiguous views; both writers.
    for (bool direct_io : {true, false}) {
      SafetensorsWriteOptions tiny_chunks;
      tiny_chunks.chunk_bytes = 16;
      tiny_chunks.direct_io = direct_io;
      ASSERT_TRUE(WriteSafetensors(fs, path, tensors, tiny_chunks).ok());
      EXPECT_EQ(*fs.FileSize(path), SafetensorsFileBytes(tensors));
      auto read = ReadSafetensors(fs, path);
      ASSERT_TRUE(read.ok()) << read.status().ToString();
      ASSERT_EQ(read->tensors.size(), tensors.size());
      for (const auto& [name, expected] : tensors) {
        auto found =
            std::find_if(read->tensors.begin(), read->tensors.end(),
                         [&, &name = name](const auto& item) { return item.first == name; });
        ASSERT_NE(found, read->tensors.end()) << name;
        EXPECT_TRUE(SameBytes(expected, found->second)) << name;
      }
    }
  }
}

TEST(SafetensorsTest, ReadViewsTheMappingWithoutCopying) {
  ScratchDir scratch;
  FileSystem& fs = *FileSystem::Default();
  at::Tensor tensor = Arange(1 << 16, at::kFloat);
  ASSERT_TRUE(WriteSafetensors(fs, scratch / "t.safetensors", {{"t", tensor}}).ok());
  auto read = ReadSafetensors(fs, scratch / "t.safetensors");
  ASSERT_TRUE(read.ok());
  const at::Tensor& mapped = read->tensors.at(0).second;
  auto* data = static_cast<const uint8_t*>(mapped.const_data_ptr());
  EXPECT_GE(data, read->mapped_begin);
  EXPECT_LE(data + mapped.nbytes(), read->mapped_end);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(data) % 4096, 0u);
  EXPECT_NE(testing::MappingOf(data).find("t.safetensors"), std::string::npos);

  // In-place writes stay private to the process.
  mapped.fill_(-1);
  auto again = ReadSafetensors(fs, scratch / "t.safetensors");
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(SameBytes(tensor, again->tensors.at(0).second));
}

TEST(SafetensorsTest, MappingOutlivesTheFile) {
  ScratchDir scratch;
  FileSystem& fs = *FileSystem::Default();
  at::Tensor tensor = Arange(1000, at::kInt);
  ASSERT_TRUE(WriteSafetensors(fs, scratch / "t.safetensors", {{"t", tensor}}).ok());
  at::Tensor mapped = ReadSafetensors(fs, scratch / "t.safetensors")->tensors.at(0).second;
  ASSERT_TRUE(fs.RemoveFile(scratch / "t.safetensors").ok());
  EXPECT_TRUE(SameBytes(tensor, mapped));
}

TEST(SafetensorsTest, MalformedFilesAreParseErrors) {
  ScratchDir scratch;
  FileSystem& fs = *FileSystem::Default();
  ASSERT_TRUE(WriteSafetensors(fs, scratch / "good", {{"t", Arange(100, at::kFloat)}}).ok());
  const std::string good = testing::ReadText(scratch / "good");

  auto expect_parse_error = [&](const std::string& name, const std::string& bytes) {
    testing::WriteText(scratch / name, bytes);
    auto read = ReadSafetensors(fs, scratch / name);
    EXPECT_EQ(read.status().code(), ErrorCode::kParse) << name << ": " << read.status().ToString();
  };
  expect_parse_error("short", "abc");
  expect_parse_error("truncated", good.substr(0, good.size() - 4));
  std::string huge_length = good;
  huge_length[6] = 0x7f;
  expect_parse_error("huge_length", huge_length);
  std::string not_json = good;
  not_json[8] = 'x';
  expect_parse_error("not_json", not_json);
  std::string bad_dtype = good;
  bad_dtype.replace(bad_dtype.find("F32"), 3, "Q32");
  expect_parse_error("bad_dtype", bad_dtype);
}

TEST(SafetensorsTest, RefusesWhatTheFormatCannotHold) {
  std::string why;
  EXPECT_FALSE(CanWriteSafetensors(at::Tensor(), &why));
  EXPECT_FALSE(
      CanWriteSafetensors(at::zeros({2}, at::TensorOptions().dtype(at::kComplexFloat)), &why));
  EXPECT_NE(why.find("dtype"), std::string::npos);
  EXPECT_FALSE(CanWriteSafetensors(at::zeros({2}, at::TensorOptions().device(at::kMeta)), &why));
  EXPECT_TRUE(CanWriteSafetensors(at::zeros({2}), &why));
  ScratchDir scratch;
  Status refused =
      WriteSafetensors(*FileSystem::Default(), scratch / "c",
                       {{"c", at::zeros({2}, at::TensorOptions().dtype(at::kComplexFloat))}});
  EXPECT_EQ(refused.code(), ErrorCode::kInvalidArgument);
}

TEST(SafetensorsTest, PythonReadsOurFilesAndWeReadPythons) {
  const std::string python = testing::PythonWithSafetensors();
  if (python.empty()) GTEST_SKIP() << "no venv Python with torch + safetensors";
  ScratchDir scratch;
  FileSystem& fs = *FileSystem::Default();
  at::Tensor grid = Arange(24, at::kFloat).view({4, 6});
  ASSERT_TRUE(WriteSafetensors(fs, scratch / "ours.safetensors",
                               {{"bf16_t", grid.to(at::kBFloat16).t()},
                                {"i64", grid.to(at::kLong)},
                                {"flags", grid.remainder(2).to(at::kBool)},
                                {"f16_slice", grid.to(at::kHalf).slice(1, 0, 6, 2)}},
                               {.metadata = {{"origin", "c++"}}})
                  .ok());
  testing::WriteText(scratch / "check.py", R"PY(
import sys, torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
d = sys.argv[1] if len(sys.argv) > 1 else __file__.rsplit('/', 1)[0]
t = load_file(d + '/ours.safetensors')
grid = torch.arange(24, dtype=torch.float32).view(4, 6)
assert t['bf16_t'].dtype == torch.bfloat16 and torch.equal(t['bf16_t'], grid.to(torch.bfloat16).t())
assert t['i64'].dtype == torch.int64 and torch.equal(t['i64'], grid.long())
assert t['flags'].dtype == torch.bool and torch.equal(t['flags'], (grid % 2).bool())
assert torch.equal(t['f16_slice'], grid.half()[:, ::2])
with safe_open(d + '/ours.safetensors', 'pt') as f:
    assert f.metadata() == {'origin': 'c++'}
save_file({'w': grid.to(torch.bfloat16) * 0.5, 'odd': torch.tensor([True, False, True]),
           'n': torch.arange(5, dtype=torch.int16)}, d + '/theirs.safetensors')
)PY");
  ASSERT_EQ(testing::RunPython(python, scratch / "check.py"), 0);

  auto theirs = ReadSafetensors(fs, scratch / "theirs.safetensors");
  ASSERT_TRUE(theirs.ok()) << theirs.status().ToString();
  ASSERT_EQ(theirs->tensors.size(), 3u);
  for (const auto& [name, tensor] : theirs->tensors) {
    if (name == "w") {
      EXPECT_TRUE(SameBytes(grid.to(at::kBFloat16).mul(0.5), tensor));
    } else if (name == "n") {
      EXPECT_TRUE(SameBytes(at::arange(5).to(at::kShort), tensor));
    } else {
      EXPECT_EQ(name, "odd");
      EXPECT_EQ(tensor.sum().item<int64_t>(), 2);
    }
  }
}

// Big enough for the direct writer's every path: several write buffers in flight, tensors that
// start and end off the alignment, the padded and cut tail. Python must read it all.
TEST(SafetensorsTest, PythonReadsALargeDirectWrittenFile) {
  const std::string python = testing::PythonWithSafetensors();
  if (python.empty()) GTEST_SKIP() << "no venv Python with torch + safetensors";
  ScratchDir scratch;
  FileSystem& fs = *FileSystem::Default();
  const int64_t n = (int64_t{11} << 20) / 4 * 4 + 3;  // 11 MiB + 3 floats: no whole block
  std::vector<std::pair<std::string, at::Tensor>> tensors = {
      {"big", Arange(n, at::kFloat)},
      {"bf16_t", Arange(3 * 4099, at::kFloat).remainder(251).to(at::kBFloat16).view({3, 4099}).t()},
      {"odd", Arange(5 * 777 * 1001 + 1, at::kLong).remainder(127).to(at::kChar)},
  };
  SafetensorsWriteOptions options;
  options.chunk_bytes = size_t{3} << 20;  // pieces that straddle the writer's buffers
  ASSERT_TRUE(WriteSafetensors(fs, scratch / "big.safetensors", tensors, options).ok());
  EXPECT_EQ(*fs.FileSize(scratch / "big.safetensors"), SafetensorsFileBytes(tensors));
  testing::WriteText(scratch / "check.py", R"PY(
import sys, torch
from safetensors.torch import load_file
d = __file__.rsplit('/', 1)[0]
t = load_file(d + '/big.safetensors')
n = (11 << 20) // 4 * 4 + 3
assert torch.equal(t['big'], torch.arange(n, dtype=torch.long).to(torch.float32)), 'big'
bf = (torch.arange(3 * 4099, dtype=torch.long).to(torch.float32) % 251).to(torch.bfloat16)
assert torch.equal(t['bf16_t'], bf.view(3, 4099).t()), 'bf16_t'
assert torch.equal(t['odd'], (torch.arange(5 * 777 * 1001 + 1) % 127).to(torch.int8)), 'odd'
)PY");
  ASSERT_EQ(testing::RunPython(python, scratch / "check.py"), 0);
  for (SafetensorsLoad load : {SafetensorsLoad::kMap, SafetensorsLoad::kRead}) {
    auto read = ReadSafetensors(fs, scratch / "big.safetensors", {.load = load});
    ASSERT_TRUE(read.ok()) << read.status().ToString();
    for (const auto& [name, tensor] : read->tensors) {
      auto expected =
          std::find_if(tensors.begin(), tensors.end(),
                       [&, &name = name](const auto& item) { return item.first == name; });
      ASSERT_NE(expected, tensors.end());
      EXPECT_TRUE(SameBytes(expected->second, tensor)) << name;
    }
  }
}

TEST(SafetensorsTest, FullDiskDuringADirectWriteIsNoSpace) {
  ScratchDir scratch;
  FaultInjectingFileSystem fs;
  fs.SetFreeSpace(size_t{5} << 20);
  at::Tensor tensor = Arange(int64_t{3} << 20, at::kFloat);  // 12 MiB
  Status status = WriteSafetensors(fs, scratch / "t.safetensors", {{"t", tensor}});
  EXPECT_EQ(status.code(), ErrorCode::kNoSpace) << status.ToString();
  EXPECT_EQ(fs.bytes_written(), size_t{5} << 20);
  // The partial file is the caller's to remove; nothing else was left beside it.
  EXPECT_EQ(testing::CountFiles(scratch.path()), 1u);
  ASSERT_TRUE(fs.RemoveFile(scratch / "t.safetensors").ok());
}

}  // namespace
}  // namespace discomfort::storage
