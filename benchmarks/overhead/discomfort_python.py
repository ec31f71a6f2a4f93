"""Contender 1b: Discomfort's Python package (the in-process API that replaces the original's), on the
same ported workflow the CLI runs. Per-iteration times come from run_detailed's reports.

    PYTHONPATH=build/release/python python discomfort_python.py --seed seed.png --iterations N --warmup W --work DIR --result out.json --final out.npy
"""

import argparse
import asyncio
import json
import os
import sys
import time

T_LAUNCH = time.time()
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from common import DEVICE, ON_CPU, extra_nodes, load_rgb_float  # noqa: E402
from workflow import PORT, WORKFLOW  # noqa: E402


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", required=True)
    ap.add_argument("--iterations", type=int, required=True)
    ap.add_argument("--warmup", type=int, default=0)
    ap.add_argument("--work", required=True)
    ap.add_argument("--result", required=True)
    ap.add_argument("--final", required=True)
    a = ap.parse_args()

    import torch
    from discomfort import Discomfort
    d = await Discomfort.create(work_dir=a.work, cpu=ON_CPU, extra_nodes=extra_nodes())
    t_ready = time.time()
    with d.Context() as ctx:
        ctx.save(PORT, torch.from_numpy(load_rgb_float(a.seed)).to(DEVICE))
        if a.warmup:
            await d.run_detailed([WORKFLOW], context=ctx, iterations=a.warmup)
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        res = await d.run_detailed([WORKFLOW], context=ctx, iterations=a.iterations)
        wall = time.perf_counter() - t0
        cpu = (time.process_time() - cpu0) / a.iterations
        times = [r["seconds"] for r in res["reports"]]
        assert len(times) == a.iterations, len(times)
        import numpy as np
        np.save(a.final, ctx.load(PORT).cpu().numpy())
    await d.shutdown()
    with open(a.result, "w") as f:
        json.dump({"launch": T_LAUNCH, "ready": t_ready, "startup_s": t_ready - T_LAUNCH, "warmup": a.warmup,
                   "iteration_s": times, "loop_wall_s": wall, "cpu_per_iteration_s": cpu}, f)


if __name__ == "__main__":
    asyncio.run(main())
