"""The steady-state execution path (discomfort_bridge/steady_state.py) against ComfyUI's full round.

Every workflow runs N iterations twice, once with exact=True (validate_prompt + PromptExecutor every
iteration) and once with the fast path, and everything is compared exactly: every iteration's output
values (tensors bit for bit), UI results, the nodes that executed and their order, files written,
and how often each node ran. Most tests drive the Python host as the engine does (the prompt with its
ports rewritten into context loaders and savers, context versions bumped as the engine bumps them);
the others run through the engine itself (the Python package, the CLI) with
DISCOMFORT_EXACT_EXECUTOR=1 against the default.
"""

import asyncio
import copy
import glob
import json
import logging
import math
import os
import subprocess
import time
import uuid

import pytest
import torch

import discomfort
from conftest import REPO, counter_workflow, link, port

OVERHEAD = os.path.join(REPO, "benchmarks", "overhead", "overhead.json")
FEEDBACK = os.path.join(REPO, "examples", "feedback_loop", "feedback.json")
SEED_PNG = os.path.join(REPO, "examples", "feedback_loop", "seed.png")
GOLDEN = os.path.join(REPO, "tests", "data", "ui_to_api")


# ---------------------------------------------------------------- helpers

@pytest.fixture(scope="module")
def host(d):
    from discomfort_bridge.host import HOST
    return HOST


def node_class(name):
    import nodes
    return nodes.NODE_CLASS_MAPPINGS[name]


def calls(label):
    return node_class("DiscomfortTestCalls").CALLS.get(label, 0)


def unique(label):
    return f"{label}-{uuid.uuid4().hex[:8]}"


def loader(uid):
    return {"class_type": "DiscomfortContextLoader", "inputs": {"unique_id": uid}}


def saver(uid, source):
    return {"class_type": "DiscomfortContextSaver", "inputs": {"unique_id": uid, "input_data": source}}


def executable(workflow):
    """The engine's rewrite of a workflow's ports: INPUT -> context loader, OUTPUT -> saver."""
    out = {}
    for node_id, node in copy.deepcopy(workflow).items():
        node.pop("_meta", None)
        if node["class_type"] == "DiscomfortPort":
            uid = node["inputs"]["unique_id"]
            node = saver(uid, node["inputs"]["input_data"]) if "input_data" in node["inputs"] else loader(uid)
        out[node_id] = node
    return out


def host_loop(host, prompt, context, iterations, exact, slot=None, between=None):
    """Runs `prompt` as the engine does: each iteration gets the context's values for its loaders
    (versions bumped whenever a saver stored a value) and the savers' values go back into the
    context. `between(i)` runs before iteration i. Returns one record per iteration."""
    slot = slot or unique("steady-test")
    uids = sorted({node["inputs"]["unique_id"] for node in prompt.values()
                   if node["class_type"] == "DiscomfortContextLoader"})
    values = dict(context)
    versions = {uid: 1 for uid in values}
    records = []
    try:
        for i in range(iterations):
            if between is not None:
                between(i)
            inputs = {uid: values[uid] for uid in uids if uid in values}
            result = host.execute(slot, copy.deepcopy(prompt), inputs, {uid: versions[uid] for uid in inputs},
                                  None, exact=exact)
            records.append({"ok": result["ok"], "stage": result.get("stage"), "error": result.get("error"),
                            "outputs": dict(result.get("outputs", {})), "ui": result.get("ui"),
                            "executed": [node_id for node_id, _ in result.get("node_times", [])]})
            if not result["ok"] or "error" in result:
                break
            for uid, value in result["outputs"].items():
                values[uid] = value
                versions[uid] = versions.get(uid, 0) + 1
    finally:
        host.reset_executor(slot)
    return records


