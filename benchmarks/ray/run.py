"""Sweeps on Ray, on this machine: points per second with 1 and 2 actors, Ray's added cost per point
against a local sweep of the same points in the same run, model loads counted (per actor, not per
point), and a projection to N machines (stated as a projection: nothing here ran on N machines).

    .venv/bin/python benchmarks/ray/run.py --work DIR --result OUT.json [--points 32] [--size 512] [--repeats 2]

scripts/bench runs it (BENCH_ONLY=ray) and RESULTS.md shows it (report.py's ray_section).

* Throughput: the sweep scenario's five-node image workflow over N different PNGs. The local sweep
  runs in this process (Discomfort.sweep, pipeline off: an actor runs its points one at a time);
  the Ray sweeps start a local cluster (`local:1`, `local:2`: one worker node per actor, one CPU
  each) through the driver's run_sweep path. Every contender uses one torch thread (Ray gives a
  one-CPU actor OMP_NUM_THREADS=1; this process is set the same), so two actors can use both cores.
  Time = first to last point's result (stamped as each arrives), scaled by N/(N-1), the median of
  the repeats (contenders alternating); start-up (cluster, engines) is reported apart. The outputs
  of every contender are compared pixel for pixel.
* Model loads: a setup workflow loads the generated SD1.5-size checkpoint (benchmarks/models) once
  per actor; each point encodes a prompt with the warm CLIP. Checkpoint reads are counted by
  benchmarks/large_model/bench_nodes.py's counter in every worker.
"""

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time

# One torch thread in this process too (before torch is imported), as Ray gives a one-CPU actor.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
# Appended, not prepended: benchmarks/ holds this folder, named like the `ray` package.
sys.path.append(BENCH)

from common import PYPKG, read_png_u8, summarize  # noqa: E402

WORKFLOW = os.path.join(BENCH, "sweep", "sweep.json")
BENCH_NODES = os.path.join(BENCH, "large_model", "bench_nodes.py")
# 24 points: enough that every actor takes part once its checkpoint is loaded.
PROMPTS = [f"{subject}, {style}" for subject in ("a fox in the snow", "a lighthouse at dusk", "a bowl of ramen",
                                                 "a red bicycle", "a mountain lake", "an old library",
                                                 "a city at night", "a paper boat")
           for style in ("watercolor", "photograph", "woodcut")]


def log(message):
    print(f"[bench ray] {message}", file=sys.stderr, flush=True)


def load_by_path(name, path):
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def driver():
    """distributed.py loaded by path, as the CLI loads it."""
    return load_by_path("discomfort_distributed", os.path.join(PYPKG, "discomfort", "distributed.py"))


def stamped_span(stamps, count):
    return (stamps[-1] - stamps[0]) * count / (count - 1)


def local_sweep(d, images, out, count):
    stamps = []
    t0 = time.perf_counter()
    points = asyncio.run(d.sweep([WORKFLOW], images=images, image_port="image", output_dir=out, pipeline=False,
                                 on_point=lambda p: stamps.append(time.perf_counter())))
    wall = time.perf_counter() - t0
    assert len(points) == count and all(p["ok"] for p in points)
    return {"span_s": stamped_span(stamps, count), "wall_s": wall,
            "point_seconds_sum": sum(p["seconds"] for p in points)}


def ray_sweep(distributed, address, points, out, **extra):
    lines, stamps = [], []

    def on_result(line):
        stamps.append(time.perf_counter())
        lines.append(line)

    config = {"address": address, "points": points, "workflows": [WORKFLOW], "output_dir": out, "cpu": True,
              "image_port": "image", **extra}
    t0 = time.perf_counter()
    summary = distributed.execute(config, lambda: False, on_result, log)
    wall = time.perf_counter() - t0
    assert len(lines) == len(points) and all(line["ok"] for line in lines), [l.get("error") for l in lines]
    return {"span_s": stamped_span(stamps, len(points)), "wall_s": wall, "sweep_s": summary.seconds,
            "point_seconds_sum": sum(line["seconds"] for line in lines), "actors": summary.actors,
            "engine_starts": summary.actor_starts, "startup_s": summary.startup_seconds,
            "points_per_actor": {str(a): sum(1 for line in lines if line["actor"] == a)
                                 for a in sorted({line["actor"] for line in lines})}}


