// Tensors on a device through a real ComfyUI: each case runs on the CPU and on the first CUDA
// device (the GPU variant, skipped with the reason where torch sees no CUDA device; see
// benchmarks/gpu/device_check.sh). A device tensor put into the context reaches the nodes and comes
// back by pointer, iteration after iteration; the context's budget for that device spills it
// (device -> pinned staging -> safetensors) and the next workflow gets it back on its device.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "engine/loop.h"
#include "storage/context.h"
#include "tests/bridge/comfy_environment.h"

namespace discomfort {
namespace {

using nlohmann::json;
using testing::Comfy;

constexpr double kBytesPerGiB = 1024.0 * 1024.0 * 1024.0;

json Link(const std::string& node) { return json::array({node, 0}); }
json Port(const std::string& uid) {
  return {{"class_type", "DiscomfortPort"}, {"inputs", {{"unique_id", uid}}}};
}
json Port(const std::string& uid, const json& source) {
  return {{"class_type", "DiscomfortPort"},
          {"inputs", {{"unique_id", uid}, {"input_data", source}}}};
}

// frame -> ImageCrop (full size: a view of the same storage) -> OUTPUT cropped;
// frame -> ImageInvert (computed where the tensor lives) -> OUTPUT inverted;
// frame -> OUTPUT frame, carried into the next iteration untouched.
engine::PreparedWorkflow PassThrough(const at::Tensor& image) {
  json prompt = {{"1", Port("frame")},
                 {"2",
                  {{"class_type", "ImageCrop"},
                   {"inputs",
                    {{"image", Link("1")},
                     {"width", image.size(2)},
                     {"height", image.size(1)},
                     {"x", 0},
                     {"y", 0}}}}},
                 {"3", Port("cropped", Link("2"))},
                 {"4", {{"class_type", "ImageInvert"}, {"inputs", {{"image", Link("1")}}}}},
                 {"5", Port("inverted", Link("4"))},
                 {"6", Port("frame", Link("1"))}};
  auto prepared = engine::PrepareWorkflow({"device_pass_through.json", prompt}, 0);
  EXPECT_TRUE(prepared.ok()) << prepared.status().ToString();
  return prepared.ok() ? *prepared : engine::PreparedWorkflow{};
}

bool OnDisk(const storage::Context& context, const std::string& key) {
  auto info = context.Info(key);
  return info.ok() && info->on_disk;
}

class DeviceHandoffTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() != "cpu" && !at::hasCUDA()) {
      GTEST_SKIP() << "no CUDA device: torch sees none (at::hasCUDA() is false); this case runs on "
                      "a GPU machine (benchmarks/gpu/device_check.sh)";
    }
  }
  at::Device device() const { return at::Device(GetParam()); }
  // An IMAGE-shaped [1, H, W, 3] float32 tensor of `mib` MiB on the case's device.
  at::Tensor Image(int64_t mib, double seed) const {
    const int64_t height = mib * 1024 * 1024 / (4 * 3 * 256);
    return at::rand({1, height, 256, 3}, at::TensorOptions().dtype(at::kFloat))
        .add(seed)
        .remainder(1.0)
        .to(device());
  }
  // The budget that governs tensors of the case's device: RAM for the CPU, max_device_gb else.
  storage::ContextOptions Budget(uint64_t bytes) const {
    storage::ContextOptions options;
    (GetParam() == "cpu" ? options.max_ram_gb : options.max_device_gb) =
        static_cast<double>(bytes) / kBytesPerGiB;
    return options;
  }
  uint64_t UsedBytes(const storage::Usage& usage) const {
    return GetParam() == "cpu" ? usage.ram_bytes : usage.device_bytes;
  }
  uint64_t BudgetBytes(const storage::Usage& usage) const {
    return GetParam() == "cpu" ? usage.ram_budget_bytes : usage.device_budget_bytes;
  }
};

