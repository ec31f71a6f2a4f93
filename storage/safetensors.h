// The safetensors file format, written and read without the Rust library: an 8-byte
// little-endian header length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__":
// {str: str}}, then the raw little-endian bytes of each tensor in row-major order. Files written
// here open with Python's `safetensors.torch.load_file`; their header is padded with spaces so
// the data starts at a multiple of 4096 bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "discomfort/status.h"
#include "storage/filesystem.h"

namespace discomfort::storage {

struct SafetensorsWriteOptions {
  std::map<std::string, std::string> metadata;  // the header's "__metadata__"
  bool sync = true;                             // fsync before returning
  size_t chunk_bytes = size_t{64} << 20;        // write (and GPU staging) granularity
  // Written with WriteOpenOptions::direct_io: at the disk's speed, its space reserved up front,
  // nothing left in the page cache (a tensor is spilled to free memory; a cached copy of its file
  // would take that memory back and push other files out of the cache).
  bool direct_io = true;
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
  // The mapped (kMap) or read (kRead) region, for checks that tensors point into it. Tensors
  // keep it alive; it is released when the last of them is gone.
  const uint8_t* mapped_begin = nullptr;
  const uint8_t* mapped_end = nullptr;
};

enum class SafetensorsLoad {
  // Map the file; tensors view the mapping: no copy, and only the pages touched are ever read
  // (the kernel faults them in on first touch, from the page cache when it holds them). Writes
  // to a tensor stay private to the process.
  kMap,
  // Read the whole file into fresh memory with large parallel reads (direct I/O where the file
  // is not cached): several times faster than page faults for a tensor that will be used in
  // full, no page-cache copy, and the file may change or vanish afterwards without harm.
  kRead,
};

struct SafetensorsReadOptions {
  SafetensorsLoad load = SafetensorsLoad::kMap;
  int threads = 4;                        // kRead: reads in flight
  size_t chunk_bytes = size_t{16} << 20;  // kRead: bytes per read
  bool direct_io = true;                  // kRead: O_DIRECT for the parts not in the page cache
};

// CPU tensors holding the file's tensors (see SafetensorsLoad). Throws nothing; a malformed file
// is kParse, a read that fails or ends early kIO, a missing file kNotFound.
Result<SafetensorsContents> ReadSafetensors(FileSystem& fs, const std::string& path,
                                            const SafetensorsReadOptions& options = {});

// "F32", "BF16", "BOOL", ... or "" for a dtype the format lacks.
const char* SafetensorsDtypeName(c10::ScalarType dtype);

}  // namespace discomfort::storage
