// Bridges between the SDK's public types and the engine's: used by the SDK's own files only.
#pragma once

#include <memory>

#include "discomfort/context.h"
#include "discomfort/workflow_builder.h"
#include "graph/node_definitions.h"
#include "storage/context.h"
#include "storage/value.h"

namespace discomfort {

struct ValueAccess {
  static Value Wrap(storage::Value value) {
    Value v;
    v.rep_ = std::make_shared<const storage::Value>(std::move(value));
    return v;
  }
  static const storage::Value& Unwrap(const Value& value) { return *value.rep_; }
};

struct ContextAccess {
  static storage::Context& Of(Context& context) { return *context.impl_; }
  static const storage::Context& Of(const Context& context) { return *context.impl_; }
};

struct BuilderAccess {
  static WorkflowBuilder Make(std::shared_ptr<const graph::NodeDefinitions> defs);
};

}  // namespace discomfort
