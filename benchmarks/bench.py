"""Runs the whole benchmark suite and writes benchmarks/results.json, RESULTS.md and results.png.

    scripts/bench              # full: 200 iterations x 3 repeats, 1 and 4 GiB tensors (8 GiB if RAM allows)
    BENCH_QUICK=1 scripts/bench  # ~30 iterations x 2 repeats, 1 GiB only: for development
    BENCH_ONLY=overhead,sweep scripts/bench   # a subset (the others are kept from the last results.json)
    BENCH_ONLY=large_model scripts/bench      # the large-model scenario alone (5 iterations; quick: 3)
    BENCH_ONLY=ray scripts/bench              # sweeps on a Ray cluster of this machine (benchmarks/ray/run.py)
    BENCH_ONLY=trace scripts/bench            # what --trace costs per iteration (benchmarks/trace_cost)
    BENCH_ONLY=model_spill scripts/bench      # models under the RAM budget: spill/restore, peak RSS (~10 min; quick ~6)
    BENCH_WORK=DIR scripts/bench              # keep the work folder (logs, outputs, events) in DIR
    BENCH_BUILD_DIR=build/x scripts/bench     # use another build's CLI and Python package (default build/release)
"""

import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "overhead"))

from common import PYPKG, PYTHON, SINGLE_THREAD_ENV, machine, mem_available, quick  # noqa: E402
import report  # noqa: E402

RESULTS = os.path.join(HERE, "results.json")


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def main():
    q = quick()
    everything = {"overhead", "handoff", "sweep", "large_model", "ray", "trace", "model_spill"}
    only = [s for s in os.environ.get("BENCH_ONLY", ",".join(sorted(everything))).split(",") if s]
    work = os.environ.get("BENCH_WORK") or tempfile.mkdtemp(prefix="discomfort-bench-", dir=os.environ.get("BENCH_TMP", "/var/tmp"))
    os.makedirs(work, exist_ok=True)
    log(f"work folder {work} ({'quick' if q else 'full'} run: {', '.join(only)})")
    previous = {}
    if os.path.exists(RESULTS) and set(only) != everything:
        with open(RESULTS) as f:
            previous = json.load(f)
    res = {"machine": machine(), "quick": q, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
           "scenarios": previous.get("scenarios", {})}
    t0 = time.time()

    def save():  # after every scenario, so a failure later keeps what was measured
        with open(RESULTS, "w") as f:
            json.dump(res, f, indent=1)

    if "overhead" in only:
        import overhead.run as overhead_run  # noqa: E402
        n, repeats = (30, 2) if q else (int(os.environ.get("BENCH_ITERATIONS", 200)), 3)
        log(f"overhead: {n} iterations + 5 warm-up, {repeats} repeats per contender")
        res["scenarios"]["overhead"] = overhead_run.run(os.path.join(work, "overhead"), n, 5, repeats)
        save()

    if "handoff" in only:
        # handoff.py checks each size against available memory itself (8 GiB needs ~11 GiB free).
        sizes = "1" if q else "1,4,8"
        log(f"handoff: sizes {sizes} GiB")
        out = os.path.join(work, "handoff.json")
        subprocess.run([PYTHON, os.path.join(HERE, "handoff", "handoff.py"), "--work", os.path.join(work, "handoff"),
                        "--sizes-gib", sizes, "--result", out], check=True, timeout=1800,
                       env=dict(os.environ, PYTHONPATH=PYPKG))
        with open(out) as f:
            res["scenarios"]["handoff"] = json.load(f)
        save()

    if "sweep" in only:
        import sweep.sweep as sweep_run  # noqa: E402
        repeats = 1 if q else 2
        log(f"sweep: 32 points, pipeline on / off, {repeats} repeats")
        res["scenarios"]["sweep"] = sweep_run.run(os.path.join(work, "sweep"), 32, 512, repeats)
        save()

    if "large_model" in only:
        sys.path.insert(0, os.path.join(HERE, "large_model"))
        import large_model.run as large_run  # noqa: E402
        n = int(os.environ.get("BENCH_LARGE_ITERATIONS", 3 if q else 5))
        log(f"large_model: SD1.5-size random checkpoint, {n} iterations per contender, scenarios loop and handoff")
        res["scenarios"]["large_model"] = large_run.run(os.path.join(work, "large_model"), n)

    if "ray" in only:  # a process of its own: benchmarks/ray is named like the package it measures
        log("ray: sweeps on a Ray cluster of this machine (1 and 2 actors) against a local sweep, model loads")
        out = os.path.join(work, "ray.json")
        subprocess.run([PYTHON, os.path.join(HERE, "ray", "run.py"), "--work", os.path.join(work, "ray"),
                        "--result", out] + (["--points", "16", "--repeats", "1"] if q else []),
                       check=True, timeout=3600, env=dict(os.environ, PYTHONPATH=PYPKG))
        with open(out) as f:
            res["scenarios"]["ray"] = json.load(f)
        save()

    if "trace" in only:
        sys.path.insert(0, os.path.join(HERE, "trace_cost"))
        import trace_cost.run as trace_run  # noqa: E402
        n, repeats = (30, 2) if q else (200, 3)
        log(f"trace: the overhead workload by the CLI with and without --trace, {n} iterations, {repeats} repeats")
        res["scenarios"]["trace"] = trace_run.run(os.path.join(work, "trace"), n, 5, repeats)
        save()

    if "model_spill" in only:  # a process of its own: it imports the models-budget test's `workflows`
        log("model_spill: an SD1.5 checkpoint's models spilled and restored; the two-model loop with and without "
            "--max-ram-gb")
        cmd = [PYTHON, os.path.join(HERE, "model_spill", "run.py"), "--work", os.path.join(work, "model_spill")]
        out = subprocess.run(cmd + (["--quick"] if q else []), check=True, timeout=3600, stdout=subprocess.PIPE,
                             env=dict(os.environ, PYTHONPATH=PYPKG)).stdout
        res["scenarios"]["model_spill"] = json.loads(out)
        save()

    res["machine"]["loadavg_at_end"] = list(os.getloadavg())
    res["suite_seconds"] = time.time() - t0
    save()
    report.write(res, HERE)
    log(f"wrote {RESULTS}, RESULTS.md, results.png in {res['suite_seconds']:.0f} s")
    if not os.environ.get("BENCH_WORK"):  # a folder given by the user is kept for inspection
        import shutil
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
