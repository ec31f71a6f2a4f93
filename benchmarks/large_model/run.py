"""The large-model scenario, all contenders: a full-size SD1.5-architecture checkpoint with random weights
(benchmarks/models/make_random_models.py, fp16, ~2 GB, generated once and cached), loaded by
CheckpointLoaderSimple.

(a) loop: N sampling iterations (1 step, 64x64 image / 8x8 latent), the latent carried over;
(b) handoff: per iteration, workflow 1 loads the checkpoint and exposes MODEL/CLIP/VAE through OUTPUT
    ports, workflow 2 receives them through INPUT ports and samples (seed = iteration).

Contenders, each a fresh process per scenario, run one after another (a 2 GB model each; never two at once):
Discomfort CLI (`discomfort run --plan` / two workflows), the Discomfort Python package, a plain Python
PromptExecutor loop with values in a dict (LRU cache), and a stock nested ComfyUI server driven over HTTP +
websocket as the original Discomfort drove it: LATENT/IMAGE as base64 torch.save envelopes; in (b) the
MODEL/CLIP/VAE cannot cross the process boundary, so — as the original did — workflow 1 runs (its ref
outputs computed and dropped) and then workflow 2 runs with the pruned loader sub-workflow stitched in
front, its model name coming from a context loader whose IS_CHANGED is NaN.

Measured: median time per iteration after the first, time to the first finished iteration from process
launch (start-up + checkpoint load + one iteration), peak RSS (VmHWM of the contender process; for the
nested server, the server's), and checkpoint reads (bench_nodes.py counts comfy.utils.load_torch_file calls on
the checkpoint in every contender). The final image must agree across contenders.
"""

import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
sys.path.insert(0, BENCH)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(BENCH, "overhead"))
sys.path.insert(0, os.path.join(BENCH, "models"))

from common import (CLI, PYPKG, PYTHON, SINGLE_THREAD_ENV, cli_device_args, read_png_u8, summarize,  # noqa: E402
                    to_png_bytes)
import workflows as W  # noqa: E402
from peak_rss import PeakRss  # noqa: E402

CONTENDERS = {
    "discomfort_cli": "Discomfort CLI (C++ engine)",
    "discomfort_python": "Discomfort Python package",
    "plain_python": "plain Python loop (PromptExecutor + dict, LRU cache)",
    "nested_server": "nested ComfyUI server (HTTP + websocket; loader re-run as the original)",
}
SCENARIOS = {
    "loop": "(a) N sampling iterations, latent carried over",
    "handoff": "(b) loader workflow -> MODEL/CLIP/VAE through ports -> sampler workflow",
}
TIMEOUT = 1800
# PNG levels by which two contenders' final 8-bit images may differ: the same seed and graph on the same
# CPU with one thread give identical floats in practice; 2 levels leave room for kernel order differences.
TOLERANCE = 2


def log(msg):
    print(f"[bench] large_model: {msg}", file=sys.stderr, flush=True)


def count_reads(path):
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return sum(1 for line in f if line.strip() == W.CHECKPOINT)


def run_measured(cmd, work, env, name):
    """Runs one contender's process to completion (stderr to WORK/stderr.log) and returns its peak RSS."""
    with open(os.path.join(work, "stderr.log"), "w") as err:
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        rss = PeakRss(p.pid)
        rc = p.wait(timeout=TIMEOUT)
    peak = rss.stop()
    if rc != 0:
        raise RuntimeError(f"{name} exited {rc}; see {err.name}")
    return peak


def run_cli(work, scenario, n, files, env):
    os.makedirs(work, exist_ok=True)
    events, out = os.path.join(work, "events.jsonl"), os.path.join(work, "out")
    cmd = [CLI, "run"]
    cmd += ["--plan", files["plan.json"]] if scenario == "loop" else [files["load.json"], files["handoff.json"]]
    cmd += ["--iterations", str(n), "--out", out, "--events", events, *cli_device_args(), "--work-dir",
            os.path.join(work, "comfy"), "--nodes", os.path.join(HERE, "bench_nodes.py")]
    launch = time.time()
    peak = run_measured(cmd, work, env, "discomfort CLI")
    ev = [json.loads(line) for line in open(events)]
    start = next(e for e in ev if e["event"] == "run_start")
    done = [e for e in ev if e["event"] == "iteration_done"]
    assert len(done) == n, len(done)
    return {"startup_s": start["time"] - launch, "first_iteration_done_s": done[0]["time"] - launch,
            "iteration_s": [e["seconds"] for e in done], "peak_rss_bytes": peak,
            "final_png": os.path.join(out, f"image_{n - 1:05d}.png")}


