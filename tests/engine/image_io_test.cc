#include "engine/image_io.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include <ATen/ATen.h>

namespace discomfort::engine {
namespace {

std::string TempPath(const std::string& name) {
  return (std::filesystem::temp_directory_path() / (name + "-" + std::to_string(::getpid())))
      .string();
}

TEST(ImageIoTest, RoundTripIsExactToOneLevel) {
  at::Tensor image = at::rand({1, 33, 17, 3});
  const std::string stem = TempPath("roundtrip");
  auto written = WriteImagePngs(image, stem);
  ASSERT_TRUE(written.ok()) << written.status().ToString();
  ASSERT_EQ(written->size(), 1u);
  auto back = ReadPngAsImage((*written)[0]);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_EQ(back->sizes(), image.sizes());
  EXPECT_LE((*back - image).abs().max().item<float>(), 1.0f / 255 + 1e-6f);
  std::remove((*written)[0].c_str());
}

TEST(ImageIoTest, BatchesWriteOneFilePerItem) {
  auto written = WriteImagePngs(at::zeros({3, 4, 4, 4}), TempPath("batch"));
  ASSERT_TRUE(written.ok());
  ASSERT_EQ(written->size(), 3u);
  for (const auto& p : *written) {
    EXPECT_TRUE(std::filesystem::exists(p));
    std::remove(p.c_str());
  }
}

TEST(ImageIoTest, RejectsNonImagesAndBadFiles) {
  EXPECT_FALSE(LooksLikeImage(at::zeros({4, 4})));
  EXPECT_FALSE(LooksLikeImage(at::zeros({1, 4, 4, 3}, at::kLong)));
  EXPECT_TRUE(LooksLikeImage(at::zeros({1, 4, 4, 3})));
  EXPECT_EQ(WriteImagePngs(at::zeros({4, 4}), TempPath("bad")).status().code(),
            ErrorCode::kTypeMismatch);
  EXPECT_EQ(ReadPngAsImage("/nonexistent/x.png").status().code(), ErrorCode::kNotFound);
  const std::string junk = TempPath("junk") + ".png";
  std::ofstream(junk) << "not a png";
  EXPECT_EQ(ReadPngAsImage(junk).status().code(), ErrorCode::kParse);
  std::remove(junk.c_str());
  EXPECT_EQ(WriteImagePngs(at::zeros({1, 2, 2, 3}), "/nonexistent-dir/x").status().code(),
            ErrorCode::kIO);
}

}  // namespace
}  // namespace discomfort::engine
