#!/usr/bin/env python3
"""Where Python memory grows during a long loop: tracemalloc snapshots of a real ComfyUI loop
through the discomfort package, compared by allocation site.

The loop is the soak's (examples/feedback_loop: a 1x256x256x3 IMAGE carried through ImageBlur /
ImageSharpen / ImageFlip / ImageBlend), run by `Discomfort.run` in this process with every context
tensor spilled (DISCOMFORT_FORCE_SPILL=1, set here). Snapshots are taken after a warm-up iteration
and at the last one; the sites whose live block count grew most are printed with their tracebacks.

Fails (exit 1) when any single site holds more than --max-blocks-per-iteration new live blocks per
iteration between the two snapshots: something kept per iteration that a loop of a million
iterations would pile up. The soak (soak.py) sees the process from outside (RSS, descriptors,
gc objects); this names the Python line that allocates.

Usage: PYTHONPATH=build/release/python .venv/bin/python tests/reliability/python_growth.py
           [--iterations 600] [--warmup 100] [--top 8]
"""
import argparse
import asyncio
import gc
import os
import sys
import tempfile
import tracemalloc

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=600)
    ap.add_argument("--warmup", type=int, default=100, help="iteration of the first snapshot")
    ap.add_argument("--top", type=int, default=8)
    ap.add_argument("--max-blocks-per-iteration", type=float, default=0.5)
    args = ap.parse_args()
    if not 0 < args.warmup < args.iterations - 1:
        ap.error("--warmup must be between 1 and iterations - 2")
    os.environ["DISCOMFORT_FORCE_SPILL"] = "1"

    import torch
    from discomfort import Discomfort

    last = args.iterations - 1
    snapshots = {}

    def on_iteration(report):
        if report["iteration"] in (args.warmup, last):
            gc.collect()
            snapshots[report["iteration"]] = tracemalloc.take_snapshot()

    async def run(work):
        d = await Discomfort.create(work_dir=work, cpu=True)
        try:
            with d.Context() as ctx:
                ctx.save("frame", torch.rand(1, 256, 256, 3))
                tracemalloc.start(16)
                await d.run([os.path.join(ROOT, "examples", "feedback_loop", "feedback.json")], context=ctx,
                            iterations=args.iterations, on_iteration=on_iteration)
                tracemalloc.stop()
        finally:
            await d.shutdown()

    with tempfile.TemporaryDirectory(prefix="discomfort-growth-") as work:
        asyncio.run(run(work))
    span = last - args.warmup
    stats = snapshots[last].compare_to(snapshots[args.warmup], "traceback")
    by_count = sorted(stats, key=lambda s: s.count_diff, reverse=True)
    print(f"python_growth: {args.iterations} iterations, snapshots at {args.warmup} and {last} "
          f"({span} iterations apart)")
    print(f"net live blocks {sum(s.count_diff for s in stats):+d}, bytes {sum(s.size_diff for s in stats):+d}")
    worst = by_count[0].count_diff / span if by_count else 0.0
    for s in by_count[:args.top]:
        print(f"{s.count_diff:+7d} blocks {s.size_diff:+9d} B  ({s.count_diff / span:+.3f} blocks/iteration)")
        for line in s.traceback.format()[-6:]:
            print("      " + line)
    ok = worst <= args.max_blocks_per_iteration
    print(f"python_growth: {'flat' if ok else 'GROWING'} (worst site {worst:+.3f} blocks/iteration, "
          f"limit {args.max_blocks_per_iteration})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
