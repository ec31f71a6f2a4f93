// A Status located in a workflow: the one-line way graph/ builds the errors it reports.
#pragma once

#include <string>
#include <utility>

#include "discomfort/status.h"

namespace discomfort::graph {

inline Status ErrorAt(ErrorCode code, std::string message, const std::string& source,
                      const std::string& node_id = {}, const std::string& class_type = {},
                      const std::string& pointer = {}) {
  ErrorLocation where;
  where.workflow = source;
  where.node_id = node_id;
  where.class_type = class_type;
  where.json_pointer = pointer;
  return Status(code, std::move(message), std::move(where));
}

}  // namespace discomfort::graph