def assert_same(a, b, where="value"):
    """Equal to the bit: tensors by dtype, shape and torch.equal; NaN equals NaN."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        assert isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor), where
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), where
    else:
        assert type(a) is type(b) and a == b, f"{where}: {a!r} != {b!r}"


def both_ways(host, prompt, context, iterations, **kwargs):
    """The records of the full round and of the fast path, asserted the same."""
    exact = host_loop(host, prompt, context, iterations, True, **kwargs)
    fast = host_loop(host, prompt, context, iterations, False, **kwargs)
    assert len(exact) == len(fast)
    for i, (e, f) in enumerate(zip(exact, fast)):
        assert e["ok"] == f["ok"] and e["stage"] == f["stage"], (i, e["error"], f["error"])
        assert_same(e["outputs"], f["outputs"], f"iteration {i} outputs")
        assert e["ui"] == f["ui"], f"iteration {i} ui"
        assert e["executed"] == f["executed"], f"iteration {i}: nodes run {e['executed']} vs {f['executed']}"
    return exact, fast


@pytest.fixture
def counted_validations(host, monkeypatch):
    seen = []
    original = host.validate

    def validate(prompt):
        seen.append(1)
        return original(prompt)
    monkeypatch.setattr(host, "validate", validate)
    return seen


@pytest.fixture
def exact_env(monkeypatch):
    """Sets DISCOMFORT_EXACT_EXECUTOR for engine runs (the host reads it per execution)."""
    def set_exact(exact):
        if exact:
            monkeypatch.setenv("DISCOMFORT_EXACT_EXECUTOR", "1")
        else:
            monkeypatch.delenv("DISCOMFORT_EXACT_EXECUTOR", raising=False)
    return set_exact


def seed_image(size=64):
    from PIL import Image
    import numpy as np
    image = Image.open(SEED_PNG).convert("RGB").resize((size, size), Image.BICUBIC)
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)[None]


# ---------------------------------------------------------------- workflows: bit-identical

def test_overhead_benchmark_workflow_is_bit_identical(host, counted_validations):
    with open(OVERHEAD) as f:
        prompt = executable(json.load(f))
    exact, fast = both_ways(host, prompt, {"frame": seed_image()}, 8)
    assert all(r["ok"] for r in fast)
    # Every iteration changes the image, so every node runs every iteration, in ComfyUI's order.
    assert all(r["executed"] == exact[0]["executed"] and len(r["executed"]) == 7 for r in fast)
    # The full round validated 8 times, the fast path once.
    assert len(counted_validations) == 8 + 1


def test_feedback_demo_through_the_engine_is_bit_identical(d, exact_env):
    frames = {}
    for exact in (True, False):
        exact_env(exact)
        with d.Context() as ctx:
            ctx.save("frame", seed_image(96))
            asyncio.run(d.run([FEEDBACK], context=ctx, iterations=6))
            frames[exact] = ctx.load("frame").clone()
    assert_same(frames[True], frames[False])


@pytest.mark.parametrize("workflow", [FEEDBACK, OVERHEAD], ids=["feedback_demo", "overhead_benchmark"])
def test_the_cli_writes_the_same_pngs_both_ways(tmp_path, workflow):
    cli = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(discomfort.__file__))), "cli", "discomfort")
    if not os.access(cli, os.X_OK):
        pytest.skip(f"no CLI next to the Python package ({cli})")
    pngs = {}
    for exact in (True, False):
        out = tmp_path / f"out-{exact}"
        env = dict(os.environ, DISCOMFORT_EXACT_EXECUTOR="1" if exact else "0")
        subprocess.run([cli, "run", workflow, "--iterations", "5", "--set", f"frame=@{SEED_PNG}", "--out", str(out),
                        "--save-every", "1", "--cpu", "--work-dir", str(tmp_path / f"work-{exact}")],
                       env=env, check=True, timeout=300, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        pngs[exact] = {os.path.basename(p): open(p, "rb").read() for p in sorted(glob.glob(str(out / "*.png")))}
    assert len(pngs[True]) == 5 and pngs[True] == pngs[False]


def test_golden_workflows_that_can_execute_here(host):
    runnable = []
    for path in sorted(glob.glob(os.path.join(GOLDEN, "*.prompt.json"))):
        with open(path) as f:
            prompt = json.load(f)
        check = host.validate(copy.deepcopy(prompt))
        if check["ok"] and not check["node_errors"]:
            runnable.append((os.path.basename(path), prompt))
    if not runnable:
        pytest.skip("none of the golden workflows validates on this machine (their models and images are not installed)")
    for name, prompt in runnable:
        both_ways(host, prompt, {}, 2)


# ---------------------------------------------------------------- cache semantics

def cache_workflow(label, fingerprint_label):
    """counter -> +1 -> counter, next to nodes whose reruns are ComfyUI's cache decisions: a
    loader-like node (constant input), a node with IS_CHANGED NaN, one with a changing fingerprint,
    and a consumer of all three."""
    return {
        "1": loader("counter"),
        "2": {"class_type": "DiscomfortTestAdd", "inputs": {"value": link("1"), "amount": 1}},
        "3": {"class_type": "DiscomfortTestCalls", "inputs": {"label": f"{label}-load"}},
        "4": {"class_type": "DiscomfortTestVolatile", "inputs": {"label": f"{label}-nan", "value": link("3")}},
        "5": {"class_type": "DiscomfortTestFingerprint", "inputs": {"label": fingerprint_label, "value": link("3")}},
        "6": {"class_type": "DiscomfortTestCalls", "inputs": {"label": f"{label}-after-fp", "value": link("5")}},
        "7": {"class_type": "DiscomfortTestPromptEcho", "inputs": {"value": link("4")}},
        "8": saver("counter", link("2")),
        "9": saver("echo", link("7")),
        "10": saver("fp", link("6")),
    }


@pytest.mark.parametrize("exact", [True, False])
def test_nodes_rerun_exactly_when_comfyui_reruns_them(host, exact):
    label = unique("cache")
    fingerprint = f"{label}-fp"
    tokens = node_class("DiscomfortTestFingerprint").TOKENS

    def between(i):  # the fingerprint changes before iterations 3 and 5
        tokens[fingerprint] = {3: "b", 5: "c"}.get(i, tokens.get(fingerprint, "a"))

    records = host_loop(host, cache_workflow(label, fingerprint), {"counter": 0}, 7, exact, between=between)
    assert [r["outputs"]["counter"] for r in records] == list(range(1, 8))
    assert calls(f"{label}-load") == 1                  # a loader: once
    assert calls(f"{label}-nan") == 7                   # IS_CHANGED NaN: every iteration
    assert calls(fingerprint) == 3                      # first, then each time the fingerprint changed
    assert calls(f"{label}-after-fp") == 3              # and what is downstream of it


def test_cache_decisions_and_order_are_the_full_rounds(host):
    label, fingerprint = unique("order"), unique("order-fp")
    tokens = node_class("DiscomfortTestFingerprint").TOKENS

    def between(i):
        tokens[fingerprint] = "x" if i < 4 else "y"

    exact, fast = both_ways(host, cache_workflow(label, fingerprint), {"counter": 10}, 6, between=between)
    assert fast[1]["executed"] != fast[0]["executed"]  # the loader-like node ran only in the first
    # The hidden PROMPT holds every node's IS_CHANGED, as ComfyUI leaves it there.
    echo = json.loads(fast[-1]["outputs"]["echo"])
    assert echo["unique_id"] == "7" and echo["is_changed"]["1"] == repr([6]) and echo["is_changed"]["4"] == "[nan]"


def test_save_image_writes_every_iteration_the_same_files(host):
    import folder_paths
    files = {}
    prefix = unique("steady-save")  # the same for both paths (it is in the PNG's prompt metadata)
    for exact in (True, False):
        prompt = {"1": loader("frame"),
                  "2": {"class_type": "ImageInvert", "inputs": {"image": link("1")}},
                  "3": {"class_type": "SaveImage", "inputs": {"images": link("2"), "filename_prefix": prefix}},
                  "4": saver("frame", link("2"))}
        records = host_loop(host, prompt, {"frame": seed_image(32)}, 5, exact)
        assert all(r["ok"] for r in records)
        written = sorted(glob.glob(os.path.join(folder_paths.get_output_directory(), prefix + "_*.png")))
        files[exact] = [(os.path.basename(p), open(p, "rb").read()) for p in written]
        assert [r["ui"]["3"]["images"][0]["filename"] for r in records] == [name for name, _ in files[exact]]
        for p in written:  # so the second path numbers its files from 1 again
            os.remove(p)
    assert len(files[True]) == 5
    assert files[True] == files[False]  # pixels and metadata (the prompt, IS_CHANGED values included)


def test_an_output_node_after_a_constant_branch_is_served_from_the_cache(host):
    """An output node whose inputs never change runs once; later iterations report its cached UI."""
    label = unique("const")
    runs = {}
    for exact in (True, False):
        prefix = unique("steady-const")
        prompt = {"1": loader("counter"),
                  "2": {"class_type": "DiscomfortTestAdd", "inputs": {"value": link("1"), "amount": 1}},
                  "3": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
                  "4": {"class_type": "SaveImage", "inputs": {"images": link("5"), "filename_prefix": prefix}},
                  "5": {"class_type": "DiscomfortTestCalls", "inputs": {"label": label, "value": link("3")}},
                  "6": saver("counter", link("2"))}
        runs[exact] = host_loop(host, prompt, {"counter": 0}, 4, exact)
        names = [r["ui"]["4"]["images"][0]["filename"] for r in runs[exact]]
        assert names == [prefix + "_00001_.png"] * 4
    assert [r["executed"] for r in runs[True]] == [r["executed"] for r in runs[False]]
    assert "4" in runs[False][0]["executed"] and "4" not in runs[False][1]["executed"]
    assert calls(label) == 2  # once per path


def test_switching_between_exact_and_fast_keeps_the_cache(host):
    """The fast path hands its outputs back before a full round: the loader-like node never runs again."""
    label = unique("switch")
    prompt = cache_workflow(label, unique("switch-fp"))
    slot = unique("switch-slot")
    values = {"counter": 0}
    try:
        for i, exact in enumerate([False, False, True, False, True, True, False, False]):
            result = host.execute(slot, copy.deepcopy(prompt), {"counter": values["counter"]}, {"counter": i + 1},
                                  None, exact=exact)
            assert result["ok"] and "error" not in result, result.get("error")
            values["counter"] = result["outputs"]["counter"]
    finally:
        host.reset_executor(slot)
    assert values["counter"] == 8
    assert calls(f"{label}-load") == 1 and calls(f"{label}-nan") == 8


def test_a_changed_prompt_is_validated_again(host, counted_validations):
    slot = unique("revalidate")
    prompt = counter_workflow(1)
    prompt = executable(prompt)
    try:
        assert host.execute(slot, copy.deepcopy(prompt), {"counter": 0}, {"counter": 1}, None)["outputs"] == {"counter": 1}
        assert host.execute(slot, copy.deepcopy(prompt), {"counter": 1}, {"counter": 2}, None)["outputs"] == {"counter": 2}
        assert len(counted_validations) == 1
        prompt["2"]["inputs"]["amount"] = 5
        assert host.execute(slot, copy.deepcopy(prompt), {"counter": 2}, {"counter": 3}, None)["outputs"] == {"counter": 7}
        assert len(counted_validations) == 2
        prompt["2"]["inputs"]["amount"] = "not a number"
        result = host.execute(slot, copy.deepcopy(prompt), {"counter": 7}, {"counter": 4}, None)
        assert not result["ok"] and result["stage"] == "validation"
        assert "2" in result["node_errors"]
    finally:
        host.reset_executor(slot)


def test_exact_keyword_and_environment_force_the_full_round(host, counted_validations, monkeypatch):
    prompt = executable(counter_workflow(1))
    host_loop(host, prompt, {"counter": 0}, 3, exact=True)
    assert len(counted_validations) == 3
    monkeypatch.setenv("DISCOMFORT_EXACT_EXECUTOR", "1")
    host_loop(host, prompt, {"counter": 0}, 3, exact=False)
    assert len(counted_validations) == 6
    monkeypatch.setenv("DISCOMFORT_EXACT_EXECUTOR", "0")
    host_loop(host, prompt, {"counter": 0}, 3, exact=False)
    assert len(counted_validations) == 7


# ---------------------------------------------------------------- node kinds

def test_list_mapping_is_exact(host):
    prompt = {"1": loader("counter"),
              "2": {"class_type": "DiscomfortTestListSplit", "inputs": {"value": link("1")}},
              "3": {"class_type": "DiscomfortTestAdd", "inputs": {"value": link("2"), "amount": 10}},
              "4": {"class_type": "DiscomfortTestListSum", "inputs": {"values": link("3")}},
              "5": saver("counter", link("4")),
              "6": saver("each", link("3"))}
    exact, fast = both_ways(host, prompt, {"counter": 1}, 4)
    # [1, 2, 3] + 10 summed; a saver maps over a list too (the last call's value stays).
    assert fast[0]["outputs"] == {"counter": 36, "each": 13}


def test_v3_node_with_fingerprint_inputs_is_exact(host):
    if "DiscomfortTestV3Tagged" not in __import__("nodes").NODE_CLASS_MAPPINGS:
        pytest.skip("this ComfyUI has no V3 node API")
    label = unique("v3")
    v3 = node_class("DiscomfortTestV3Tagged")

    def between(i):
        v3.TOKENS[label] = i // 2  # a new fingerprint every second iteration

    prompt = {"1": {"class_type": "DiscomfortTestV3Tagged", "inputs": {"value": 1, "label": label}},
              "2": loader("counter"),
              "3": {"class_type": "DiscomfortTestAdd", "inputs": {"value": link("2"), "amount": 1}},
              "4": saver("counter", link("3")),
              "5": saver("tagged", link("1"))}
    exact, fast = both_ways(host, prompt, {"counter": 0}, 6, between=between)
    assert fast[0]["outputs"]["tagged"] == 1001  # ran through ComfyUI's V3 call, hidden inputs set
    assert v3.CALLS[label] == 2 * 3


def test_async_node_is_exact(host):
    prompt = {"1": loader("counter"),
              "2": {"class_type": "DiscomfortTestAsyncAdd", "inputs": {"value": link("1"), "amount": 3, "seconds": 0.01}},
              "3": {"class_type": "DiscomfortTestAsyncAdd", "inputs": {"value": link("2"), "amount": 1, "seconds": 0.0}},
              "4": saver("counter", link("3"))}
    exact, fast = both_ways(host, prompt, {"counter": 0}, 4)
    assert [r["outputs"]["counter"] for r in fast] == [4, 8, 12, 16]


def test_execution_blocker_is_exact(host):
    prompt = {"1": loader("counter"),
              "2": {"class_type": "DiscomfortTestAdd", "inputs": {"value": link("1"), "amount": 1}},
              "3": {"class_type": "DiscomfortTestBlockAt", "inputs": {"value": link("2"), "block_at": 3}},
              "4": saver("counter", link("2")),
              "5": saver("unblocked", link("3"))}
    exact, fast = both_ways(host, prompt, {"counter": 0}, 5)
    assert [sorted(r["outputs"]) for r in fast] == [["counter", "unblocked"]] * 2 + [["counter"]] + [["counter", "unblocked"]] * 2


@pytest.mark.parametrize("kind", ["lazy", "expansion"])
def test_fallback_to_the_full_round_is_exact_and_logged(host, kind, caplog):
    if kind == "lazy":
        middle = {"class_type": "DiscomfortTestLazyPick", "inputs": {"first": True, "a": link("2"), "b": link("1")}}
    else:
        middle = {"class_type": "DiscomfortTestExpandAdd", "inputs": {"value": link("2"), "amount": 100}}
    prompt = {"1": loader("counter"),
              "2": {"class_type": "DiscomfortTestAdd", "inputs": {"value": link("1"), "amount": 1}},
              "3": middle,
              "4": saver("counter", link("3"))}
    with caplog.at_level(logging.DEBUG, logger="discomfort"):
        exact, fast = both_ways(host, prompt, {"counter": 0}, 4)
    step = 1 if kind == "lazy" else 101
    assert [r["outputs"]["counter"] for r in fast] == [step * (i + 1) for i in range(4)]
    reasons = [r.getMessage() for r in caplog.records if "full round every iteration" in r.getMessage()]
    assert len(reasons) == 1, reasons  # logged once, naming why
    assert ("lazy" in reasons[0]) if kind == "lazy" else ("subgraph" in reasons[0])


# ---------------------------------------------------------------- failures, interrupts, timeouts

@pytest.mark.parametrize("exact", [True, False])
def test_node_raising_mid_loop_keeps_the_last_good_iteration(d, exact_env, exact):
    exact_env(exact)
    with d.Context() as ctx:
        with pytest.raises(discomfort.ExecutionError) as info:
            asyncio.run(d.run([counter_workflow(1, fail_at=4)], inputs={"counter": 0}, iterations=10, context=ctx))
        assert (info.value.node_id, info.value.class_type, info.value.iteration) == ("3", "DiscomfortTestFailAt", 3)
        assert "test failure: value reached 4" in str(info.value) and "test failure" in info.value.traceback
        assert ctx.load("counter") == 3


def test_failure_reports_are_the_full_rounds(host):
    prompt = executable(counter_workflow(1, fail_at=3))
    exact, fast = both_ways(host, prompt, {"counter": 0}, 5)
    e, f = exact[-1]["error"], fast[-1]["error"]
    assert len(fast) == 3 and f is not None
    for key in ("type", "node_id", "class_type", "exception_type", "message"):
        assert e[key] == f[key], key


def hang_workflow(hang_at, seconds=30.0, check_interrupt=True):
    return {"1": port("counter"),
            "2": {"class_type": "DiscomfortTestAdd", "inputs": {"value": link("1"), "amount": 1}},
            "3": {"class_type": "DiscomfortTestHangAt",
                  "inputs": {"value": link("2"), "hang_at": hang_at, "seconds": seconds,
                             "check_interrupt": check_interrupt, "marker": ""}},
            "4": port("counter", link("3"))}


@pytest.mark.parametrize("exact", [True, False])
def test_iteration_timeout_stops_a_steady_state_iteration(d, exact_env, exact):
    exact_env(exact)

    async def main():
        with d.Context() as ctx:
            ctx.save("counter", 0)
            with pytest.raises(discomfort.RunTimeoutError) as info:
                await d.run([hang_workflow(5)], iterations=8, context=ctx, iteration_timeout=1.5)
            return info.value, ctx.load("counter")

    error, counter = asyncio.run(main())
    assert error.node_id == "3" and "iteration 4" in str(error)
    assert counter == 4


@pytest.mark.parametrize("exact", [True, False])
def test_interrupt_stops_a_steady_state_iteration(d, exact_env, exact):
    exact_env(exact)

    async def main():
        token = discomfort.CancelToken()

        async def later():
            await asyncio.sleep(1.5)
            token.cancel()
            d.interrupt()

        with d.Context() as ctx:
            ctx.save("counter", 0)
            asyncio.create_task(later())
            started = time.monotonic()
            with pytest.raises(discomfort.RunCancelledError):
                await d.run([hang_workflow(4)], iterations=8, context=ctx, cancel=token)
            return time.monotonic() - started, ctx.load("counter")

    elapsed, counter = asyncio.run(main())
    assert elapsed < 10 and counter == 3
    assert asyncio.run(d.run([counter_workflow(1)], inputs={"counter": 1})) == {"counter": 2}