def run_inproc(contender, work, scenario, n, env):
    os.makedirs(work, exist_ok=True)
    result, final = os.path.join(work, "result.json"), os.path.join(work, "final.npy")
    cmd = [PYTHON, os.path.join(HERE, "inproc.py"), "--contender", contender, "--scenario", scenario,
           "--iterations", str(n), "--work", os.path.join(work, "comfy"), "--result", result, "--final", final]
    peak = run_measured(cmd, work, env, contender)
    r = json.load(open(result))
    r["first_iteration_done_s"] = r["ready"] - r["launch"] + r["iteration_s"][0]
    r["peak_rss_bytes"] = max(peak, r.get("peak_rss_bytes", 0))
    r["final_npy"] = final
    return r


def _outputs(entry):
    out = {}
    for node_out in entry["outputs"].values():
        if "discomfort_output" in node_out:
            key, envelope = node_out["discomfort_output"]
            out[key] = envelope
    return out


def run_nested(work, scenario, n):
    import numpy as np
    import nested_server
    from bench_nodes import decode

    base = os.path.join(work, "base", "custom_nodes")
    os.makedirs(base, exist_ok=True)
    link = os.path.join(base, "bench_large_model_nodes.py")
    if not os.path.exists(link):
        os.symlink(os.path.join(HERE, "bench_nodes.py"), link)
    launch = time.time()
    proc, url, server_log = nested_server.start_server(work)
    rss = PeakRss(proc.pid)
    startup = time.time() - launch

    def envelope_load(envelope):
        return lambda uid: {"class_type": "BenchEnvelopeLoadLatent", "inputs": {"envelope": envelope}}

    def envelope_save(uid, src):
        return {"class_type": "BenchEnvelopeSaveAny", "inputs": {"value": src, "key": uid}}

    def discard(uid, src):
        return {"class_type": "BenchDiscard", "inputs": {"value": src}}

    def run(prompt):
        entry = nested_server.run_workflow(url, prompt)
        if entry["status"].get("status_str") != "success":
            raise RuntimeError(f"prompt failed: {entry['status']}")
        return _outputs(entry)

    times, first_done, image = [], None, None
    try:
        latent = None
        for i in range(n):
            t0 = time.perf_counter()
            if scenario == "loop":
                if i == 0:
                    latent = run(W.with_nodes(W.init_latent(), None, envelope_save))["latent"]
                outs = run(W.with_nodes(W.loop_sampler(), envelope_load(latent), envelope_save))
                latent = outs["latent"]
            else:
                run(W.with_nodes(W.handoff_loader(), None, discard))  # workflow 1: ref outputs dropped
                # workflow 2 with the pruned loader stitched in front of its model/clip/vae inputs
                wf = W.with_nodes(W.handoff_sampler(), None, envelope_save,
                                  {"model": ["1", 0], "clip": ["1", 1], "vae": ["1", 2], "iteration": i})
                wf["90"] = {"class_type": "BenchContextValue", "inputs": {"value": W.CHECKPOINT}}
                wf["1"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ["90", 0]}}
                outs = run(wf)
            image = decode(outs["image"])
            times.append(time.perf_counter() - t0)
            if first_done is None:
                first_done = time.time() - launch
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        server_log.close()
        peak = rss.stop()
    final = os.path.join(work, "final.npy")
    np.save(final, image.float().cpu().numpy())
    return {"startup_s": startup, "first_iteration_done_s": first_done, "iteration_s": times,
            "peak_rss_bytes": peak, "final_npy": final}


