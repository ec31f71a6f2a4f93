// PNG encode/decode for ComfyUI IMAGE tensors (float32 [B,H,W,C] in 0..1), via libspng.
#pragma once

#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "discomfort/status.h"
#include "storage/filesystem.h"

namespace discomfort::engine {

// True for tensors shaped like a ComfyUI IMAGE: 4-D [B,H,W,C] with C in {1,3,4}, or a 3-D MASK.
bool LooksLikeImage(const at::Tensor& tensor);

// Writes one PNG per batch item: `path_stem` + ".png" for a batch of 1, else `_<b>.png`, each
// atomically (a temporary renamed into place). Returns the paths written. `fs` null: the real one.
Result<std::vector<std::string>> WriteImagePngs(const at::Tensor& image,
                                                const std::string& path_stem,
                                                storage::FileSystem* fs = nullptr);

// Decodes a PNG into a float32 [1,H,W,3] tensor in 0..1 (RGB; alpha dropped).
Result<at::Tensor> ReadPngAsImage(const std::string& path, storage::FileSystem* fs = nullptr);

}  // namespace discomfort::engine
