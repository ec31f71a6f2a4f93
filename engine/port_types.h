// Checks a context value against the type of the INPUT port it is about to feed, so a wrong
// value is an error naming the port before ComfyUI runs, not an exception deep inside a node.
#pragma once

#include "discomfort/status.h"
#include "graph/api_prompt.h"
#include "storage/value.h"

namespace discomfort::engine {

// kTypeMismatch naming the port's unique_id, node, the expected and the actual type, when
// `value` cannot be what `port` declares. Only what the engine can judge without Python is
// checked: INT / FLOAT / BOOLEAN / STRING / COMBO want JSON values of that kind, IMAGE / MASK a
// tensor, ComfyUI's object types (MODEL, LATENT, CONDITIONING ...) anything but a JSON scalar.
// "*", unknown (custom) types, Python objects and recipes are accepted; "A,B" accepts either.
Status CheckPortValue(const graph::Port& port, const storage::Value& value);

// How a value reads in such a message: "STRING \"abc\"", "INT 3", "a float32 tensor [1, 8, 8, 3]".
std::string DescribeValueType(const storage::Value& value);

}  // namespace discomfort::engine
