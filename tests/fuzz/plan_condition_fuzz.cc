// Loop plans and conditions on arbitrary bytes. JSON input goes through ParseLoopPlan (which
// checks every `when`/`until` with muparser) and back through LoopPlanToJson; any input is also
// parsed as a condition expression and evaluated against a context holding a few scalars.
#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/condition.h"
#include "engine/plan.h"
#include "storage/context.h"
#include "tests/fuzz/fuzz_util.h"

using namespace discomfort;

namespace {

storage::Context& ScalarContext() {
  static storage::Context* context = [] {
    auto* c = new storage::Context();
    (void)c->Put("iteration", storage::Value::Json(3));
    (void)c->Put("iterations", storage::Value::Json(10));
    (void)c->Put("score", storage::Value::Json(0.5));
    (void)c->Put("done", storage::Value::Json(false));
    (void)c->Put("name", storage::Value::Json("text"));
    return c;
  }();
  return *context;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  nlohmann::json doc = fuzz::ParseOrDiscard(text);
  if (!doc.is_discarded()) {
    auto plan = engine::ParseLoopPlan(doc, "/plans");
    if (plan.ok()) (void)engine::LoopPlanToJson(*plan).dump();
    if (doc.is_string()) {
      auto c = engine::Condition::Parse(doc.get<std::string>());
      if (c.ok()) (void)c->Evaluate(ScalarContext());
    }
  }
  if (size <= 4096) {
    auto c = engine::Condition::Parse(text);
    if (c.ok()) (void)c->Evaluate(ScalarContext());
  }
  return 0;
}
