"""Where an iteration's time goes: the overhead workflow run with ComfyUI's and Discomfort's functions
instrumented, their time attributed exclusively (a function's own time, without the instrumented
functions it calls) to buckets.

    python breakdown.py --contender plain --seed seed.png --iterations N --warmup W --work DIR --result out.json
    PYTHONPATH=build/release/python python breakdown.py --contender discomfort ...   # the package, steady-state path
    PYTHONPATH=... DISCOMFORT_EXACT_EXECUTOR=1 python breakdown.py --contender discomfort ...  # the package, full round

Deterministic instrumentation instead of a sampling or cProfile run: cProfile adds its cost to every
Python call (so it inflates the many small calls of the executor machinery against the few large ones
of the nodes), while here only the bucket boundaries are timed (two perf_counter calls each, about a
microsecond; the result records how many per iteration). The compute of the nodes is their own
functions (a V3 node's `execute`, a V1 node's FUNCTION): what benchmarks/overhead calls bare compute.
"""

import argparse
import asyncio
import functools
import inspect
import json
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from common import load_rgb_float  # noqa: E402

# Buckets, in the order RESULTS.md lists them.
BUCKETS = {
    "event_loop": "event loops (`asyncio.run` per call; Discomfort: its kept loop)",
    "validate": "`validate_prompt`",
    "is_changed": "`IS_CHANGED` of the nodes (cache keys)",
    "signatures": "cache keys: signatures of every node's ancestry, cache clean-up",
    "execution_list": "execution list (topological sort, staging)",
    "inputs": "node input data (`get_input_data`)",
    "machinery": "node call machinery (list mapping, V3 class clone + lock, result merge)",
    "compute": "the nodes' own compute",
    "progress": "progress state and messages",
    "execute_other": "per-node bookkeeping (`execution.execute`; Discomfort: its node runner)",
    "executor_other": "per-prompt bookkeeping (`execute_async`; Discomfort: its iteration)",
    "steady_state": "Discomfort: invalidation and order",
    "host": "Discomfort: the bridge's `execute` (fingerprint, result)",
    "harness": "the loop itself (plain: the prompt copy; Discomfort: the C++ engine and the package)",
}


class Attribution:
    """Exclusive time per bucket: the time between two bucket boundaries goes to the innermost open
    bucket (per thread; the engine runs executions on its own thread)."""

    def __init__(self):
        self.seconds = {k: 0.0 for k in BUCKETS}
        self.calls = 0
        self.local = threading.local()
        self.lock = threading.Lock()

    def _stack(self):
        stack = getattr(self.local, "stack", None)
        if stack is None:
            stack = self.local.stack = [["harness", time.perf_counter()]]
        return stack

    def enter(self, bucket):
        stack = self._stack()
        now = time.perf_counter()
        top = stack[-1]
        self.seconds[top[0]] += now - top[1]
        stack.append([bucket, now])
        self.calls += 1

    def leave(self):
        stack = self._stack()
        now = time.perf_counter()
        bucket, since = stack.pop()
        self.seconds[bucket] += now - since
        stack[-1][1] = now

    def flush(self):
        stack = self._stack()
        now = time.perf_counter()
        self.seconds[stack[-1][0]] += now - stack[-1][1]
        stack[-1][1] = now

    def reset(self):
        self.flush()
        self.seconds = {k: 0.0 for k in BUCKETS}
        self.calls = 0

    def wrap(self, bucket, fn, inherit=()):
        """fn timed into `bucket`, unless called inside one of the `inherit` buckets (then it stays
        in that one, e.g. get_input_data called for IS_CHANGED)."""
        def target():
            stack = self._stack()
            return stack[-1][0] if stack[-1][0] in inherit else bucket

        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def timed_async(*args, **kwargs):
                self.enter(target())
                try:
                    return await fn(*args, **kwargs)
                finally:
                    self.leave()
            return timed_async

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            self.enter(target())
            try:
                return fn(*args, **kwargs)
            finally:
                self.leave()
        return timed


def patch(owner, name, attribution, bucket, inherit=()):
    raw = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
    if isinstance(raw, classmethod):
        setattr(owner, name, classmethod(attribution.wrap(bucket, raw.__func__, inherit)))
    elif isinstance(raw, staticmethod):
        setattr(owner, name, staticmethod(attribution.wrap(bucket, raw.__func__, inherit)))
    else:
        setattr(owner, name, attribution.wrap(bucket, raw, inherit))