def max_diff(folder_a, folder_b, count):
    worst = 0
    for i in range(count):
        name = os.path.join("point_%05d" % i, "result.png")
        a, b = read_png_u8(os.path.join(folder_a, name)), read_png_u8(os.path.join(folder_b, name))
        worst = max(worst, int(abs(a.astype(int) - b.astype(int)).max()))
    return worst


def model_loads(distributed, work):
    """A setup workflow loads the checkpoint once per actor; the points encode prompts with its CLIP."""
    make_random_models = load_by_path("bench_make_random_models", os.path.join(BENCH, "models", "make_random_models.py"))
    name = load_by_path("bench_large_model_workflows", os.path.join(BENCH, "large_model", "workflows.py")).CHECKPOINT
    folders = make_random_models.ensure_models(checkpoint_names=[name], lora_names=[], python=sys.executable)
    load_log = os.path.join(work, "checkpoint_reads.txt")
    # The local cluster's processes inherit this environment: the counter and the checkpoint folder.
    os.environ.update(BENCH_LOAD_LOG=load_log, BENCH_CHECKPOINTS=folders["checkpoints"])
    setup = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": name}},
             "2": {"class_type": "DiscomfortPort", "inputs": {"unique_id": "clip", "input_data": ["1", 1]}}}
    encode = {"1": {"class_type": "DiscomfortPort", "inputs": {"unique_id": "clip"}},
              "2": {"class_type": "DiscomfortPort", "inputs": {"unique_id": "prompt"}},
              "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 0], "text": ["2", 0]}},
              "4": {"class_type": "DiscomfortPort", "inputs": {"unique_id": "conditioning", "input_data": ["3", 0]}}}
    points = [{"index": i, "params": {"prompt": p}, "image": None} for i, p in enumerate(PROMPTS)]
    lines, stamps = [], []
    config = {"address": "local:2", "points": points, "workflows": [{"name": "encode.json", "workflow": encode}],
              "setup": {"name": "load_checkpoint.json", "workflow": setup}, "cpu": True,
              "extra_nodes": [BENCH_NODES]}
    t0 = time.perf_counter()
    summary = distributed.execute(config, lambda: False, lambda line: (stamps.append(time.perf_counter()),
                                                                       lines.append(line)), log)
    wall = time.perf_counter() - t0
    assert len(lines) == len(points) and all(line["ok"] for line in lines), [l.get("error") for l in lines]
    with open(load_log) as f:
        reads = [line for line in f.read().splitlines() if line]
    return {"checkpoint": name, "points": len(points), "actors": summary.actors,
            "points_per_actor": {str(a): sum(1 for line in lines if line["actor"] == a)
                                 for a in sorted({line["actor"] for line in lines})},
            "engine_starts": summary.actor_starts, "checkpoint_reads": len(reads),
            "startup_with_setup_s": summary.startup_seconds, "wall_s": wall,
            "point_seconds": summarize([line["seconds"] for line in lines])}


def projection(throughput, per_point_s, overhead_s, startup_s):
    """Points per second and the time of a 10,000-point sweep on N machines of this kind, assuming
    they add up (no shared disk, network or driver limit), each with as many actors as cores."""
    per_actor = 1.0 / (per_point_s + max(overhead_s, 0.0))
    rows = []
    for machines in (1, 10, 100):
        actors = machines * throughput["cores"]
        rate = actors * per_actor
        rows.append({"machines": machines, "actors": actors, "points_per_s": rate,
                     "sweep_10000_s": startup_s + 10000 / rate})
    return rows


def _median_run(runs):
    """The run with the median span (its other figures kept with it)."""
    ordered = sorted(runs, key=lambda r: r["span_s"])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["span_s_all"] = [r["span_s"] for r in runs]
    return chosen


