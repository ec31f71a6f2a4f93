"""The overhead workload, all contenders in one go, interleaved repeat by repeat so that load from
other processes on the machine falls on every contender alike.

Per repeat: the Discomfort CLI (a fresh process), the Discomfort Python package (a fresh process), the
plain Python loop (a fresh process), then one loop against the nested server (started once, before the
first repeat; its start-up is timed separately). Each loop runs WARMUP + N iterations from the same
64x64 seed; the warm-up iterations are excluded from the statistics."""

import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from common import (CLI, PYPKG, PYTHON, REPO, SINGLE_THREAD_ENV, cli_device_args, load_rgb_float,  # noqa: E402
                    read_png_u8, summarize, to_png_bytes)
from workflow import PORT, WORKFLOW  # noqa: E402

CONTENDERS = {
    "discomfort_cli": "Discomfort CLI (C++ engine)",
    "discomfort_python": "Discomfort Python package",
    "plain_python": "plain Python loop (PromptExecutor + dict)",
    "nested_server": "nested ComfyUI server (HTTP + websocket, base64 torch.save)",
}
SUBPROCESS_TIMEOUT = 600


def make_seed(path, size=64):
    from PIL import Image
    src = os.path.join(REPO, "examples", "feedback_loop", "seed.png")
    Image.open(src).convert("RGB").resize((size, size), Image.BICUBIC).save(path)


