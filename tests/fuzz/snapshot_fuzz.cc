// Snapshot manifests and safetensors files on arbitrary bytes, through an in-memory file system:
// the input is "manifest.json @@@@ file bytes"; every file the manifest names reads as the second
// part. Context::LoadSnapshot must load all values or none and return a Status; ReadSafetensors
// must reject any header that does not match the bytes (no tensor may view memory past the file).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "storage/context.h"
#include "storage/filesystem.h"
#include "storage/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

using namespace discomfort;

namespace {

class MemoryMapping : public storage::MappedFile {
 public:
  explicit MemoryMapping(const std::string& bytes) : bytes_(bytes.begin(), bytes.end()) {}
  uint8_t* data() const override { return const_cast<uint8_t*>(bytes_.data()); }
  size_t size() const override { return bytes_.size(); }

 private:
  std::vector<uint8_t> bytes_;
};

class NullFile : public storage::WritableFile {
 public:
  Status Append(const void*, size_t) override { return Status(ErrorCode::kNoSpace, "read-only"); }
  Status Sync() override { return Status(); }
  Status Close() override { return Status(); }
};

// A read-only file system: manifest.json (anywhere) is `manifest`, every other file is `payload`.
class FuzzFileSystem : public storage::FileSystem {
 public:
  std::string manifest;
  std::string payload;

  Result<std::unique_ptr<storage::WritableFile>> NewWritableFile(const std::string&) override {
    return std::unique_ptr<storage::WritableFile>(new NullFile());
  }
  Result<std::shared_ptr<storage::MappedFile>> MapFile(const std::string& path) override {
    return std::shared_ptr<storage::MappedFile>(new MemoryMapping(Contents(path)));
  }
  Result<std::string> ReadFile(const std::string& path) override { return Contents(path); }
  Result<uint64_t> FileSize(const std::string& path) override { return Contents(path).size(); }
  bool Exists(const std::string&) override { return true; }
  bool IsSymlink(const std::string&) override { return false; }
  Result<std::vector<std::string>> ListDir(const std::string&) override {
    return std::vector<std::string>{};
  }
  Status CreateDir(const std::string&) override { return Status(); }
  Status RemoveFile(const std::string&) override { return Status(); }
  Status RemoveAll(const std::string&) override { return Status(); }
  Status Rename(const std::string&, const std::string&) override { return Status(); }
  Status ReplaceDir(const std::string&, const std::string&) override { return Status(); }
  Status SyncDir(const std::string&) override { return Status(); }
  bool ProcessAlive(int) override { return true; }

 private:
  const std::string& Contents(const std::string& path) const {
    static const std::string kName = "manifest.json";
    bool is_manifest = path.size() >= kName.size() &&
                       path.compare(path.size() - kName.size(), kName.size(), kName) == 0;
    return is_manifest ? manifest : payload;
  }
};

// Touches every byte a tensor views, so a view past the mapping is an ASan report.
void TouchAll(const at::Tensor& tensor) {
  if (!tensor.defined() || tensor.numel() == 0) return;
  at::Tensor flat = tensor.contiguous();
  const auto* bytes = static_cast<const volatile uint8_t*>(flat.data_ptr());
  uint8_t sum = 0;
  for (size_t i = 0, n = flat.numel() * flat.element_size(); i < n; ++i) sum ^= bytes[i];
  (void)sum;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzFileSystem fs;
  auto parts = fuzz::SplitDocuments({reinterpret_cast<const char*>(data), size}, 2);
  fs.manifest = std::string(parts[0]);
  if (parts.size() > 1) fs.payload = std::string(parts[1]);

  auto file = storage::ReadSafetensors(fs, "/snap/tensors/x.safetensors");
  if (file.ok()) {
    for (const auto& [name, tensor] : file->tensors) {
      TouchAll(tensor);
    }
  }

  storage::ContextOptions options;
  options.fs = &fs;
  options.temp_root = "/fuzz-tmp";
  storage::Context context(options);
  (void)context.Put("kept", storage::Value::Json(1));
  auto loaded = context.LoadSnapshot("/snap");
  if (loaded.ok()) {
    for (const auto& key : context.Keys()) {
      auto value = context.Get(key);
      if (value.ok() && value->kind() == storage::ValueKind::kTensor) TouchAll(value->tensor());
    }
  } else if (context.Keys().size() != 1 || !context.Contains("kept")) {
    fprintf(stderr, "fuzz: a failed LoadSnapshot changed the context\n");
    std::abort();
  }
  return 0;
}
