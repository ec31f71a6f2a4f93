#include "engine/condition.h"

#include <gtest/gtest.h>

#include <ATen/ATen.h>

namespace discomfort::engine {
namespace {

TEST(ConditionTest, EvaluatesExpressionsOverContextScalars) {
  storage::Context context;
  ASSERT_TRUE(context.Put("score", storage::Value::Json(0.95)).ok());
  ASSERT_TRUE(context.Put("iteration", storage::Value::Json(3)).ok());
  ASSERT_TRUE(context.Put("done", storage::Value::Json(false)).ok());
  ASSERT_TRUE(context.Put("loss", storage::Value::Tensor(at::full({1}, 0.25))).ok());
  struct Case {
    const char* text;
    bool expected;
  };
  for (const Case& c :
       {Case{"score > 0.9 && iteration >= 3", true}, Case{"score > 0.99 || iteration < 3", false},
        Case{"iteration % 2 == 1", true}, Case{"!done", true}, Case{"done == false", true},
        Case{"loss < 0.5", true}, Case{"max(score, 2) == 2", true}}) {
    auto cond = Condition::Parse(c.text);
    ASSERT_TRUE(cond.ok()) << c.text << ": " << cond.status().ToString();
    auto value = cond->Evaluate(context);
    ASSERT_TRUE(value.ok()) << c.text << ": " << value.status().ToString();
    EXPECT_EQ(*value, c.expected) << c.text;
  }
}

TEST(ConditionTest, ReportsUsedVariables) {
  auto cond = Condition::Parse("a + b > c");
  ASSERT_TRUE(cond.ok());
  EXPECT_EQ(cond->variables(), (std::vector<std::string>{"a", "b", "c"}));
}

TEST(ConditionTest, SyntaxErrorsAreCaughtAtParseTime) {
  for (const char* bad : {"score >", "(a > 1", "", "a >> 3"}) {
    auto cond = Condition::Parse(bad);
    ASSERT_FALSE(cond.ok()) << bad;
    EXPECT_EQ(cond.status().code(), ErrorCode::kInvalidArgument);
  }
}

TEST(ConditionTest, MissingOrNonNumericVariablesAreNamedErrors) {
  storage::Context context;
  ASSERT_TRUE(context.Put("name", storage::Value::Json("fox")).ok());
  auto missing = Condition::Parse("score > 1")->Evaluate(context);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("'score'"), std::string::npos);
  auto text = Condition::Parse("name > 1")->Evaluate(context);
  ASSERT_FALSE(text.ok());
  EXPECT_NE(text.status().message().find("not a number"), std::string::npos)
      << text.status().message();
}

TEST(ConditionTest, CallbacksReplaceExpressions) {
  storage::Context context;
  int calls = 0;
  auto cond = Condition::FromCallback([&](const storage::Context& c) -> Result<bool> {
    ++calls;
    return c.Contains("x");
  });
  EXPECT_FALSE(*cond.Evaluate(context));
  ASSERT_TRUE(context.Put("x", storage::Value::Json(1)).ok());
  EXPECT_TRUE(*cond.Evaluate(context));
  EXPECT_EQ(calls, 2);
}

}  // namespace
}  // namespace discomfort::engine