def children_cpu():
    import resource
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def cli_process(work, seed, iterations, env):
    os.makedirs(work, exist_ok=True)
    events = os.path.join(work, "events.jsonl")
    out = os.path.join(work, "out")
    launch = time.time()
    t0 = time.perf_counter()
    c0 = children_cpu()
    subprocess.run([CLI, "run", WORKFLOW, "--iterations", str(iterations), "--set", f"{PORT}=@{seed}", "--out", out,
                    "--save-every", "0", "--events", events, *cli_device_args(), "--work-dir", os.path.join(work, "comfy")],
                   env=env,
                   check=True, timeout=SUBPROCESS_TIMEOUT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return launch, time.perf_counter() - t0, children_cpu() - c0, events, out


def run_cli(work, seed, n, warmup, env):
    # CPU time per iteration by difference: a process running only the warm-up iterations, then one
    # running warm-up + n; what the second used beyond the first, divided by n.
    _, _, cpu_short, _, _ = cli_process(os.path.join(work, "short"), seed, warmup, env)
    launch, wall, cpu_long, events, out = cli_process(work, seed, warmup + n, env)
    ev = [json.loads(line) for line in open(events)]
    start = next(e for e in ev if e["event"] == "run_start")
    done = [e for e in ev if e["event"] == "iteration_done"]
    assert len(done) == warmup + n, len(done)
    its = [e["seconds"] for e in done]
    # Start-up: process launch to the engine's run_start (ComfyUI imported, workflow validated, seed decoded).
    startup = start["time"] - launch
    # Per iteration from wall clock alone: from the end of the warm-up to the end, divided evenly.
    loop_wall = done[-1]["time"] - (done[warmup - 1]["time"] if warmup else start["time"])
    final = os.path.join(out, f"{PORT}_{warmup + n - 1:05d}.png")
    return {"startup_s": startup, "process_wall_s": wall, "loop_wall_s": loop_wall,
            "cpu_per_iteration_s": (cpu_long - cpu_short) / n,
            "wall_per_iteration_s": loop_wall / n, "warmup_s": its[:warmup], "iteration_s": its[warmup:],
            "final_png": final}


def run_script(script, work, seed, n, warmup, env):
    os.makedirs(work, exist_ok=True)
    result = os.path.join(work, "result.json")
    final = os.path.join(work, "final.npy")
    t0 = time.perf_counter()
    subprocess.run([PYTHON, os.path.join(HERE, script), "--seed", seed, "--iterations", str(n), "--warmup",
                    str(warmup), "--work", os.path.join(work, "comfy"), "--result", result, "--final", final],
                   check=True, timeout=SUBPROCESS_TIMEOUT, env=env, stdout=subprocess.DEVNULL,
                   stderr=open(os.path.join(work, "stderr.log"), "w"))
    wall = time.perf_counter() - t0
    r = json.load(open(result))
    r["process_wall_s"] = wall
    r["final_npy"] = final
    return r


def run_profiles(work, seed, n, warmup, env, pyenv):
    """breakdown.py: the per-iteration breakdown: the plain loop, and the Python package on the
    steady-state path and on ComfyUI's full round (DISCOMFORT_EXACT_EXECUTOR=1)."""
    runs = {"plain_python": ("plain", env), "discomfort_python": ("discomfort", pyenv),
            "discomfort_python_exact": ("discomfort", dict(pyenv, DISCOMFORT_EXACT_EXECUTOR="1"))}
    out = {}
    for key, (contender, run_env) in runs.items():
        folder = os.path.join(work, "profile", key)
        os.makedirs(folder, exist_ok=True)
        result = os.path.join(folder, "result.json")
        subprocess.run([PYTHON, os.path.join(HERE, "breakdown.py"), "--contender", contender, "--seed", seed,
                        "--iterations", str(n), "--warmup", str(warmup), "--work", os.path.join(folder, "comfy"),
                        "--result", result], check=True, timeout=SUBPROCESS_TIMEOUT, env=run_env,
                       stdout=subprocess.DEVNULL, stderr=open(os.path.join(folder, "stderr.log"), "w"))
        with open(result) as f:
            out[key] = json.load(f)
    return out


def run(work, n, warmup, repeats, log=lambda m: print(m, file=sys.stderr, flush=True), profile=True):
    """profile=False leaves out the instrumented breakdown runs (the GPU check's short budget)."""
    import numpy as np
    import torch
    import nested_server

    os.makedirs(work, exist_ok=True)
    seed = os.path.join(work, "seed64.png")
    make_seed(seed)
    env = dict(os.environ, **SINGLE_THREAD_ENV)
    pyenv = dict(env, PYTHONPATH=PYPKG)
    torch.set_num_threads(1)  # the nested server's client (this process)
    raw = {k: [] for k in CONTENDERS}
    exact_raw = []  # the Python package on ComfyUI's full round (DISCOMFORT_EXACT_EXECUTOR=1), for comparison

    t0 = time.time()
    proc, url, server_log = nested_server.start_server(os.path.join(work, "server"))
    server_startup = time.time() - t0
    log(f"overhead: nested server up in {server_startup:.1f} s")
    try:
        seed_tensor = torch.from_numpy(load_rgb_float(seed))
        for r in range(repeats):
            d = os.path.join(work, f"r{r}")
            raw["discomfort_cli"].append(run_cli(os.path.join(d, "cli"), seed, n, warmup, env))
            raw["discomfort_python"].append(run_script("discomfort_python.py", os.path.join(d, "dpy"), seed, n, warmup, pyenv))
            exact_raw.append(run_script("discomfort_python.py", os.path.join(d, "dpy_exact"), seed, n, warmup,
                                        dict(pyenv, DISCOMFORT_EXACT_EXECUTOR="1")))
            raw["plain_python"].append(run_script("plain_python.py", os.path.join(d, "plain"), seed, n, warmup, env))
            times, final, cpu = nested_server.loop(url, seed_tensor, n, warmup, proc.pid)
            npy = os.path.join(d, "nested_final.npy")
            np.save(npy, final.cpu().numpy())
            raw["nested_server"].append({"startup_s": server_startup, "warmup_s": times[:warmup],
                                         "iteration_s": times[warmup:], "final_npy": npy,
                                         "cpu_per_iteration_s": cpu})
            log(f"overhead: repeat {r + 1}/{repeats}: " + ", ".join(
                f"{k} {1e3 * summarize(v[-1]['iteration_s'])['median']:.1f} ms" for k, v in raw.items()))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        server_log.close()

    # Outputs must agree, or the comparison is void.
    reference = np.load(raw["plain_python"][0]["final_npy"])
    checks = {}
    for k in ("discomfort_python", "plain_python", "nested_server"):
        diffs = [float(np.abs(np.load(x["final_npy"]) - reference).max()) for x in raw[k]]
        checks[k] = {"compared": "final float32 tensor, exact", "max_abs_diff": max(diffs), "equal": max(diffs) == 0.0}
    exact_diffs = [float(np.abs(np.load(x["final_npy"]) - reference).max()) for x in exact_raw]
    ref_png = to_png_bytes(reference)
    diffs = [int(np.abs(read_png_u8(x["final_png"]).astype(int) - ref_png.astype(int)).max()) for x in raw["discomfort_cli"]]
    checks["discomfort_cli"] = {"compared": "final PNG (8-bit, clip+truncate) vs the reference tensor quantized the same way",
                                "max_abs_diff": max(diffs), "equal": max(diffs) == 0}

    bare = [t for x in raw["plain_python"] for t in x["bare_compute_s"]]
    results = {"workflow": os.path.relpath(WORKFLOW, REPO), "image": "64x64 RGB", "iterations": n, "warmup": warmup,
               "repeats": repeats, "torch_threads": 1, "contenders": {},
               "bare_compute": {"what": "the five nodes' functions called directly in a Python loop (no executor, no handoff)",
                                "per_iteration": summarize(bare),
                                "equal_to_executor_result": all(x["bare_compute_equal"] for x in raw["plain_python"])}}
    for k, runs in raw.items():
        pooled = [t for x in runs for t in x["iteration_s"]]
        medians = [summarize(x["iteration_s"])["median"] for x in runs]
        entry = {"label": CONTENDERS[k], "per_iteration": summarize(pooled),
                 "median_of_repeat_medians_s": summarize(medians)["median"], "repeat_medians_s": medians,
                 "cpu_per_iteration_s": summarize([x["cpu_per_iteration_s"] for x in runs])["median"],
                 "startup_s": summarize([x["startup_s"] for x in runs])["median"] if k != "nested_server" else server_startup,
                 "output_check": checks[k]}
        if k == "discomfort_cli":
            entry["wall_per_iteration_s"] = summarize([x["wall_per_iteration_s"] for x in runs])["median"]
            entry["process_wall_s"] = summarize([x["process_wall_s"] for x in runs])["median"]
        results["contenders"][k] = entry
    results["exact_executor"] = {
        "label": "Discomfort Python package, exact executor (DISCOMFORT_EXACT_EXECUTOR=1: ComfyUI's full round)",
        "per_iteration": summarize([t for x in exact_raw for t in x["iteration_s"]]),
        "median_of_repeat_medians_s": summarize([summarize(x["iteration_s"])["median"] for x in exact_raw])["median"],
        "repeat_medians_s": [summarize(x["iteration_s"])["median"] for x in exact_raw],
        "cpu_per_iteration_s": summarize([x["cpu_per_iteration_s"] for x in exact_raw])["median"],
        "output_check": {"compared": "final float32 tensor, exact", "max_abs_diff": max(exact_diffs),
                         "equal": max(exact_diffs) == 0.0}}
    if profile:
        log("overhead: profiling (instrumented runs)")
        results["profile"] = run_profiles(os.path.join(work, "profile"), seed, n, warmup, env, pyenv)
    return results


if __name__ == "__main__":
    import tempfile
    from common import quick
    res = run(tempfile.mkdtemp(prefix="bench-overhead-"), 30 if quick() else 200, 5, 2 if quick() else 3)
    print(json.dumps(res, indent=1))
