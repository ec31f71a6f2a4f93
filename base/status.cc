#include "discomfort/status.h"

namespace discomfort {

const char* ErrorCodeName(ErrorCode code) {
  switch (code) {
#define DISCOMFORT_ERROR_NAME(c, id, name) \
  case ErrorCode::c:                       \
    return name;
    DISCOMFORT_ERROR_CODES(DISCOMFORT_ERROR_NAME)
#undef DISCOMFORT_ERROR_NAME
  }
  return "unknown error";
}

const char* ErrorCodeId(ErrorCode code) {
  switch (code) {
#define DISCOMFORT_ERROR_ID(c, id, name) \
  case ErrorCode::c:                     \
    return id;
    DISCOMFORT_ERROR_CODES(DISCOMFORT_ERROR_ID)
#undef DISCOMFORT_ERROR_ID
  }
  return "internal";
}

const std::vector<ErrorCode>& AllErrorCodes() {
  static const std::vector<ErrorCode> kCodes = {
#define DISCOMFORT_ERROR_LIST(c, id, name) ErrorCode::c,
      DISCOMFORT_ERROR_CODES(DISCOMFORT_ERROR_LIST)
#undef DISCOMFORT_ERROR_LIST
  };
  return kCodes;
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
  j["code"] = ErrorCodeId(code_);
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
