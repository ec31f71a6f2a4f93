#include "storage/safetensors.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <c10/core/DeviceGuard.h>
#include <c10/core/Event.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>

#include <nlohmann/json.hpp>

namespace discomfort::storage {

static_assert(std::endian::native == std::endian::little,
              "safetensors stores little-endian bytes; a big-endian host would need swapping");

namespace {

// Header lengths above this are corrupt (the Python library's own limit).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// The data section starts at a multiple of this, so mapped tensors are page-aligned and direct
// I/O writes the data from its first byte without a misaligned head. The header is padded with
// spaces, as the format allows.
constexpr uint64_t kDataAlignment = kDirectIOAlignment;

struct DtypeName {
  c10::ScalarType dtype;
  const char* name;
};

constexpr DtypeName kDtypeNames[] = {
    {c10::ScalarType::Bool, "BOOL"},
    {c10::ScalarType::Byte, "U8"},
    {c10::ScalarType::Char, "I8"},
    {c10::ScalarType::Short, "I16"},
    {c10::ScalarType::UInt16, "U16"},
    {c10::ScalarType::Int, "I32"},
    {c10::ScalarType::UInt32, "U32"},
    {c10::ScalarType::Long, "I64"},
    {c10::ScalarType::UInt64, "U64"},
    {c10::ScalarType::Half, "F16"},
    {c10::ScalarType::BFloat16, "BF16"},
    {c10::ScalarType::Float, "F32"},
    {c10::ScalarType::Double, "F64"},
    {c10::ScalarType::Float8_e4m3fn, "F8_E4M3"},
    {c10::ScalarType::Float8_e5m2, "F8_E5M2"},
};

bool ParseDtype(const std::string& name, c10::ScalarType* dtype) {
  for (const auto& entry : kDtypeNames) {
    if (name == entry.name) {
      *dtype = entry.dtype;
      return true;
    }
  }
  return false;
}

uint64_t TensorBytes(const at::Tensor& tensor) {
  return static_cast<uint64_t>(tensor.numel()) * tensor.element_size();
}

// Data order in the file: larger elements first, then by name (the Python library's order), so
// every tensor starts aligned for its dtype without gaps, which the format forbids.
std::vector<size_t> FileOrder(const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    auto size_a = tensors[a].second.element_size();
    auto size_b = tensors[b].second.element_size();
    if (size_a != size_b) return size_a > size_b;
    return tensors[a].first < tensors[b].first;
  });
  return order;
}

