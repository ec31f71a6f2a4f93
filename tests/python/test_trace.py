"""The run trace (Chrome trace-event JSON) of a real loop through the real ComfyUI, and result.report()
from the package: spans pair up and nest on every track, ComfyUI's nodes appear by class and id,
spills and PNG encodes are recorded."""

import asyncio
import json
import os
from collections import defaultdict

import torch

from conftest import REPO

FEEDBACK = os.path.join(REPO, "examples", "feedback_loop", "feedback.json")


def validate_trace(path):
    """What Perfetto needs: B/E pairs nest per (pid, tid); X spans have a non-negative duration;
    every event is named. Returns the events."""
    with open(path) as f:
        events = json.load(f)["traceEvents"]
    stacks = defaultdict(list)
    for e in events:
        assert isinstance(e.get("name"), str) and e["name"], e
        if e["ph"] == "M":
            continue
        assert isinstance(e["ts"], int), e
        key = (e["pid"], e["tid"])
        if e["ph"] == "B":
            stacks[key].append(e["name"])
        elif e["ph"] == "E":
            assert stacks[key] and stacks[key][-1] == e["name"], f"unbalanced end {e}"
            stacks[key].pop()
        elif e["ph"] == "X":
            assert e["dur"] >= 0, e
    assert all(not s for s in stacks.values()), "spans left open"
    return events


def test_a_real_loop_trace_and_report(d, tmp_path):
    frame = torch.rand(1, 48, 48, 3)
    with d.Context(max_ram_gb=0) as ctx:  # every tensor spills when stored: spills and reloads traced
        ctx.save("frame", frame)
        trace = tmp_path / "trace.json"
        result = asyncio.run(d.run_detailed([FEEDBACK], context=ctx, iterations=3, output_dir=str(tmp_path / "out"),
                                            trace=str(trace), report=True))
    events = validate_trace(trace)
    names = {e["name"] for e in events}
    assert {"iteration 0", "iteration 2", "stage main", "workflow feedback.json"} <= names
    nodes = [e for e in events if e.get("cat") == "node"]
    assert {"ImageBlur #2", "ImageSharpen #3", "ImageFlip #4"} <= {e["name"] for e in nodes}
    assert all(e["args"]["class_type"] for e in nodes)
    assert any(e.get("cat") == "png" for e in events)
    assert any(e.get("cat") == "spill" and e["args"]["bytes"] == 48 * 48 * 3 * 4 for e in events)
    assert any(e.get("cat") == "reload" for e in events)
    report = result.report()
    assert report == str(tmp_path / "out" / "report.html")
    with open(report) as f:
        html = f.read()
    assert html.lstrip().lower().startswith("<!doctype html") and "frame" in html


def test_report_needs_report_true(d, tmp_path):
    import discomfort
    with d.Context() as ctx:
        ctx.save("frame", torch.rand(1, 8, 8, 3))
        result = asyncio.run(d.run_detailed([FEEDBACK], context=ctx, iterations=1))
    try:
        result.report()
    except discomfort.InvalidArgumentError as e:
        assert "report=True" in str(e)
    else:
        raise AssertionError("report() without report=True must say what to pass")
