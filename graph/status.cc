#include "graph/status.h"

namespace discomfort {

const char* ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return "ok";
    case ErrorCode::kInvalidArgument: return "invalid argument";
    case ErrorCode::kParse: return "parse error";
    case ErrorCode::kNotFound: return "not found";
    case ErrorCode::kAlreadyExists: return "already exists";
    case ErrorCode::kTypeMismatch: return "type mismatch";
    case ErrorCode::kCycle: return "cycle";
    case ErrorCode::kValidation: return "validation error";
    case ErrorCode::kExecution: return "execution error";
    case ErrorCode::kIO: return "I/O error";
    case ErrorCode::kNoSpace: return "no space left";
    case ErrorCode::kCancelled: return "cancelled";
    case ErrorCode::kTimeout: return "timeout";
    case ErrorCode::kPython: return "python error";
    case ErrorCode::kInternal: return "internal error";
  }
  return "unknown error";
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  std::string where;
  auto add = [&where](const std::string& part) {
    if (!where.empty()) where += ", ";
    where += part;
  };
  if (where_.iteration >= 0) add("iteration " + std::to_string(where_.iteration));
  if (!where_.stage.empty()) add("stage " + where_.stage);
  if (!where_.workflow.empty()) add("workflow " + where_.workflow);
  if (!where_.node_id.empty()) {
    std::string node = "node " + where_.node_id;
    if (!where_.class_type.empty()) node += " (" + where_.class_type + ")";
    add(node);
  } else if (!where_.class_type.empty()) {
    add("class " + where_.class_type);
  }
  if (!where_.input_name.empty()) add("input '" + where_.input_name + "'");
  if (!where_.port.empty()) add("port '" + where_.port + "'");
  if (!where_.json_pointer.empty()) add("at " + where_.json_pointer);
  std::string out = ErrorCodeName(code_);
  if (!where.empty()) out += " [" + where + "]";
  out += ": " + message_;
  return out;
}

nlohmann::json Status::ToJson() const {
  nlohmann::json j;
  j["code"] = ErrorCodeName(code_);
  j["message"] = message_;
  auto set = [&j](const char* key, const std::string& v) {
    if (!v.empty()) j[key] = v;
  };
  set("workflow", where_.workflow);
  set("node_id", where_.node_id);
  set("class_type", where_.class_type);
  set("input_name", where_.input_name);
  set("port", where_.port);
  set("json_pointer", where_.json_pointer);
  set("stage", where_.stage);
  if (where_.iteration >= 0) j["iteration"] = where_.iteration;
  set("traceback", traceback_);
  if (!extra_.is_null()) j["extra"] = extra_;
  return j;
}

}  // namespace discomfort
