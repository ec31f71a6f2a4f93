"""GB-scale models under the context's RAM budget, and models passed by reference (recipes), with real
random-weight SD1.5 checkpoints (benchmarks/models/make_random_models.py, ~2 GB each, generated once and
cached in ~/.cache/discomfort/models).

Four CLI processes run the two-model loop of workflows.py (A and B used in turns):

1. the reference: no budget, six iterations;
2. the same with --max-ram-gb 1 (less than either model), four iterations, a checkpoint at the end: the
   models count under the budget, the least recently used leaves RAM after each iteration (written once
   and file-backed, or dropped for its recipe) and comes back when sampled again, through ComfyUI's own
   model management;
3. `discomfort resume` of that checkpoint to six iterations, in a new process: the snapshot holds every
   MODEL / CLIP / VAE as its recipe (pruned loader workflow, the LoRA strength frozen in), which the INPUT
   ports run;
4. the budgeted run again, six iterations, the drop path forced (DISCOMFORT_MODEL_SPILL=drop): every model
   leaving RAM is freed for its recipe and rebuilt from it when next sampled.

Checked: every image equals the reference's (8-bit PNGs, exact on this CPU; a small tolerance is allowed);
the budgeted run's peak RSS stays under the budget plus a stated margin (the process's own footprint and
the one model in use, which is pinned) and far under the reference's; each checkpoint file is read at most
once per process unless the events say a model was dropped for its recipe; the resumed process reads each
checkpoint exactly once (the recipes of one checkpoint's MODEL, CLIP and VAE share one load).

Not named test_*.py: its own ctest entry (python.models_budget), a few minutes of CPU. Run:
    PYTHONPATH=build/release/python .venv/bin/python -m pytest -q -p no:cacheprovider \\
        tests/python/models_budget/check_models_budget.py
"""

import json
import os
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "benchmarks", "models"))
sys.path.insert(0, os.path.join(REPO, "benchmarks"))
import make_random_models  # noqa: E402
from peak_rss import PeakRss  # noqa: E402
import workflows as W  # noqa: E402

CLI = os.environ.get("DISCOMFORT_CLI") or os.path.join(REPO, "build", "release", "cli", "discomfort")
BUDGET_GB = 1.0
GIB = 1024 ** 3
# What the budget does not cover: the process itself (Python, torch, ComfyUI: ~1.5 GiB here) and the one
# model a workflow is using (pinned: ~4 GiB for SD1.5 in fp32 on the CPU), plus a checkpoint's loading
# transient (its fp16 file data while the fp32 model is built, ~2 GiB).
MARGIN_GIB = 8.0
# PNG levels two runs' images may differ by (the same graph and seed on the same CPU give identical floats).
TOLERANCE = 2
TIMEOUT = 900


