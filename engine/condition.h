// Loop conditions (`when`, `until`): expressions over the context's scalars, such as
// `score > 0.9 && iteration >= 3`, evaluated by muparser — or callbacks from C++/Python callers.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "discomfort/status.h"
#include "storage/context.h"

namespace discomfort::engine {

class Condition {
 public:
  using Callback = std::function<Result<bool>(const storage::Context&)>;

  // Checks the syntax now; variables are bound to context values at each evaluation.
  // Operators: + - * / ^ % == != < <= > >= && || ! ?: and functions like abs(), min(), max().
  static Result<Condition> Parse(const std::string& expression);
  static Condition FromCallback(Callback callback, std::string description = "callback");

  using Lookup = std::function<Result<storage::Value>(const std::string& key)>;
  // A variable must name a context key holding a number, a boolean or a 1-element tensor.
  Result<bool> Evaluate(const storage::Context& context) const;
  Result<bool> Evaluate(const Lookup& lookup, const storage::Context& context) const;
  const std::string& text() const { return text_; }
  const std::vector<std::string>& variables() const { return variables_; }

 private:
  std::string text_;
  std::vector<std::string> variables_;
  Callback callback_;
};

}  // namespace discomfort::engine
