// Status and Result<T>: expected failures travel as values (LevelDB/DuckDB style). Exceptions are
// reserved for run-ending bugs; every TBB task boundary converts to Status.
#pragma once

#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "discomfort/error_codes.h"

namespace discomfort {

enum class ErrorCode {
#define DISCOMFORT_ERROR_ENUM(code, id, name) code,
  DISCOMFORT_ERROR_CODES(DISCOMFORT_ERROR_ENUM)
#undef DISCOMFORT_ERROR_ENUM
};

// "invalid argument", "execution error", ...: for messages.
const char* ErrorCodeName(ErrorCode code);
// "invalid_argument", "execution", ...: for JSON and the Python exception classes.
const char* ErrorCodeId(ErrorCode code);
// Every code, kOk first, in the table's order.
const std::vector<ErrorCode>& AllErrorCodes();

// Where an error happened. Every field is optional; ToString() prints the ones that are set.
struct ErrorLocation {
  std::string workflow;      // file name or index of the workflow
  std::string node_id;       // ComfyUI node id (API format) or UI node id
  std::string class_type;    // node class
  std::string input_name;    // input / widget name
  std::string port;          // DiscomfortPort unique_id
  std::string json_pointer;  // RFC 6901 pointer into the source document
  int iteration = -1;        // loop iteration, 0-based
  std::string stage;         // loop-plan stage name
};

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(ErrorCode code, std::string message, ErrorLocation where = {})
      : code_(code), message_(std::move(message)), where_(std::move(where)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  const ErrorLocation& where() const { return where_; }
  ErrorLocation& where() { return where_; }
  // Python traceback (list of lines joined) when the error came out of Python.
  const std::string& traceback() const { return traceback_; }
  Status& set_traceback(std::string tb) {
    traceback_ = std::move(tb);
    return *this;
  }
  // Machine-readable extras (e.g. ComfyUI's node_errors payload).
  const nlohmann::json& extra() const { return extra_; }
  Status& set_extra(nlohmann::json extra) {
    extra_ = std::move(extra);
    return *this;
  }
  // Explicitly drops a status whose failure the caller has decided not to act on (best-effort
  // clean-up); the call site says so instead of casting to void.
  void IgnoreError() const {}

  // "validation error [iteration 3, workflow a.json, node 5 (KSampler), input 'steps']: ..."
  std::string ToString() const;
  // {"code": ErrorCodeId, "message", and each location field that is set}
  nlohmann::json ToJson() const;

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
  ErrorLocation where_;
  std::string traceback_;
  nlohmann::json extra_;
};

// A value or the error that prevented it. Never holds an OK status: constructing one from an OK
// Status yields kInternal, so `if (!r.ok())` always means there is an error to report.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : data_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status)                         // NOLINT(google-explicit-constructor)
      : data_(status.ok() ? Status(ErrorCode::kInternal,
                                   "a Result was built from an OK status without a value")
                          : std::move(status)) {}

  bool ok() const { return std::holds_alternative<T>(data_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(data_);
  }
  Status TakeStatus() { return ok() ? Status() : std::move(std::get<Status>(data_)); }
  T& value() & { return std::get<T>(data_); }
  const T& value() const& { return std::get<T>(data_); }
  T&& value() && { return std::get<T>(std::move(data_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> data_;
};

}  // namespace discomfort

#define DISCOMFORT_CONCAT_IMPL(a, b) a##b
#define DISCOMFORT_CONCAT(a, b) DISCOMFORT_CONCAT_IMPL(a, b)

#define DISCOMFORT_RETURN_IF_ERROR(expr)             \
  do {                                               \
    ::discomfort::Status _discomfort_st = (expr);    \
    if (!_discomfort_st.ok()) return _discomfort_st; \
  } while (0)

#define DISCOMFORT_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                     \
  if (!tmp.ok()) return tmp.TakeStatus();                \
  lhs = std::move(tmp).value()

#define DISCOMFORT_ASSIGN_OR_RETURN(lhs, expr) \
  DISCOMFORT_ASSIGN_OR_RETURN_IMPL(DISCOMFORT_CONCAT(_discomfort_r_, __LINE__), lhs, expr)
