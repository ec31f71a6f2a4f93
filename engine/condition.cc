#include "engine/condition.h"

#include <cmath>
#include <deque>
#include <map>

#include <muParser.h>

namespace discomfort::engine {
namespace {

double Modulo(double a, double b) { return std::fmod(a, b); }
double Not(double a) { return a == 0.0 ? 1.0 : 0.0; }

// muparser with Discomfort's extra operators and constants.
void Configure(mu::Parser& parser) {
  parser.DefineOprt("%", Modulo, mu::prMUL_DIV, mu::oaLEFT, true);
  parser.DefineInfixOprt("!", Not);
  parser.DefineConst("true", 1.0);
  parser.DefineConst("false", 0.0);
}

Status ExpressionError(const std::string& expression, const std::string& what) {
  return Status(ErrorCode::kInvalidArgument, "condition '" + expression + "': " + what);
}

// Collects the variables an expression uses without knowing their values yet.
double* CollectVariable(const char* /*name*/, void* storage) {
  auto* slots = static_cast<std::deque<double>*>(storage);
  slots->push_back(0.0);
  return &slots->back();
}

}  // namespace

Result<Condition> Condition::Parse(const std::string& expression) {
  if (expression.find_first_not_of(" \t\n") == std::string::npos) {
    return ExpressionError(expression, "empty expression");
  }
  Condition c;
  c.text_ = expression;
  try {
    mu::Parser parser;
    Configure(parser);
    std::deque<double> slots;
    parser.SetVarFactory(CollectVariable, &slots);
    parser.SetExpr(expression);
    for (const auto& [name, _] : parser.GetUsedVar()) c.variables_.push_back(name);
  } catch (const mu::Parser::exception_type& e) {
    return ExpressionError(expression,
                           e.GetMsg() + " (at position " + std::to_string(e.GetPos()) + ")");
  }
  return c;
}

Condition Condition::FromCallback(Callback callback, std::string description) {
  Condition c;
  c.text_ = std::move(description);
  c.callback_ = std::move(callback);
  return c;
}

Result<bool> Condition::Evaluate(const storage::Context& context) const {
  return Evaluate([&context](const std::string& key) { return context.Get(key); }, context);
}

Result<bool> Condition::Evaluate(const Lookup& lookup, const storage::Context& context) const {
  if (callback_) {
    try {
      return callback_(context);
    } catch (const std::exception& e) {
      return Status(ErrorCode::kInvalidArgument,
                    "condition callback '" + text_ + "' threw: " + e.what());
    }
  }
  std::map<std::string, double> values;
  for (const std::string& name : variables_) {
    auto value = lookup(name);
    if (!value.ok()) {
      return ExpressionError(text_, "uses '" + name + "', which the context does not hold");
    }
    const nlohmann::json* j = value->is_json() ? &value->json() : nullptr;
    if (j != nullptr && j->is_boolean()) {
      values[name] = j->get<bool>() ? 1.0 : 0.0;
    } else if (j != nullptr && j->is_number()) {
      values[name] = j->get<double>();
    } else if (value->is_tensor() && value->tensor().numel() == 1) {
      values[name] = value->tensor().item<double>();  // a 1-element score tensor
    } else {
      return ExpressionError(
          text_, "'" + name + "' is " + value->Describe() + ", not a number or boolean");
    }
  }
  try {
    mu::Parser parser;
    Configure(parser);
    for (auto& [name, v] : values) parser.DefineVar(name, &v);
    parser.SetExpr(text_);
    const double result = parser.Eval();
    if (std::isnan(result)) return ExpressionError(text_, "evaluates to NaN");
    return result != 0.0;
  } catch (const mu::Parser::exception_type& e) {
    return ExpressionError(text_, e.GetMsg());
  }
}

}  // namespace discomfort::engine