def run(work, n, scenarios=("loop", "handoff")):
    import numpy as np
    import torch
    import make_random_models

    os.makedirs(work, exist_ok=True)
    t0 = time.time()
    models = make_random_models.ensure_models(checkpoint_names=[W.CHECKPOINT], lora_names=[], python=PYTHON)
    log(f"checkpoint ready in {time.time() - t0:.1f} s ({models['checkpoints']})")
    ckpt = os.path.join(models["checkpoints"], W.CHECKPOINT)
    files = W.write_all(os.path.join(work, "workflows"))
    torch.set_num_threads(1)  # the nested server's client (this process)
    results = {"checkpoint": {"file": ckpt, "bytes": os.path.getsize(ckpt),
                              "generator": f"benchmarks/models/make_random_models.py {make_random_models.GENERATOR_VERSION}",
                              "architecture": "SD1.5 (UNet + CLIP-L + VAE), fp16, random weights"},
               "image": f"{W.SIZE}x{W.SIZE}", "steps": W.STEPS, "sampler": f"{W.SAMPLER}/{W.SCHEDULER}", "cfg": W.CFG,
               "iterations": n, "torch_threads": 1, "scenarios": {}}
    for scenario in scenarios:
        res = {"label": SCENARIOS[scenario], "contenders": {}}
        finals = {}
        for k in CONTENDERS:
            d = os.path.join(work, scenario, k)
            os.makedirs(d, exist_ok=True)
            load_log = os.path.join(d, "checkpoint_reads.log")
            env = dict(os.environ, BENCH_LOAD_LOG=load_log, BENCH_CHECKPOINTS=models["checkpoints"],
                       **SINGLE_THREAD_ENV)
            if k == "discomfort_cli":
                r = run_cli(d, scenario, n, files, env)
            elif k == "nested_server":
                saved = dict(os.environ)
                os.environ.update(BENCH_LOAD_LOG=load_log, BENCH_CHECKPOINTS=models["checkpoints"])
                try:
                    r = run_nested(d, scenario, n)
                finally:
                    os.environ.clear()
                    os.environ.update(saved)
            else:
                r = run_inproc(k, d, scenario, n, dict(env, PYTHONPATH=PYPKG))
            its = r["iteration_s"]
            entry = {"label": CONTENDERS[k], "iteration_s": its,
                     "per_iteration": summarize(its[1:] if len(its) > 1 else its),
                     "first_iteration_s": its[0], "time_to_first_iteration_s": r["first_iteration_done_s"],
                     "startup_s": r["startup_s"], "peak_rss_bytes": r["peak_rss_bytes"],
                     "checkpoint_reads": count_reads(load_log)}
            finals[k] = r.get("final_npy") or r.get("final_png")
            res["contenders"][k] = entry
            log(f"{scenario}: {k}: {entry['per_iteration']['median']:.2f} s/iteration, first iteration done "
                f"{entry['time_to_first_iteration_s']:.1f} s after launch, peak RSS "
                f"{entry['peak_rss_bytes'] / 2**30:.2f} GiB, {entry['checkpoint_reads']} checkpoint reads")
        # Outputs must agree, or the comparison is void: every final image as 8-bit vs the plain loop's.
        ref = to_png_bytes(np.load(finals["plain_python"]))
        for k, path in finals.items():
            img = read_png_u8(path) if path.endswith(".png") else to_png_bytes(np.load(path))
            diff = int(np.abs(img.astype(int) - ref.astype(int)).max()) if img.shape == ref.shape else 255
            res["contenders"][k]["output_check"] = {
                "compared": "final image, 8-bit (clip+truncate), vs the plain loop's", "max_abs_diff": diff,
                "tolerance": TOLERANCE, "equal": diff <= TOLERANCE, "image_std": float(ref.std())}
        results["scenarios"][scenario] = res
    return results


if __name__ == "__main__":
    import tempfile
    from common import quick
    n = int(os.environ.get("BENCH_LARGE_ITERATIONS", 3 if quick() else 5))
    only = [s for s in os.environ.get("BENCH_LARGE_SCENARIOS", "loop,handoff").split(",") if s]
    print(json.dumps(run(tempfile.mkdtemp(prefix="bench-large-", dir="/var/tmp"), n, only), indent=1))
