"""What a trace costs: the overhead workload (benchmarks/overhead, five nodes on a 64x64 image) run by
the Discomfort CLI with and without `--trace`, interleaved repeat by repeat so that load from other
processes falls on both alike. Per iteration: the median of iteration_done.seconds after the warm-up,
the difference between the two, and the trace's bytes per iteration. The trace written is checked
for balanced spans (a viewer would refuse it otherwise)."""

import json
import os
import statistics
import subprocess
import sys
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "overhead"))

from common import CLI, SINGLE_THREAD_ENV  # noqa: E402
from run import make_seed  # noqa: E402  (benchmarks/overhead/run.py)
from workflow import PORT, WORKFLOW  # noqa: E402

TIMEOUT = 900


def iteration_seconds(events_path, warmup):
    times = []
    with open(events_path) as f:
        for line in f:
            e = json.loads(line)
            if e.get("event") == "iteration_done" and e["iteration"] >= warmup:
                times.append(e["seconds"])
    return times


def balanced(trace_path):
    with open(trace_path) as f:
        events = json.load(f)["traceEvents"]
    stacks = defaultdict(list)
    for e in events:
        if e["ph"] == "B":
            stacks[(e["pid"], e["tid"])].append(e["name"])
        elif e["ph"] == "E":
            stack = stacks[(e["pid"], e["tid"])]
            if not stack or stack.pop() != e["name"]:
                return False, len(events)
    return all(not s for s in stacks.values()), len(events)


def one(work, seed, n, warmup, traced, env):
    os.makedirs(work, exist_ok=True)
    events = os.path.join(work, "events.jsonl")
    cmd = [CLI, "run", WORKFLOW, "--iterations", str(warmup + n), "--set", f"{PORT}=@{seed}", "--cpu",
           "--events", events, "--work-dir", os.path.join(work, "comfy")]
    trace = os.path.join(work, "trace.json")
    if traced:
        cmd += ["--trace", trace]
    subprocess.run(cmd, env=env, check=True, timeout=TIMEOUT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result = {"seconds": iteration_seconds(events, warmup)}
    if traced:
        ok, count = balanced(trace)
        result.update(trace_bytes=os.path.getsize(trace), trace_events=count, trace_balanced=ok)
    return result


def run(work, n=200, warmup=5, repeats=3):
    os.makedirs(work, exist_ok=True)
    seed = os.path.join(work, "seed.png")
    make_seed(seed)
    env = dict(os.environ, **SINGLE_THREAD_ENV)
    runs = {"plain": [], "traced": []}
    for r in range(repeats):
        for traced in (False, True):
            runs["traced" if traced else "plain"].append(
                one(os.path.join(work, f"{'traced' if traced else 'plain'}-{r}"), seed, n, warmup, traced, env))
    medians = {k: statistics.median(statistics.median(x["seconds"]) for x in v) for k, v in runs.items()}
    traced = runs["traced"]
    return {
        "iterations": n, "warmup": warmup, "repeats": repeats,
        "median_s": medians,
        "cost_per_iteration_s": medians["traced"] - medians["plain"],
        "ratio": medians["traced"] / medians["plain"],
        "trace_bytes_per_iteration": statistics.median(x["trace_bytes"] / (n + warmup) for x in traced),
        "trace_events_per_iteration": statistics.median(x["trace_events"] / (n + warmup) for x in traced),
        "traces_balanced": all(x["trace_balanced"] for x in traced),
        "repeat_medians_s": {k: [statistics.median(x["seconds"]) for x in v] for k, v in runs.items()},
    }


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", required=True)
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--result")
    args = parser.parse_args()
    result = run(args.work, args.n, 5, args.repeats)
    text = json.dumps(result, indent=1)
    if args.result:
        with open(args.result, "w") as f:
            f.write(text)
    print(text)
