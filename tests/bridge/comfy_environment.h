// One embedded ComfyUI for the whole bridge test binary (ComfyUI imports once per process).
#pragma once

#include <memory>

#include "bridge/comfy_bridge.h"

namespace discomfort::testing {

// The bridge started by main(); never null inside a test.
bridge::ComfyBridge& Comfy();

}  // namespace discomfort::testing