// The header bytes including the 8-byte length prefix and padding.
std::string BuildHeader(const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                        const std::vector<size_t>& order,
                        const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (size_t index : order) {
    const auto& [name, tensor] = tensors[index];
    uint64_t bytes = TensorBytes(tensor);
    header[name] = {{"dtype", SafetensorsDtypeName(tensor.scalar_type())},
                    {"shape", tensor.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  uint64_t padded = text.size();
  padded += (kDataAlignment - (8 + padded) % kDataAlignment) % kDataAlignment;
  text.append(padded - text.size(), ' ');
  std::string out(8, '\0');
  uint64_t length = text.size();
  std::memcpy(out.data(), &length, 8);  // little-endian (static_assert above)
  return out + text;
}

// Splits a tensor into pieces whose row-major bytes, concatenated, are the tensor's bytes:
// chunks of the flat view for a contiguous tensor, runs of rows along dim 0 otherwise (each
// made contiguous on its own, so a non-contiguous tensor never needs a full copy).
std::vector<at::Tensor> RowMajorPieces(const at::Tensor& tensor, size_t chunk_bytes) {
  std::vector<at::Tensor> pieces;
  if (tensor.numel() == 0) return pieces;
  const int64_t element = tensor.element_size();
  const int64_t per_chunk = std::max<int64_t>(1, static_cast<int64_t>(chunk_bytes) / element);
  if (tensor.is_contiguous()) {
    at::Tensor flat = tensor.view({-1});
    for (int64_t begin = 0; begin < flat.numel(); begin += per_chunk) {
      pieces.push_back(flat.narrow(0, begin, std::min(per_chunk, flat.numel() - begin)));
    }
    return pieces;
  }
  const int64_t rows = tensor.size(0);
  const int64_t row_elements = tensor.numel() / rows;
  const int64_t rows_per_chunk = std::max<int64_t>(1, per_chunk / row_elements);
  for (int64_t begin = 0; begin < rows; begin += rows_per_chunk) {
    pieces.push_back(tensor.narrow(0, begin, std::min(rows_per_chunk, rows - begin)));
  }
  return pieces;
}

Status WriteHostPieces(WritableFile& file, const std::vector<at::Tensor>& pieces) {
  for (const at::Tensor& piece : pieces) {
    at::Tensor dense = piece.contiguous();
    DISCOMFORT_RETURN_IF_ERROR(file.Append(dense.const_data_ptr(), TensorBytes(dense)));
  }
  return Status::Ok();
}

// Device tensors: chunk i+1 is copied into one pinned buffer (asynchronously, on the tensor's
// current stream) while chunk i is written from the other.
Status WriteDevicePieces(WritableFile& file, const at::Tensor& tensor,
                         const std::vector<at::Tensor>& pieces) {
  if (pieces.empty()) return Status::Ok();
  const c10::Device device = tensor.device();
  c10::DeviceGuard guard(device);
  const c10::Stream stream = c10::impl::getDeviceGuardImpl(device.type())->getStream(device);
  uint64_t largest = 0;
  for (const at::Tensor& piece : pieces) largest = std::max(largest, TensorBytes(piece));
  // Aligned for direct I/O: the file writes them to the disk without copying them again.
  auto aligned_staging = [largest]() {
    const int64_t room = static_cast<int64_t>(largest + kDirectIOAlignment);
    at::Tensor raw = at::empty({room}, at::TensorOptions().dtype(at::kByte).pinned_memory(true));
    const auto address = reinterpret_cast<uintptr_t>(raw.data_ptr());
    const int64_t skew = static_cast<int64_t>((kDirectIOAlignment - address % kDirectIOAlignment) %
                                              kDirectIOAlignment);
    return raw.narrow(0, skew, static_cast<int64_t>(largest));
  };
  at::Tensor staging[2] = {aligned_staging(), aligned_staging()};
  c10::Event ready[2] = {c10::Event(device.type()), c10::Event(device.type())};
  bool in_flight[2] = {false, false};
  // A copy must not outlive its buffer, also when a write fails.
  struct DrainOnExit {
    c10::Event* events;
    bool* flags;
    ~DrainOnExit() {
      for (int slot = 0; slot < 2; ++slot) {
        if (flags[slot]) events[slot].synchronize();
      }
    }
  } drain{ready, in_flight};

  auto issue_copy = [&](size_t index) {
    const int slot = static_cast<int>(index % 2);
    const at::Tensor& piece = pieces[index];
    at::Tensor destination = staging[slot]
                                 .narrow(0, 0, static_cast<int64_t>(TensorBytes(piece)))
                                 .view(piece.scalar_type())
                                 .view(piece.sizes());
    destination.copy_(piece, /*non_blocking=*/true);
    ready[slot].record(stream);
    in_flight[slot] = true;
  };

  issue_copy(0);
  for (size_t index = 0; index < pieces.size(); ++index) {
    if (index + 1 < pieces.size()) issue_copy(index + 1);
    const int slot = static_cast<int>(index % 2);
    ready[slot].synchronize();
    in_flight[slot] = false;
    DISCOMFORT_RETURN_IF_ERROR(
        file.Append(staging[slot].const_data_ptr(), TensorBytes(pieces[index])));
  }
  return Status::Ok();
}

Status Corrupt(const std::string& path, const std::string& why) {
  return Status(ErrorCode::kParse, "malformed safetensors file " + path + ": " + why);
}

}  // namespace

const char* SafetensorsDtypeName(c10::ScalarType dtype) {
  for (const auto& entry : kDtypeNames) {
    if (entry.dtype == dtype) return entry.name;
  }
  return "";
}

bool CanWriteSafetensors(const at::Tensor& tensor, std::string* why_not) {
  auto refuse = [why_not](std::string why) {
    if (why_not != nullptr) *why_not = std::move(why);
    return false;
  };
  if (!tensor.defined()) return refuse("the tensor is undefined");
  if (tensor.layout() != c10::kStrided) return refuse("only dense (strided) tensors are stored");
  if (*SafetensorsDtypeName(tensor.scalar_type()) == '\0') {
    return refuse(std::string("safetensors has no dtype for ") +
                  c10::toString(tensor.scalar_type()));
  }
  if (!tensor.is_cpu() && !tensor.is_cuda()) {
    return refuse("tensors on " + tensor.device().str() + " are not stored");
  }
  if (tensor.is_conj() || tensor.is_neg()) return refuse("lazy conj/neg views are not stored");
  return true;
}

uint64_t SafetensorsFileBytes(const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  uint64_t total = BuildHeader(tensors, FileOrder(tensors), metadata).size();
  for (const auto& [_, tensor] : tensors) total += TensorBytes(tensor);
  return total;
}

Status WriteSafetensors(FileSystem& fs, const std::string& path,
                        const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                        const SafetensorsWriteOptions& options) {
  for (const auto& [name, tensor] : tensors) {
    std::string why;
    if (!CanWriteSafetensors(tensor, &why)) {
      return Status(ErrorCode::kInvalidArgument, "cannot write '" + name + "': " + why);
    }
    if (name == "__metadata__") {
      return Status(ErrorCode::kInvalidArgument, "'__metadata__' is reserved in safetensors");
    }
  }
  try {
    const std::vector<size_t> order = FileOrder(tensors);
    const std::string header = BuildHeader(tensors, order, options.metadata);
    WriteOpenOptions open_options;
    open_options.direct_io = options.direct_io;
    open_options.size_hint = header.size();
    for (const auto& [_, tensor] : tensors) open_options.size_hint += TensorBytes(tensor);
    auto opened = fs.OpenForWrite(path, open_options);
    if (!opened.ok()) return opened.TakeStatus();
    WritableFile& file = **opened;
    DISCOMFORT_RETURN_IF_ERROR(file.Append(header.data(), header.size()));
    for (size_t index : order) {
      const at::Tensor& tensor = tensors[index].second;
      std::vector<at::Tensor> pieces = RowMajorPieces(tensor, options.chunk_bytes);
      if (tensor.is_cuda()) {
        DISCOMFORT_RETURN_IF_ERROR(WriteDevicePieces(file, tensor, pieces));
      } else {
        DISCOMFORT_RETURN_IF_ERROR(WriteHostPieces(file, pieces));
      }
    }
    if (options.sync) DISCOMFORT_RETURN_IF_ERROR(file.Sync());
    return file.Close();
  } catch (const std::exception& error) {
    return Status(ErrorCode::kIO, "writing " + path + " failed: " + error.what());
  }
}

namespace {

// The tensors of a file whose bytes are at data[0, size); `keeper` owns that memory and is held
// by every tensor.
Result<SafetensorsContents> ParseSafetensors(const std::string& path, uint8_t* data, uint64_t size,
                                             std::shared_ptr<void> keeper) {
  if (size < 8) return Corrupt(path, "shorter than its 8-byte header length");
  uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, data, 8);
  if (header_bytes > kMaxHeaderBytes || header_bytes > size - 8) {
    return Corrupt(path, "header length " + std::to_string(header_bytes) + " exceeds the file");
  }
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(data + 8, data + 8 + header_bytes);
  } catch (const std::exception& error) {
    return Corrupt(path, std::string("header is not JSON: ") + error.what());
  }
  if (!header.is_object()) return Corrupt(path, "header is not a JSON object");

  SafetensorsContents contents;
  contents.file_bytes = size;
  contents.mapped_begin = data;
  contents.mapped_end = data + size;
  uint8_t* const payload = data + 8 + header_bytes;
  const uint64_t payload_bytes = size - 8 - header_bytes;
  std::vector<std::pair<uint64_t, std::pair<std::string, at::Tensor>>> by_offset;
  try {
    for (const auto& [name, item] : header.items()) {
      if (name == "__metadata__") {
        if (!item.is_object()) return Corrupt(path, "__metadata__ is not an object");
        for (const auto& [meta_key, meta_value] : item.items()) {
          if (!meta_value.is_string()) return Corrupt(path, "__metadata__ values must be strings");
          contents.metadata[meta_key] = meta_value.get<std::string>();
        }
        continue;
      }
      c10::ScalarType dtype;
      if (!item.is_object() || !item.contains("dtype") || !item["dtype"].is_string() ||
          !ParseDtype(item["dtype"].get<std::string>(), &dtype)) {
        return Corrupt(path, "tensor '" + name + "' has no known dtype");
      }
      if (!item.contains("shape") || !item["shape"].is_array() || !item.contains("data_offsets") ||
          !item["data_offsets"].is_array() || item["data_offsets"].size() != 2) {
        return Corrupt(path, "tensor '" + name + "' lacks shape or data_offsets");
      }
      std::vector<int64_t> shape;
      uint64_t numel = 1;
      for (const auto& dim : item["shape"]) {
        if (!dim.is_number_unsigned()) return Corrupt(path, "bad shape of '" + name + "'");
        shape.push_back(dim.get<int64_t>());
        numel *= dim.get<uint64_t>();
      }
      const auto& offsets = item["data_offsets"];
      if (!offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned()) {
        return Corrupt(path, "bad data_offsets of '" + name + "'");
      }
      const uint64_t begin = offsets[0].get<uint64_t>();
      const uint64_t end = offsets[1].get<uint64_t>();
      const uint64_t element = c10::elementSize(dtype);
      if (begin > end || end > payload_bytes || end - begin != numel * element) {
        return Corrupt(path, "data_offsets of '" + name + "' do not match its shape and the file");
      }
      // The deleter holds the memory: it is released when the last tensor viewing it dies.
      at::Tensor tensor = at::from_blob(
          payload + begin, shape, [keeper](void*) {}, at::TensorOptions().dtype(dtype));
      if (reinterpret_cast<uintptr_t>(payload + begin) % element != 0) {
        tensor = tensor.clone();  // a file written elsewhere with a misaligned tensor
      }
      by_offset.push_back({begin, {name, std::move(tensor)}});
    }
  } catch (const std::exception& error) {
    return Corrupt(path, error.what());
  }
  std::stable_sort(by_offset.begin(), by_offset.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [_, named] : by_offset) contents.tensors.push_back(std::move(named));
  return contents;
}

// Anonymous memory for a file read in full, sized up to the direct-I/O alignment (the last read
// asks for whole blocks). Huge pages where the kernel allows them: fewer faults while filling it.
class HostBuffer {
 public:
  static Result<std::shared_ptr<HostBuffer>> Allocate(uint64_t bytes, const std::string& path) {
    const uint64_t capacity =
        std::max<uint64_t>(kDirectIOAlignment, (bytes + kDirectIOAlignment - 1) /
                                                   kDirectIOAlignment * kDirectIOAlignment);
    void* addr =
        ::mmap(nullptr, capacity, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (addr == MAP_FAILED) {
      return ErrnoStatus("allocating " + std::to_string(capacity) + " bytes to read", path, errno);
    }
#ifdef MADV_HUGEPAGE
    if (capacity >= (size_t{2} << 20)) ::madvise(addr, capacity, MADV_HUGEPAGE);  // a hint
#endif
    return std::make_shared<HostBuffer>(static_cast<uint8_t*>(addr), capacity, bytes);
  }
  HostBuffer(uint8_t* data, uint64_t capacity, uint64_t size)
      : data_(data), capacity_(capacity), size_(size) {}
  ~HostBuffer() { ::munmap(data_, capacity_); }
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;
  uint8_t* data() const { return data_; }
  uint64_t capacity() const { return capacity_; }
  uint64_t size() const { return size_; }  // the file's bytes; the tail is padding

 private:
  uint8_t* data_;
  uint64_t capacity_;
  uint64_t size_;
};

// Reads bytes [begin, end) of the file into buffer + begin, looping over short reads; asks for
// up to `capacity_end` so that the last direct read covers whole blocks.
Status ReadRange(RandomAccessFile& file, const std::string& path, uint8_t* buffer, uint64_t begin,
                 uint64_t end, uint64_t capacity_end) {
  uint64_t at = begin;
  while (at < end) {
    auto n = file.Read(at, static_cast<size_t>(capacity_end - at), buffer + at);
    if (!n.ok()) return n.TakeStatus();
    if (*n == 0) {
      return Status(ErrorCode::kIO, "short read of " + path + ": the file ended at byte " +
                                        std::to_string(at) + " of " + std::to_string(end) +
                                        " (truncated while being read?)");
    }
    at += *n;
  }
  return Status::Ok();
}

// The whole file into a fresh buffer: `threads` readers take `chunk_bytes` pieces in turn, so
// several requests are in flight (one sequential stream leaves this kind of disk idle between
// requests). Each reader fills its own pieces; all are joined before returning.
Result<std::shared_ptr<HostBuffer>> ReadWholeFile(FileSystem& fs, const std::string& path,
                                                  const SafetensorsReadOptions& options) {
  ReadOpenOptions open_options;
  open_options.direct_io = options.direct_io;
  auto opened = fs.OpenForRead(path, open_options);
  if (!opened.ok()) return opened.TakeStatus();
  RandomAccessFile& file = **opened;
  const uint64_t size = file.size();
  auto allocated = HostBuffer::Allocate(size, path);
  if (!allocated.ok()) return allocated.TakeStatus();
  std::shared_ptr<HostBuffer> buffer = std::move(allocated).value();
  const uint64_t chunk =
      std::max<uint64_t>(1, options.chunk_bytes / kDirectIOAlignment) * kDirectIOAlignment;
  const uint64_t chunks = (size + chunk - 1) / chunk;

  std::atomic<uint64_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex error_mu;
  Status first_error;  // guarded by error_mu
  auto reader = [&]() {
    for (uint64_t index = next++; index < chunks && !failed; index = next++) {
      const uint64_t begin = index * chunk;
      const uint64_t end = std::min(size, begin + chunk);
      Status read = ReadRange(file, path, buffer->data(), begin, end,
                              std::min(buffer->capacity(), begin + chunk));
      if (!read.ok()) {
        std::lock_guard<std::mutex> lock(error_mu);
        if (first_error.ok()) first_error = std::move(read);
        failed = true;
      }
    }
  };
  std::vector<std::thread> helpers;
  const uint64_t wanted = std::min<uint64_t>(chunks, std::max(1, options.threads));
  for (uint64_t i = 1; i < wanted; ++i) {
    try {
      helpers.emplace_back(reader);
    } catch (const std::system_error&) {
      break;  // no more threads: fewer reads in flight, same result
    }
  }
  reader();
  for (std::thread& helper : helpers) helper.join();
  if (failed) return first_error;
  return buffer;
}

}  // namespace

Result<SafetensorsContents> ReadSafetensors(FileSystem& fs, const std::string& path,
                                            const SafetensorsReadOptions& options) {
  if (options.load == SafetensorsLoad::kRead) {
    auto buffer = ReadWholeFile(fs, path, options);
    if (!buffer.ok()) return buffer.TakeStatus();
    std::shared_ptr<HostBuffer> memory = std::move(buffer).value();
    return ParseSafetensors(path, memory->data(), memory->size(), memory);
  }
  auto mapped = fs.MapFile(path);
  if (!mapped.ok()) return mapped.TakeStatus();
  std::shared_ptr<MappedFile> mapping = std::move(mapped).value();
  return ParseSafetensors(path, mapping->data(), mapping->size(), mapping);
}

}  // namespace discomfort::storage