def run(work, count=32, size=512, repeats=2):
    os.makedirs(work, exist_ok=True)
    from sweep.sweep import make_images
    images = os.path.join(work, "images")
    make_images(images, count, size)
    image_paths = sorted(os.path.join(images, n) for n in os.listdir(images))
    points = [{"index": i, "params": {}, "image": p} for i, p in enumerate(image_paths)]
    distributed = driver()
    sys.path.insert(0, PYPKG)
    from discomfort import Discomfort
    import torch
    import subprocess
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=BENCH).stdout.strip()
    res = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "commit": commit,
           "points": count, "image": f"{size}x{size} RGB PNG", "workflow": "benchmarks/sweep/sweep.json",
           "torch_threads": torch.get_num_threads(), "cores": os.cpu_count(), "ray_version": None}
    import ray
    res["ray_version"] = ray.__version__

    res["loadavg_at_start"] = list(os.getloadavg())
    t0 = time.perf_counter()
    d = asyncio.run(Discomfort.create(cpu=True, work_dir=os.path.join(work, "comfy")))
    res["local_engine_start_s"] = time.perf_counter() - t0
    local_sweep(d, images, os.path.join(work, "warm"), count)  # first executions warm ComfyUI's caches
    runs = {"local": [], "1": [], "2": []}
    worst = 0
    for r in range(repeats):  # contenders alternate, repeat by repeat: this machine's load drifts
        runs["local"].append(local_sweep(d, images, os.path.join(work, "local"), count))
        log(f"repeat {r + 1}/{repeats}: local {runs['local'][-1]['span_s']:.2f} s for {count} points")
        for actors in ("1", "2"):
            out = os.path.join(work, f"ray_{actors}")
            runs[actors].append(ray_sweep(distributed, f"local:{actors}", points, out))
            worst = max(worst, max_diff(out, os.path.join(work, "local"), count))
            log(f"repeat {r + 1}/{repeats}: ray, {actors} actor(s): {runs[actors][-1]['span_s']:.2f} s for {count} "
                f"points (wall {runs[actors][-1]['wall_s']:.1f} s with cluster and engine start-up)")
    res["repeats"] = repeats
    res["local"] = _median_run(runs["local"])
    res["ray"] = {actors: _median_run(runs[actors]) for actors in ("1", "2")}
    res["max_abs_diff_vs_local"] = worst
    res["outputs_equal"] = worst == 0
    local_per_point = res["local"]["span_s"] / count
    one = res["ray"]["1"]
    res["per_point_s"] = {"local": local_per_point, "ray_1_actor": one["span_s"] / count,
                          "ray_2_actors": res["ray"]["2"]["span_s"] / count}
    # Ray's cost per point two ways: the difference of the spans, and the time outside the engine's
    # execution of the point (decode, encode, and for Ray the call, its result and the driver).
    res["ray_added_per_point_s"] = one["span_s"] / count - local_per_point
    res["outside_execution_per_point_s"] = {
        "local": (res["local"]["span_s"] - res["local"]["point_seconds_sum"]) / count,
        "ray_1_actor": (one["span_s"] - one["point_seconds_sum"]) / count}
    res["points_per_s"] = {"local": count / res["local"]["span_s"], "ray_1_actor": count / one["span_s"],
                           "ray_2_actors": count / res["ray"]["2"]["span_s"]}
    res["speedup_2_vs_1_actor"] = one["span_s"] / res["ray"]["2"]["span_s"]
    res["model_loads"] = model_loads(distributed, work)
    log(f"model loads: {res['model_loads']['checkpoint_reads']} checkpoint reads for "
        f"{res['model_loads']['points']} points on {res['model_loads']['actors']} actors")
    res["loadavg_at_end"] = list(os.getloadavg())
    startup = max(res["model_loads"]["startup_with_setup_s"])
    res["projection"] = {"assumes": "machines like this one, one actor per core, points independent, no shared "
                                    "disk, network or driver limit; per point: the 1-actor Ray time measured here",
                         "rows": projection(res, one["span_s"] / count, 0.0, startup)}
    return res


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=None)
    parser.add_argument("--result", default=None, help="write the JSON result here (default: stdout)")
    parser.add_argument("--points", type=int, default=32)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="bench-ray-")
    res = run(work, args.points, args.size, args.repeats)
    text = json.dumps(res, indent=1)
    if args.result:
        with open(args.result, "w") as f:
            f.write(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
