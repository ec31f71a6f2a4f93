// The safetensors file format, written and read without the Rust library: an 8-byte
// little-endian header length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__":
// {str: str}}, then the raw little-endian bytes of each tensor in row-major order. Files written
// here open with Python's `safetensors.torch.load_file`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "graph/status.h"
#include "storage/filesystem.h"

namespace discomfort::storage {

struct SafetensorsWriteOptions {
  std::map<std::string, std::string> metadata;  // the header's "__metadata__"
  bool sync = true;                             // fsync before returning
  size_t chunk_bytes = size_t{64} << 20;        // write (and GPU staging) granularity
};

// Whether WriteSafetensors can store this tensor: a dense (strided) tensor of a dtype the format
// names, on the CPU or a CUDA device. Explains why not in `why_not` when given.
bool CanWriteSafetensors(const at::Tensor& tensor, std::string* why_not = nullptr);

// Writes the tensors (any strides: non-contiguous ones are written in row-major order, a slice
// at a time, without a full contiguous copy). CUDA tensors go through two pinned staging
// buffers, the device→host copy of one chunk overlapping the write of the previous one.
// On failure the partial file is left for the caller to remove. Throws nothing.
Status WriteSafetensors(FileSystem& fs, const std::string& path,
                        const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                        const SafetensorsWriteOptions& options = {});

// Bytes WriteSafetensors produces for these tensors (header included).
uint64_t SafetensorsFileBytes(const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                              const std::map<std::string, std::string>& metadata = {});

struct SafetensorsContents {
  std::vector<std::pair<std::string, at::Tensor>> tensors;  // in file order
  std::map<std::string, std::string> metadata;
  uint64_t file_bytes = 0;
  // The mapped region, for checks that tensors point into it. Tensors keep the mapping alive;
  // it is unmapped when the last of them (and this pointer) is gone.
  const uint8_t* mapped_begin = nullptr;
  const uint8_t* mapped_end = nullptr;
};

// Maps the file and returns CPU tensors that view the mapping: no copy (the kernel reads pages
// on first touch, from the page cache when it holds them). Writes to a tensor stay private to the
// process. Throws nothing; a malformed file is kParse.
Result<SafetensorsContents> ReadSafetensors(FileSystem& fs, const std::string& path);

// "F32", "BF16", "BOOL", ... or "" for a dtype the format lacks.
const char* SafetensorsDtypeName(c10::ScalarType dtype);

}  // namespace discomfort::storage
