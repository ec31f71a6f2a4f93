// What users do with workflows as data, in one include: DiscomfortPort discovery on UI workflows,
// execution order, stitching several workflows into one, pruning to the producer of one output,
// Reroute removal and validation that reports every problem. Each lives in its own header.
#pragma once

#include "graph/api_prompt.h"
#include "graph/execution_order.h"
#include "graph/node_definitions.h"
#include "graph/prune.h"
#include "graph/reroutes.h"
#include "graph/stitch.h"
#include "graph/validate.h"
#include "graph/workflow.h"
#include "graph/workflow_ports.h"
