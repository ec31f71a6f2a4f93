"""In-process contenders of the large-model scenario, one fresh process per run:

  --contender discomfort_python : the Discomfort package (run_plan for (a), run_detailed over both workflows for (b))
  --contender plain_python      : ComfyUI imported as a library, one PromptExecutor, values in a dict
  --scenario loop | handoff     : (a) N sampling iterations carrying the latent; (b) loader workflow -> sampler workflow

Writes a result JSON (startup, per-iteration seconds, peak RSS) and the final image as .npy.
Checkpoint reads are counted by bench_nodes.py into $BENCH_LOAD_LOG; $BENCH_CHECKPOINTS is the generated
checkpoint's folder (bench_nodes.py registers it with folder_paths).
"""

import argparse
import asyncio
import json
import os
import resource
import sys
import time

T_LAUNCH = time.time()
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import workflows as W  # noqa: E402
from common import ON_CPU, extra_nodes, import_comfyui, run_prompt  # noqa: E402

NODES = os.path.join(HERE, "bench_nodes.py")


def peak_rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


async def discomfort_python(a):
    from discomfort import Discomfort
    d = await Discomfort.create(work_dir=a.work, cpu=ON_CPU, extra_nodes=[NODES, *extra_nodes()])
    t_ready = time.time()
    files = W.write_all(os.path.join(a.work, "workflows"))
    with d.Context() as ctx:
        if a.scenario == "loop":
            res = await d.run_plan(files["plan.json"], context=ctx, iterations=a.iterations)
        else:
            res = await d.run_detailed([files["load.json"], files["handoff.json"]], context=ctx,
                                       iterations=a.iterations)
        times = [r["seconds"] for r in res["reports"]]
        final = ctx.load("image")
        import numpy as np
        np.save(a.final, final.float().cpu().numpy())
    await d.shutdown()
    return t_ready, times


def plain_python(a):
    nodes, execution = import_comfyui(a.work)
    import bench_nodes
    nodes.NODE_CLASS_MAPPINGS.update(bench_nodes.NODE_CLASS_MAPPINGS)
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "overhead"))
    from plain_python import Server
    # An LRU cache, not the classic one: the classic cache drops the loader's outputs as soon as a prompt
    # without it runs, and a user who wants the model loaded once would pick this.
    executor = execution.PromptExecutor(Server(), cache_type=execution.CacheType.LRU,
                                        cache_args={"lru": 16, "ram": 0, "ram_inactive": 0})
    t_ready = time.time()

    def load(uid):
        return {"class_type": "BenchDictLoad", "inputs": {"key": uid}}

    def save(uid, src):
        return {"class_type": "BenchDictSave", "inputs": {"value": src, "key": uid}}

    def execute(wf, pid):
        run_prompt(execution, executor, wf, pid)

    times = []
    for i in range(a.iterations):
        t0 = time.perf_counter()
        if a.scenario == "loop":
            if i == 0:
                execute(W.with_nodes(W.init_latent(), load, save), "init")
            execute(W.with_nodes(W.loop_sampler(), load, save), str(i))
        else:
            execute(W.with_nodes(W.handoff_loader(), load, save), f"{i}a")
            execute(W.with_nodes(W.handoff_sampler(), load, save, {"iteration": i}), f"{i}b")
        times.append(time.perf_counter() - t0)
    import numpy as np
    np.save(a.final, bench_nodes.STATE["image"].float().cpu().numpy())
    return t_ready, times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--contender", choices=("discomfort_python", "plain_python"), required=True)
    ap.add_argument("--scenario", choices=("loop", "handoff"), required=True)
    ap.add_argument("--iterations", type=int, required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--result", required=True)
    ap.add_argument("--final", required=True)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    if a.contender == "discomfort_python":
        t_ready, times = asyncio.run(discomfort_python(a))
    else:
        t_ready, times = plain_python(a)
    with open(a.result, "w") as f:
        json.dump({"launch": T_LAUNCH, "ready": t_ready, "startup_s": t_ready - T_LAUNCH, "iteration_s": times,
                   "peak_rss_bytes": peak_rss()}, f)


if __name__ == "__main__":
    main()
