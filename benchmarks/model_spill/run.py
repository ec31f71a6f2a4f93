"""Models under the RAM budget: what a model's spill and restore cost, and what the budget saves.

Two parts, each in processes of their own:

(a) `spill_restore.py`: one SD1.5-class checkpoint's MODEL + CLIP + VAE spilled by the context (written to
    safetensors, swapped for file-backed tensors) and restored (paged in), next to the disk's direct-I/O
    write and cold read of the same bytes and to ComfyUI's way (load the checkpoint again);
(b) the two-model loop of tests/python/models_budget (models A and B sampled in turns, random-weight SD1.5
    checkpoints) by the Discomfort CLI without a budget and with `--max-ram-gb 1`, the model spill forced
    to `write` and to `drop` (DISCOMFORT_MODEL_SPILL), and (full run) left to the cost model (`auto`): peak
    RSS (VmHWM), checkpoint reads, per-iteration time, and what the `model_spill` / `model_restore` /
    `recipe_run` events say was done and how long it took. Beside each run that wrote a model, `dd
    oflag=direct` writes as many bytes as its largest model write. Images are compared with the
    unbudgeted run's. The `drop` run ends with a snapshot that `discomfort resume` continues in a new process
    for two more iterations: every model is then rebuilt from its recipe (`recipe_run` events), the drop
    path's restore, whatever the live run chose.

    .venv/bin/python benchmarks/model_spill/run.py [--quick]   # prints the JSON result on stdout
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
REPO = os.path.dirname(BENCH)
MODELS_BUDGET = os.path.join(REPO, "tests", "python", "models_budget")
sys.path.insert(0, BENCH)
sys.path.insert(0, os.path.join(BENCH, "models"))
sys.path.insert(0, MODELS_BUDGET)

from common import CLI, PYPKG, PYTHON, read_png_u8  # noqa: E402
from handoff.handoff import direct_write  # noqa: E402

BUDGET_GB = 1.0
GIB = 1 << 30
# PNG levels two runs' images may differ by (the same graph and seed on the same CPU give identical floats).
TOLERANCE = 2


def log(msg):
    print(f"[bench] model_spill: {msg}", file=sys.stderr, flush=True)


def summarize_events(events):
    spills = [e for e in events if e["event"] == "model_spill"]
    writes = [e for e in spills if e["action"] == "write"]
    restores = [e for e in events if e["event"] == "model_restore"]
    recipes = [e for e in events if e["event"] == "recipe_run"]
    out = {"iteration_s": [e["seconds"] for e in events if e["event"] == "iteration_done"],
           "actions": {a: sum(1 for e in spills if e["action"] == a) for a in ("write", "page_out", "drop")},
           "spills": [{k: e.get(k) for k in ("key", "action", "bytes", "written_bytes", "seconds", "write_seconds",
                                              "rebuild_seconds", "write_seconds_estimate", "reason")} for e in spills],
           "restores": len(restores), "restored_bytes": sum(e["bytes"] for e in restores),
           "recipe_runs": [{"port": e["port"], "seconds": e["seconds"]} for e in recipes]}
    for action in ("write", "page_out", "drop"):
        of = [e for e in spills if e["action"] == action]
        if of:
            out[f"{action}_seconds_total"] = sum(e["seconds"] for e in of)
    if writes:
        written = sum(e["written_bytes"] for e in writes)
        out["write_GBps"] = written / sum(e["write_seconds"] for e in writes) / 1e9
        largest = max(writes, key=lambda e: e["written_bytes"])
        out["largest_write"] = {"key": largest["key"], "bytes": largest["written_bytes"],
                                "seconds": largest["write_seconds"],
                                "GBps": largest["written_bytes"] / largest["write_seconds"] / 1e9}
    if recipes:
        out["recipe_run_s_median"] = statistics.median(e["seconds"] for e in recipes)
    return out


def compare_images(reference_out, out, n):
    diffs = []
    for i in range(n):
        a = read_png_u8(os.path.join(reference_out, f"image_{i:05d}.png")).astype(int)
        b = read_png_u8(os.path.join(out, f"image_{i:05d}.png")).astype(int)
        diffs.append(int(abs(a - b).max()) if a.shape == b.shape else 255)
    return {"max_abs_diff": max(diffs), "tolerance": TOLERANCE, "equal": max(diffs) <= TOLERANCE}


def loop_runs(work, n, modes, models):
    """(b): the two-model loop without a budget, then under --max-ram-gb with each spill mode."""
    import check_models_budget as budget_test  # its CLI runner: VmHWM polled, checkpoint reads counted
    import workflows as W
    budget_test.CLI = CLI  # this build's (BENCH_BUILD_DIR)
    plan = W.write_all(os.path.join(work, "workflows"))
    env = {"DISCOMFORT_TEST_CHECKPOINTS": models["checkpoints"], "DISCOMFORT_TEST_LORAS": models["loras"]}
    common = ["--cpu", "--nodes", os.path.join(MODELS_BUDGET, "count_loads.py")]
    runs = {}
    for mode in ["none"] + list(modes):
        d = os.path.join(work, mode)
        out, events = os.path.join(d, "out"), os.path.join(d, "events.jsonl")
        args = ["run", "--plan", plan, "--iterations", str(n), "--out", out, "--events", events,
                "--work-dir", os.path.join(d, "comfy")] + common
        extra = dict(env)
        checkpoint = os.path.join(d, "checkpoint")
        if mode != "none":
            args += ["--max-ram-gb", str(BUDGET_GB)]
            extra["DISCOMFORT_MODEL_SPILL"] = mode
        if mode == "drop":  # a snapshot at the end, for the resume below
            args += ["--checkpoint-every", str(n), "--checkpoint-dir", checkpoint]
        t0 = time.time()
        r = budget_test.run_cli(args, d, f"{mode if mode != 'none' else 'no budget'}", extra)
        entry = {"budget_gb": None if mode == "none" else BUDGET_GB, "model_spill_mode": None if mode == "none" else mode,
                 "wall_s": time.time() - t0, "peak_rss_bytes": r["peak"], "checkpoint_reads": r["reads"],
                 "checkpoint_reads_total": sum(r["reads"].values())}
        seen = budget_test.events_of(events)
        entry.update(summarize_events(seen))
        entry["reasons"] = sorted({f"{e['action']}: {e['reason']}" for e in seen if e["event"] == "model_spill"})
        if mode != "none":
            entry["images_vs_no_budget"] = compare_images(os.path.join(work, "none", "out"), out, n)
            if "largest_write" in entry:  # the disk's direct-I/O speed for the same bytes, right after
                entry["direct_write_same_bytes_GBps"] = direct_write(os.path.join(d, "direct_write_probe.bin"),
                                                                     entry["largest_write"]["bytes"])
                entry["write_vs_direct_write"] = entry["largest_write"]["GBps"] / entry["direct_write_same_bytes_GBps"]
        if mode == "drop":
            # The recipe path for certain: a new process resumes the snapshot, which holds every model as its
            # recipe (the pruned loader workflow); each INPUT port that reads one rebuilds it (recipe_run).
            r = budget_test.run_cli(["resume", checkpoint, "--iterations", str(n + 2)] + common,
                                    os.path.join(d, "resume"), "resume from recipes", extra)
            resumed = budget_test.events_of(events)[len(seen):]
            recipes = [e for e in resumed if e["event"] == "recipe_run"]
            entry["resume_from_recipes"] = {
                "peak_rss_bytes": r["peak"], "checkpoint_reads": r["reads"],
                "recipe_runs": [{"port": e["port"], "seconds": e["seconds"]} for e in recipes],
                "recipe_run_s_total": sum(e["seconds"] for e in recipes),
                "iteration_s": [e["seconds"] for e in resumed if e["event"] == "iteration_done"]}
        log(f"loop {mode}: {json.dumps({k: v for k, v in entry.items() if k not in ('spills',)})}")
        runs[mode] = entry
    return runs


def run(work, quick=False):
    import make_random_models
    import workflows as W
    os.makedirs(work, exist_ok=True)
    t0 = time.time()
    models = make_random_models.ensure_models(checkpoint_names=[W.CHECKPOINT_A, W.CHECKPOINT_B], lora_names=[W.LORA],
                                              python=PYTHON)
    log(f"checkpoints ready in {time.time() - t0:.1f} s ({models['checkpoints']})")
    repeats, n = (1, 4) if quick else (2, 5)
    modes = ("write", "drop") if quick else ("write", "drop", "auto")
    log(f"(a) spill and restore of one checkpoint's models, {repeats} round(s)")
    result = os.path.join(work, "spill_restore.json")
    subprocess.run([PYTHON, os.path.join(HERE, "spill_restore.py"), "--work", os.path.join(work, "spill_restore"),
                    "--checkpoints", models["checkpoints"], "--checkpoint", W.CHECKPOINT_A, "--repeats", str(repeats),
                    "--result", result], check=True, timeout=1800, env=dict(os.environ, PYTHONPATH=PYPKG))
    with open(result) as f:
        spill_restore = json.load(f)
    log(f"(b) the two-model loop, {n} iterations: no budget, then --max-ram-gb {BUDGET_GB} with spill modes "
        f"{', '.join(modes)}")
    loops = loop_runs(os.path.join(work, "loop"), n, modes, models)
    return {"checkpoint": {"bytes": spill_restore["checkpoint"]["bytes"],
                           "generator": f"benchmarks/models/make_random_models.py {make_random_models.GENERATOR_VERSION}",
                           "architecture": "SD1.5 (UNet + CLIP-L + VAE), fp16 file, fp32 in RAM on the CPU"},
            "spill_restore": spill_restore, "loop": {"iterations": n, "budget_gb": BUDGET_GB, "runs": loops},
            "seconds": time.time() - t0}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--work")
    a = ap.parse_args()
    print(json.dumps(run(a.work or tempfile.mkdtemp(prefix="bench-model-spill-", dir="/var/tmp"), a.quick), indent=1))