def run_cli(args, work, name, env_extra):
    os.makedirs(work, exist_ok=True)
    loads = os.path.join(work, "loads.txt")
    env = dict(os.environ, DISCOMFORT_TEST_LOAD_LOG=loads, **env_extra)
    with open(os.path.join(work, "stderr.log"), "w") as err:
        started = time.time()
        proc = subprocess.Popen([CLI] + args, env=env, stdout=subprocess.DEVNULL, stderr=err)
        rss = PeakRss(proc.pid)
        try:
            rc = proc.wait(timeout=TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
        peak = rss.stop()
    with open(err.name) as f:
        log = f.read()
    assert rc == 0, f"{name} exited {rc}:\n{log[-4000:]}"
    reads = {}
    if os.path.exists(loads):
        for line in open(loads):
            reads[line.strip()] = reads.get(line.strip(), 0) + 1
    print(f"[models_budget] {name}: {time.time() - started:.0f} s, peak RSS {peak / GIB:.2f} GiB, "
          f"checkpoint reads {reads}", file=sys.stderr)
    return {"peak": peak, "reads": reads, "log": log}


def events_of(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def read_png(path):
    import numpy as np
    from PIL import Image
    with Image.open(path) as im:
        return np.asarray(im, dtype=np.int16)


def assert_same_image(expected, actual):
    a, b = read_png(expected), read_png(actual)
    assert a.shape == b.shape, f"{actual}: {b.shape} vs {a.shape}"
    diff = int(abs(a - b).max())
    assert diff <= TOLERANCE, f"{actual} differs from {expected} by {diff} levels"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    if not os.path.exists(CLI):
        pytest.skip(f"the CLI is not built ({CLI})")
    models = make_random_models.ensure_models(checkpoint_names=[W.CHECKPOINT_A, W.CHECKPOINT_B],
                                              lora_names=[W.LORA])
    root = tmp_path_factory.mktemp("models_budget")
    plan = W.write_all(str(root / "workflows"))
    env = {"DISCOMFORT_TEST_CHECKPOINTS": models["checkpoints"], "DISCOMFORT_TEST_LORAS": models["loras"]}
    common = ["--cpu", "--nodes", os.path.join(HERE, "count_loads.py")]
    return {"root": root, "plan": plan, "env": env, "common": common}


@pytest.fixture(scope="module")
def reference(setup):
    """The unbudgeted run, six iterations: its images and peak RSS are what the others are held to."""
    root, plan, env, common = setup["root"], setup["plan"], setup["env"], setup["common"]
    ref_out, ref_events = str(root / "reference" / "out"), str(root / "reference" / "events.jsonl")
    run = run_cli(["run", "--plan", plan, "--iterations", "6", "--out", ref_out, "--events", ref_events,
                   "--work-dir", str(root / "reference" / "comfy")] + common,
                  str(root / "reference"), "reference (no budget)", env)
    assert run["reads"] == {W.CHECKPOINT_A: 1, W.CHECKPOINT_B: 1}
    run["out"] = ref_out
    return run


def test_two_models_under_a_budget_smaller_than_both_then_resumed_from_recipes(setup, reference):
    root, plan, env, common = setup["root"], setup["plan"], setup["env"], setup["common"]
    ref_out = reference["out"]

    out, events_path, checkpoint = str(root / "budget" / "out"), str(root / "budget" / "events.jsonl"), \
        str(root / "budget" / "checkpoint")
    budget = run_cli(["run", "--plan", plan, "--iterations", "4", "--max-ram-gb", str(BUDGET_GB),
                      "--checkpoint-every", "4", "--checkpoint-dir", checkpoint, "--out", out,
                      "--events", events_path, "--work-dir", str(root / "budget" / "comfy")] + common,
                     str(root / "budget"), f"--max-ram-gb {BUDGET_GB}", env)
    events = events_of(events_path)
    spills = [e for e in events if e["event"] == "model_spill"]
    restores = [e for e in events if e["event"] == "model_restore"]
    print("[models_budget] spills: " + "; ".join(
        f"it{e.get('iteration', '?')} {e['key']} {e['action']} {e['bytes'] / GIB:.2f} GiB in {e['seconds']:.2f} s "
        f"({e['reason']})" for e in spills), file=sys.stderr)

    # The models counted and left RAM: both big models went out at least once and came back to be sampled.
    keys_out = {e["key"] for e in spills}
    assert {"modelA", "modelB"} <= keys_out, f"models spilled: {sorted(keys_out)}"
    rebuilt = {e["port"] for e in events if e["event"] == "recipe_run"}  # dropped, then rebuilt from recipes
    assert {"modelA", "modelB"} <= {e["key"] for e in restores} | rebuilt
    assert all(e["action"] in ("write", "page_out", "drop") and e["reason"] for e in spills)
    dropped = {e["key"] for e in spills if e["action"] == "drop"}
    written = [e for e in spills if e["action"] == "write"]
    # A model written once is only paged out after that: no key is written twice unless it changed.
    assert len({e["key"] for e in written}) == len(written), [e["key"] for e in written]

    # Same images as the unbudgeted run: sampling after a spill goes through ComfyUI's model management.
    for i in range(4):
        assert_same_image(os.path.join(ref_out, f"image_{i:05d}.png"), os.path.join(out, f"image_{i:05d}.png"))

    # RSS: under the budget plus the stated margin, and a model's worth below the unbudgeted run.
    print(f"[models_budget] peak RSS: reference {reference['peak'] / GIB:.2f} GiB, budgeted "
          f"{budget['peak'] / GIB:.2f} GiB (budget {BUDGET_GB} GiB + margin {MARGIN_GIB} GiB)", file=sys.stderr)
    assert budget["peak"] <= (BUDGET_GB + MARGIN_GIB) * GIB
    assert budget["peak"] <= reference["peak"] - 2 * GIB, "the budget saved less than a model's worth of RAM"

    # Each checkpoint read at most once, unless a model from it was dropped for its recipe.
    for name, models in ((W.CHECKPOINT_A, {"modelA", "clipA", "vaeA"}),
                         (W.CHECKPOINT_B, {"modelB", "clipB", "vaeB"})):
        if not models & dropped:
            assert budget["reads"].get(name, 0) == 1, f"{name} read {budget['reads'].get(name, 0)} times"

    # The snapshot holds every model as its recipe (nothing left out), B's with the LoRA strength frozen in.
    with open(os.path.join(checkpoint, "run.json")) as f:
        context_dir = json.load(f)["context"]  # the checkpoint's current context folder
    with open(os.path.join(checkpoint, context_dir, "manifest.json")) as f:
        manifest = json.load(f)
    kinds = {e["key"]: e for e in manifest["entries"]}
    for key in ("modelA", "clipA", "vaeA", "modelB", "clipB", "vaeB"):
        assert kinds[key]["kind"] == "recipe", f"{key}: {kinds[key]['kind']}"
    assert manifest["not_persisted"] == []
    recipe_b = kinds["modelB"]["value"]
    lora = [n for n in recipe_b.values() if n["class_type"] == "LoraLoader"]
    assert len(lora) == 1 and lora[0]["inputs"]["strength_model"] == W.LORA_STRENGTH, recipe_b
    assert not any(n["class_type"] == "DiscomfortPort" and "input_data" not in n["inputs"]
                   for n in recipe_b.values()), "a recipe kept an INPUT port"

    # A new process resumes: the recipes run (one read per checkpoint) and the images match the reference.
    resumed = run_cli(["resume", checkpoint, "--iterations", "6"] + common, str(root / "resumed"),
                      "resume (new process)", env)
    assert resumed["reads"] == {W.CHECKPOINT_A: 1, W.CHECKPOINT_B: 1} or (
        dropped and all(v >= 1 for v in resumed["reads"].values())), resumed["reads"]
    events = events_of(events_path)[len(events):]  # the resumed run appends to the same file
    recipe_runs = [e for e in events if e["event"] == "recipe_run"]
    assert {e["port"] for e in recipe_runs} == {"modelA", "clipA", "vaeA", "modelB", "clipB", "vaeB"}, \
        [e["port"] for e in recipe_runs]
    assert all(e["iteration"] in (4, 5) for e in recipe_runs)
    for i in (4, 5):
        assert_same_image(os.path.join(ref_out, f"image_{i:05d}.png"), os.path.join(out, f"image_{i:05d}.png"))
    assert resumed["peak"] <= (BUDGET_GB + MARGIN_GIB) * GIB


def test_models_dropped_for_their_recipes_are_freed_and_rebuilt_when_read(setup, reference):
    """The drop path forced (DISCOMFORT_MODEL_SPILL=drop): every model that leaves RAM is let go of
    for its recipe (nothing else may hold it: not ComfyUI's caches, not the loop) and is rebuilt
    from that recipe, one checkpoint read per rebuild, when a workflow next reads it."""
    root, plan, env, common = setup["root"], setup["plan"], setup["env"], setup["common"]
    out, events_path = str(root / "drop" / "out"), str(root / "drop" / "events.jsonl")
    run = run_cli(["run", "--plan", plan, "--iterations", "6", "--max-ram-gb", str(BUDGET_GB), "--out", out,
                   "--events", events_path, "--work-dir", str(root / "drop" / "comfy")] + common,
                  str(root / "drop"), f"--max-ram-gb {BUDGET_GB}, drop forced",
                  dict(env, DISCOMFORT_MODEL_SPILL="drop"))
    events = events_of(events_path)
    spills = [e for e in events if e["event"] == "model_spill"]
    rebuilds = [e for e in events if e["event"] == "recipe_run"]
    print("[models_budget] drop: " + "; ".join(f"{e['key']} {e['action']}" for e in spills) + " | rebuilt: "
          + ", ".join(f"it{e['iteration']} {e['port']}" for e in rebuilds), file=sys.stderr)
    dropped = [e for e in spills if e["action"] == "drop"]
    not_dropped = [f"{e['key']}: {e['reason']}" for e in spills if e["action"] != "drop"]
    assert not not_dropped, not_dropped
    assert {"modelA", "clipA", "vaeA", "modelB", "clipB", "vaeB"} <= {e["key"] for e in dropped}
    # Sampled in turns, each model is rebuilt every time its turn comes after the first two iterations.
    assert {(e["iteration"], e["port"]) for e in rebuilds if e["port"] in ("modelA", "modelB")} == \
        {(2, "modelA"), (3, "modelB"), (4, "modelA"), (5, "modelB")}
    # A rebuild reads its checkpoint once for the MODEL, CLIP and VAE it needs (one load, shared).
    assert run["reads"] == {W.CHECKPOINT_A: 3, W.CHECKPOINT_B: 3}, run["reads"]
    for i in range(6):
        assert_same_image(os.path.join(reference["out"], f"image_{i:05d}.png"), os.path.join(out, f"image_{i:05d}.png"))
    # A dropped model is freed: RSS stays under the budget plus the margin (one model in use and a
    # checkpoint load's transient) and a model's worth under the unbudgeted run.
    print(f"[models_budget] drop: peak RSS {run['peak'] / GIB:.2f} GiB (reference {reference['peak'] / GIB:.2f} GiB)",
          file=sys.stderr)
    assert run["peak"] <= (BUDGET_GB + MARGIN_GIB) * GIB
    assert run["peak"] <= reference["peak"] - 2 * GIB, "the dropped models were not freed"
