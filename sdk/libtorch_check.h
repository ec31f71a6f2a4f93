// One libtorch per process: handing tensors by pointer to ComfyUI works only when the program, the
// library and Python's torch use the same libtorch. Engine::Create checks it first.
#pragma once

#include <string>

#include "discomfort/status.h"

namespace discomfort {

// Ok when the libtorch_cpu loaded in this process is the file the SDK was built against.
Status CheckProcessLibtorch();
// The comparison itself (real paths of the two files' folders), for tests.
Status CompareLibtorch(const std::string& loaded_library, const std::string& built_dir);

}  // namespace discomfort