// The name keeps the force-spill run (ctest bridge.force_spill) away: pointers cannot survive a
// spill after every put.
TEST_P(DeviceHandoffTest, DeviceTensorCrossesByPointerThroughRealNodesEveryIteration) {
  const at::Tensor image = Image(1, 0.0);
  engine::PreparedWorkflow workflow = PassThrough(image);
  storage::Context context;
  ASSERT_TRUE(context.Put("frame", storage::Value::Tensor(image)).ok());
  engine::LoopRunner runner(Comfy(), context);
  engine::LoopOptions options;
  options.iterations = 3;
  auto result = runner.Run({workflow}, options);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_EQ(result->iterations_completed, 3);

  // After three iterations the context holds the very tensor put in: no copy, no device move.
  const at::Tensor& frame = result->outputs.at("frame").tensor();
  EXPECT_EQ(frame.unsafeGetTensorImpl(), image.unsafeGetTensorImpl());
  EXPECT_EQ(frame.device(), image.device());
  const at::Tensor& cropped = result->outputs.at("cropped").tensor();
  EXPECT_EQ(cropped.device(), image.device());
  EXPECT_EQ(cropped.data_ptr(), image.data_ptr());
  EXPECT_TRUE(cropped.storage().is_alias_of(image.storage()));
  // ComfyUI computed on the tensor's own device.
  const at::Tensor& inverted = result->outputs.at("inverted").tensor();
  EXPECT_EQ(inverted.device(), image.device());
  EXPECT_TRUE(at::allclose(inverted.cpu(), 1.0 - image.cpu()));

  auto info = context.Info("frame");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->device, image.device().str());
  if (GetParam() != "cpu") {
    // frame and cropped share one storage, counted once; inverted is the other.
    const uint64_t image_bytes = image.numel() * image.element_size();
    EXPECT_EQ(context.GetUsage().device_bytes, 2 * image_bytes);
  }
  EXPECT_TRUE(context.CheckConsistency().ok());
}

TEST_P(DeviceHandoffTest, BudgetSpillsATensorAndTheWorkflowGetsItBackOnItsDevice) {
  at::Tensor image = Image(3, 0.0);
  const at::Tensor other = Image(3, 0.5);
  const uint64_t image_bytes = image.numel() * image.element_size();
  const at::Tensor expected = image.cpu();
  const at::Tensor other_expected = other.cpu();
  engine::PreparedWorkflow workflow = PassThrough(image);

  // Room for one and a half images: the second put spills the first.
  storage::Context context(Budget(image_bytes * 3 / 2));
  ASSERT_TRUE(context.Put("frame", storage::Value::Tensor(image)).ok());
  ASSERT_TRUE(context.Put("other", storage::Value::Tensor(other)).ok());
  ASSERT_TRUE(OnDisk(context, "frame"));
  EXPECT_EQ(context.Info("frame")->device, image.device().str());
  image = at::Tensor();  // the spill file holds the only copy now

  engine::LoopRunner runner(Comfy(), context);
  auto result = runner.Run({workflow}, engine::LoopOptions{});
  ASSERT_TRUE(result.ok()) << result.status().ToString();

  // The loader read the spilled frame back onto its device, and the nodes ran there.
  const at::Tensor& cropped = result->outputs.at("cropped").tensor();
  EXPECT_EQ(cropped.device(), device());
  EXPECT_TRUE(at::equal(cropped.cpu(), expected));
  const at::Tensor& inverted = result->outputs.at("inverted").tensor();
  EXPECT_EQ(inverted.device(), device());
  EXPECT_TRUE(at::allclose(inverted.cpu(), 1.0 - expected));

  // The outputs' commit enforced the budget again; everything comes back exact.
  const storage::Usage usage = context.GetUsage();
  EXPECT_GE(usage.reloads, 1u);
  EXPECT_GE(usage.spills, 2u);
  EXPECT_LE(UsedBytes(usage), BudgetBytes(usage));
  EXPECT_TRUE(context.CheckConsistency().ok());
  for (const auto& [key, want] : {std::pair<std::string, at::Tensor>{"frame", expected},
                                  std::pair<std::string, at::Tensor>{"other", other_expected}}) {
    auto back = context.Get(key);
    ASSERT_TRUE(back.ok()) << key << ": " << back.status().ToString();
    EXPECT_EQ(back->tensor().device(), device()) << key;
    EXPECT_TRUE(at::equal(back->tensor().cpu(), want)) << key;
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, DeviceHandoffTest, ::testing::Values("cpu", "cuda:0"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param == "cpu" ? std::string("cpu") : std::string("cuda");
                         });

}  // namespace
}  // namespace discomfort