def instrument_comfyui(a, class_types):
    import execution
    from comfy_execution import caching, graph, progress
    asyncio.run = a.wrap("event_loop", asyncio.run)
    patch(execution, "validate_prompt", a, "validate")
    patch(execution.IsChangedCache, "get", a, "is_changed")
    for cls in (caching.BasicCache, caching.LRUCache):
        for name in ("set_prompt", "clean_unused"):
            if name in cls.__dict__:
                patch(cls, name, a, "signatures", inherit=("is_changed",))
    for name in ("add_node", "add_strong_link", "get_ready_nodes", "pop_node"):
        patch(graph.TopologicalSort, name, a, "execution_list")
    for name in ("stage_node_execution", "complete_node_execution", "unstage_node_execution", "ux_friendly_pick_node"):
        patch(graph.ExecutionList, name, a, "execution_list")
    patch(execution, "get_input_data", a, "inputs", inherit=("is_changed",))
    for name in ("get_output_data", "_async_map_node_over_list", "get_output_from_returns"):
        patch(execution, name, a, "machinery", inherit=("is_changed",))
    patch(execution, "execute", a, "execute_other")
    patch(execution.PromptExecutor, "execute_async", a, "executor_other")
    patch(progress, "reset_progress_state", a, "progress")
    for name in ("start_progress", "finish_progress", "update_progress"):
        patch(progress.ProgressRegistry, name, a, "progress")
    import nodes
    for class_type in class_types:
        cls = nodes.NODE_CLASS_MAPPINGS[class_type]
        name = "execute" if hasattr(cls, "define_schema") else cls.FUNCTION
        patch(cls, name, a, "compute")


def instrument_discomfort(a):
    from discomfort_bridge import host, steady_nodes, steady_state
    patch(host.ComfyHost, "execute", a, "host")
    patch(steady_state, "run_coroutine", a, "event_loop")
    patch(steady_state.Plan, "iterate", a, "executor_other")
    patch(steady_state.Plan, "_run_nodes", a, "executor_other")
    for name in ("_invalidate", "order"):
        patch(steady_state.Plan, name, a, "steady_state")
    patch(steady_nodes.IsChangedSpec, "evaluate", a, "is_changed")
    patch(steady_nodes.NodeSpec, "run", a, "execute_other")
    patch(steady_nodes.NodeSpec, "input_data", a, "inputs")


def run_plain(args, a):
    import plain_python as plain
    from common import import_comfyui, run_prompt
    from workflow import PORT, with_loader_saver
    nodes, execution = import_comfyui(args.work)
    import torch
    nodes.NODE_CLASS_MAPPINGS.update({"BenchDictLoad": plain.DictLoad, "BenchDictSave": plain.DictSave})
    executor = execution.PromptExecutor(plain.Server(), cache_type=execution.CacheType.CLASSIC,
                                        cache_args={"lru": 0, "ram": 0, "ram_inactive": 0})
    template = with_loader_saver("BenchDictLoad", {"key": PORT}, "BenchDictSave", {"key": PORT})
    instrument_comfyui(a, {n["class_type"] for n in template.values()})
    plain.STATE[PORT] = torch.from_numpy(load_rgb_float(args.seed))
    times = []
    for i in range(args.warmup + args.iterations):
        if i == args.warmup:
            a.reset()
        t0 = time.perf_counter()
        run_prompt(execution, executor, template, str(i))
        times.append(time.perf_counter() - t0)
    a.flush()
    return times[args.warmup:]


def run_discomfort(args, a):
    from discomfort import Discomfort
    from workflow import PORT, WORKFLOW
    import torch

    async def main():
        d = await Discomfort.create(work_dir=args.work, cpu=True)
        with open(WORKFLOW) as f:
            class_types = {n["class_type"] for n in json.load(f).values()} - {"DiscomfortPort"}
        instrument_comfyui(a, class_types | {"DiscomfortContextLoader", "DiscomfortContextSaver"})
        instrument_discomfort(a)
        with d.Context() as ctx:
            ctx.save(PORT, torch.from_numpy(load_rgb_float(args.seed)))
            await d.run_detailed([WORKFLOW], context=ctx, iterations=args.warmup)
            a.reset()
            res = await d.run_detailed([WORKFLOW], context=ctx, iterations=args.iterations)
        a.flush()
        await d.shutdown()
        return [r["seconds"] for r in res["reports"]]
    return asyncio.run(main())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--contender", choices=("plain", "discomfort"), required=True)
    ap.add_argument("--seed", required=True)
    ap.add_argument("--iterations", type=int, required=True)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--work", required=True)
    ap.add_argument("--result", required=True)
    args = ap.parse_args()
    import torch
    torch.set_num_threads(1)
    a = Attribution()
    started = time.perf_counter()
    times = (run_plain if args.contender == "plain" else run_discomfort)(args, a)
    n = args.iterations
    seconds = {k: v / n for k, v in a.seconds.items()}
    if args.contender == "discomfort":
        # Outside host.execute on the engine thread: the C++ loop; the main thread's time (the
        # package awaiting the run) overlaps it and is not counted.
        seconds["harness"] = max(sum(times) / n - sum(v for k, v in seconds.items() if k != "harness"), 0.0)
    with open(args.result, "w") as f:
        json.dump({"contender": args.contender, "exact": os.environ.get("DISCOMFORT_EXACT_EXECUTOR", "") == "1",
                   "buckets": BUCKETS,
                   "iterations": n, "per_iteration_s": seconds, "timed_calls_per_iteration": a.calls / n,
                   "iteration_median_s": sorted(times)[n // 2], "iteration_mean_s": sum(times) / n,
                   "wall_s": time.perf_counter() - started}, f)


if __name__ == "__main__":
    main()
