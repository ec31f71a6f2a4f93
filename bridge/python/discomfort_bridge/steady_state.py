"""The steady-state execution path: a workflow run again and again on one executor, with only what
changed executed.

ComfyUI's full round per prompt (validate_prompt, a new DynamicPrompt, the cache key of every node
from its whole ancestry and `IS_CHANGED`, a new ExecutionList) costs milliseconds, and in a loop the
prompt never changes: only the values behind the context loaders (their `IS_CHANGED` is the value's
version) and whatever other nodes report through `IS_CHANGED` / `fingerprint_inputs`. So, per slot:

- the first iteration (and any after the prompt, the node registry or the set of context inputs
  changed) is ComfyUI's full round; its validated prompt, outputs and node objects are then taken
  over by a `Plan`;
- every later iteration calls `IS_CHANGED` / `fingerprint_inputs` of the nodes that define them (as
  ComfyUI's IsChangedCache calls them), drops the outputs of the nodes whose cache key that changes
  (the node and everything downstream: exactly the entries ComfyUI's classic cache would stop
  matching), and runs the nodes ComfyUI would visit, in the order its `ExecutionList` would pick them
  (computed once per set of cached nodes), each as `execution.execute` runs it (steady_nodes.py), with
  the same messages, progress state, model tracking and memory-management calls at the same points
  as `PromptExecutor.execute_async`;
- before any full round on a slot that has a plan, the plan's outputs are written back into the
  executor's caches under the keys ComfyUI computes, so the full round finds what it would have found
  had every iteration been a full one (a loaded checkpoint is not loaded again).

Where that cannot be exact the workflow stays on the full round, with the reason logged once (debug,
logger "discomfort"): nodes with lazy inputs (their dependencies are decided while running), nodes
that expand into subgraphs, a cache other than the classic one; and any iteration while external
cache providers are registered.
"""

from __future__ import annotations

import json
import logging
import marshal
import os
from typing import Callable, Iterable, List, Optional, Set

from .steady_loop import run_coroutine
from .steady_nodes import Unsupported, comfy
from .steady_plan import Plan, has_cache_providers

LOG = logging.getLogger("discomfort")

EXACT_ENV = "DISCOMFORT_EXACT_EXECUTOR"


def exact_forced() -> bool:
    """DISCOMFORT_EXACT_EXECUTOR=1 forces ComfyUI's full round for every execution."""
    return os.environ.get(EXACT_ENV, "").strip() not in ("", "0")


def prompt_fingerprint(prompt: dict, inputs: Iterable[str], generation: int) -> tuple:
    """What validation depends on besides the nodes' own state: the prompt as given (marshal keeps
    1, 1.0 and True apart, and version 2 writes no back-references, so equal prompts give equal
    bytes), the context inputs present (a loader without one fails validation) and the node registry."""
    try:
        text = marshal.dumps(prompt, 2)
    except ValueError:  # a value marshal cannot write: a Python caller's object
        text = json.dumps(prompt, default=repr).encode()
    return text, tuple(sorted(inputs)), generation


class SlotState:
    """The fast path's state for one executor slot."""

    def __init__(self):
        self.key = None                    # fingerprint of the prompt the plan (or fallback) is for
        self.plan: Optional[Plan] = None   # while set, it holds all outputs; the executor's caches are empty
        self.fallback: Optional[str] = None
        self.logged: Set[str] = set()

    def note_fallback(self, reason: str, slot: str) -> None:
        self.fallback = reason
        if reason not in self.logged:
            self.logged.add(reason)
            LOG.debug("discomfort: workflow slot %s runs ComfyUI's full round every iteration: %s", slot, reason)

    def hand_back(self, executor) -> None:
        """Before a full round: the plan's outputs go back into the executor's caches."""
        plan, self.plan = self.plan, None
        if plan is None:
            return
        try:
            run_coroutine(plan.write_back(executor))
        except Exception:  # e.g. a node class gone from the registry: the full round starts cold
            LOG.debug("discomfort: could not hand the cached outputs back to the executor", exc_info=True)
            executor.caches = comfy().execution.CacheSet(cache_type=executor.cache_type, cache_args=executor.cache_args)

    def fast_plan(self, key) -> Optional[Plan]:
        """The plan to run this iteration with, or None for a full round."""
        plan = self.plan
        if plan is None or key is None or key != self.key or not plan.classes_current() or has_cache_providers():
            return None
        return plan

    def execute(self, slot: str, executor, prompt: dict, prompt_id: str, extra_data: dict, key,
                plan: Optional[Plan], check: Optional[dict], validate: Callable[[], dict]) -> Optional[dict]:
        """Runs one execution of `prompt`: with `plan` when given, else (or when the plan turns out
        unable to) ComfyUI's full round on the prompt `check` validated. Returns the validation
        result the full round used (None after a plan's iteration)."""
        if plan is not None:
            try:
                run_coroutine(plan.iterate(executor, prompt_id, extra_data))
                return None
            except Unsupported as exc:
                self.note_fallback(str(exc), slot)
                check = validate()
                if not check["ok"]:
                    self.hand_back(executor)
                    return check
        self.hand_back(executor)
        executor.execute(prompt, prompt_id, extra_data, check["outputs"])
        if key is None:
            self.key, self.fallback = None, None
        else:
            self.adopt(slot, executor, key, prompt, check["outputs"])
        return check

    def adopt(self, slot: str, executor, key, prompt: dict, outputs: List[str]) -> None:
        """After a full round with the fast path allowed: a plan takes over the executor's results."""
        if key != self.key:
            self.key, self.fallback = key, None
        if self.fallback is not None:
            return
        execution = comfy().execution
        reason = None
        if executor.cache_type != execution.CacheType.CLASSIC:
            reason = f"the executor's cache is {executor.cache_type}, not the classic one"
        elif getattr(executor.caches.outputs, "subcaches", None):
            expanded = sorted(f"{sub[0]} ({sub[1]})" for sub in executor.caches.outputs.subcaches)
            reason = "nodes expanded into subgraphs: " + ", ".join(expanded)
        elif has_cache_providers():
            # They may go away again: not remembered as the workflow's.
            LOG.debug("discomfort: workflow slot %s: external cache providers are registered, full round", slot)
            return
        plan = None
        if reason is None:
            plan = Plan(prompt, outputs)
            reason = plan.unsupported_reason()
        if reason is not None:
            self.note_fallback(reason, slot)
            return
        plan.adopt(executor)
        self.plan = plan
