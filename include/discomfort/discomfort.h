// The Discomfort C++ SDK: run ComfyUI workflows in loops, in-process, from a C++ program.
//
//   auto engine = discomfort::Engine::Create().value();   // or check .ok() / .status()
//   discomfort::Context context;
//   (void)context.Put("frame", image_tensor);
//   discomfort::RunOptions run;
//   run.workflows = {discomfort::Workflow::File("loop.json")};
//   run.iterations = 10;
//   auto result = engine->Run(context, run);
//
// Errors are Status / Result values (discomfort/status.h); no exception crosses this API except
// std::bad_alloc and the std::bad_variant_access of reading value() from a failed Result, which is
// a programming error.
#pragma once

#include "discomfort/context.h"
#include "discomfort/engine.h"
#include "discomfort/run.h"
#include "discomfort/status.h"
#include "discomfort/version.h"
#include "discomfort/workflow_builder.h"
