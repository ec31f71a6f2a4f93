"""What a run left behind (its events and the PNG files in its folder) as the facts a report shows:
iteration times, stage problems, per-node costs, each OUTPUT port's values, sweep points, the error."""

from __future__ import annotations

import json
import os
import re
import statistics
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from .events import Event

# The engine's value descriptions in workflow_done: "tensor Float[1,64,64,3] cpu", "json 0.93",
# "object ModelPatcher", "recipe (12 nodes)", "none".
_TENSOR = re.compile(r"^tensor\s+(\w+)\[([\d,\s]*)\]")
# Run images: <uid>_<iteration, at least 5 digits>[_<batch item>].png (the uid made file-safe).
_RUN_IMAGE = re.compile(r"^(?P<uid>.+)_(?P<iteration>\d{5,})(?:_(?P<batch>\d+))?\.png$")


@dataclass
class Iteration:
    number: int
    seconds: Optional[float]
    ok: bool  # False: it ended with the run's error and committed nothing
    stages_run: List[str] = field(default_factory=list)
    stages_failed: List[str] = field(default_factory=list)


@dataclass
class StageMark:
    iteration: int
    stage: str
    kind: str  # "failed" (on_error skip dropped it), "retry", "skipped" (its `when` was false)
    detail: str = ""


@dataclass
class NodeCost:
    workflow: str
    node: str
    class_type: str
    times: List[float] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.times)

    @property
    def total(self) -> float:
        return sum(self.times)

    @property
    def median(self) -> float:
        return statistics.median(self.times) if self.times else 0.0

    @property
    def max(self) -> float:
        return max(self.times) if self.times else 0.0


@dataclass
class Port:
    uid: str
    kind: str = "other"  # image, number, boolean, string, other
    values: Dict[int, Any] = field(default_factory=dict)  # iteration (sweeps: point) -> value
    images: Dict[int, List[str]] = field(default_factory=dict)  # iteration -> PNG files (batch items)
    description: str = ""  # the last value's description ("tensor float32[1,64,64,3] cpu")


@dataclass
class SweepPoint:
    index: int
    params: Dict[str, Any]
    seconds: Optional[float]
    ok: bool
    outputs: Dict[str, Any]
    images: Dict[str, List[str]]  # uid -> PNG files of this point
    error: Optional[Dict[str, Any]] = None
    image: str = ""  # the input image of an --images sweep


@dataclass
class Run:
    run_dir: str
    kind: str = "run"  # or "sweep"
    planned_iterations: Optional[int] = None
    first_iteration: int = 0
    iterations: List[Iteration] = field(default_factory=list)
    marks: List[StageMark] = field(default_factory=list)
    ports: Dict[str, Port] = field(default_factory=dict)
    node_costs: List[NodeCost] = field(default_factory=list)
    points: List[SweepPoint] = field(default_factory=list)
    error: Optional[Dict[str, Any]] = None
    completed: Optional[int] = None
    stopped_by_until: bool = False
    started: Optional[float] = None
    ended: Optional[float] = None
    checkpoints: int = 0
    until: Optional[str] = None
    notes: List[str] = field(default_factory=list)


def describe_error(error: Optional[Dict[str, Any]]) -> str:
    """The CLI's one-line form: `execution error [iteration 4, stage main, workflow wf.json, node 3
    (KSampler)]: RuntimeError: ...`."""
    if not error:
        return ""
    if not isinstance(error, dict):
        return str(error)
    if error.get("located"):
        return f"{error.get('code', 'error')}: {error.get('message', '')}"
    where = []
    if error.get("iteration") is not None:
        where.append(f"iteration {error['iteration']}")
    for key in ("stage", "workflow"):
        if error.get(key):
            where.append(f"{key} {error[key]}")
    if error.get("node_id"):
        node = f"node {error['node_id']}"
        if error.get("class_type"):
            node += f" ({error['class_type']})"
        where.append(node)
    for key in ("input_name", "port"):
        if error.get(key):
            where.append(f"{'input' if key == 'input_name' else 'port'} '{error[key]}'")
    text = error.get("code") or "error"
    if where:
        text += " [" + ", ".join(where) + "]"
    return f"{text}: {error.get('message', '')}"


def parse_description(description: Any) -> Tuple[str, Any]:
    """(kind, value) of one output as an event describes it: a workflow_done string, a point_done
    value (JSON values by value, tensors as {type, dtype, shape}), or an iteration_done value."""
    if isinstance(description, dict):
        if description.get("type") == "tensor":
            shape = [int(s) for s in description.get("shape", [])]
            return ("image" if _looks_like_image(shape) else "other"), None
        if description.get("type") in ("object", "recipe"):
            return "other", None
        return "other", description
    if not isinstance(description, str) or not description.startswith(("json ", "tensor ", "object ", "recipe", "none")):
        return _kind_of(description), description
    if description.startswith("json "):
        text = description[5:]
        try:
            value = json.loads(text)
        except json.JSONDecodeError:  # the engine cuts descriptions at 60 characters
            return "string", text[1:] if text.startswith('"') else text
        return _kind_of(value), value
    match = _TENSOR.match(description)
    if match:
        shape = [int(s) for s in match.group(2).replace(" ", "").split(",") if s]
        return ("image" if _looks_like_image(shape) else "other"), None
    return "other", None


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "other"


def _looks_like_image(shape: List[int]) -> bool:
    """As the engine decides what to write as PNG: IMAGE [B,H,W,C] with C 1, 3 or 4, or MASK [B,H,W]."""
    if len(shape) == 4:
        return shape[3] in (1, 3, 4) and shape[1] > 0 and shape[2] > 0
    return len(shape) == 3 and shape[1] > 0 and shape[2] > 0 and shape[0] <= 4096


def file_safe(uid: str) -> str:
    """The engine's file-name form of a unique_id."""
    safe = "".join(c if (c.isascii() and c.isalnum()) or c in "-_" else "_" for c in uid)
    return safe or "port"


def build_run(run_dir: str, events: List[Event]) -> Run:
    run = Run(run_dir=run_dir)
    if any(e.get("event") == "point_done" for e in events):
        run.kind = "sweep"
        _read_sweep(run, events)
    else:
        _read_loop(run, events)
    _settle_port_kinds(run)
    return run


def _read_loop(run: Run, events: List[Event]) -> None:
    class_types: Dict[Tuple[str, str], str] = {}
    costs: Dict[Tuple[str, str], NodeCost] = {}
    starts: Dict[int, float] = {}
    # Outputs an iteration produced, committed only when it finishes (a failed iteration commits
    # nothing; a stage skipped after an error drops its outputs).
    pending: Dict[int, Dict[str, Dict[str, Any]]] = {}
    started_once = False
    for e in events:
        kind = e.get("event")
        it = e.get("iteration")
        if kind == "run_start":
            if not started_once:  # later run_starts are resumes of this run
                started_once = True
                run.started = e.get("time")
                run.first_iteration = int(e.get("first_iteration") or 0)
            run.planned_iterations = e.get("iterations", run.planned_iterations)
            if e.get("until"):
                run.until = e["until"]
        elif kind == "iteration_start":
            starts[it] = e.get("time")
            pending[it] = {}
        elif kind == "node_start":
            class_types[(e.get("workflow", ""), str(e.get("node")))] = e.get("class_type", "")
        elif kind == "workflow_done":
            workflow = e.get("workflow", "")
            for timing in e.get("nodes", []):
                key = (workflow, str(timing.get("node")))
                cost = costs.setdefault(key, NodeCost(workflow, key[1], ""))
                cost.times.append(float(timing.get("seconds", 0.0)))
            stage_outputs = pending.setdefault(it, {}).setdefault(e.get("stage", ""), {})
            stage_outputs.update(e.get("outputs", {}))
        elif kind == "stage_skipped":
            run.marks.append(StageMark(it, e.get("stage", ""), "skipped", f"when: {e.get('when', '')}"))
        elif kind == "stage_failed":
            run.marks.append(StageMark(it, e.get("stage", ""), "failed", describe_error(e.get("error"))))
            pending.get(it, {}).pop(e.get("stage", ""), None)
        elif kind == "stage_retry":
            run.marks.append(StageMark(it, e.get("stage", ""), "retry",
                                       f"attempt {e.get('attempt')}: {describe_error(e.get('error'))}"))
        elif kind == "iteration_done":
            run.iterations.append(Iteration(it, e.get("seconds"), True, list(e.get("stages_run", [])),
                                            list(e.get("stages_failed", []))))
            committed = pending.pop(it, {})
            for stage_outputs in committed.values():
                for uid, description in stage_outputs.items():
                    kind_, value = parse_description(description)
                    port = run.ports.setdefault(uid, Port(uid))
                    port.description = description if isinstance(description, str) else port.description
                    if kind_ == "image":
                        port.kind = "image"
                    elif kind_ != "other" and "values" not in e:
                        port.values[it] = value
            # The engine's own record of the committed values, where it gives one.
            for uid, value in (e.get("values") or {}).items():
                run.ports.setdefault(uid, Port(uid)).values[it] = value
            for path in e.get("files", []):
                _add_run_image(run, path)
        elif kind == "error":
            run.error = e.get("error")
            failed = (run.error or {}).get("iteration") if isinstance(run.error, dict) else None
            if failed is not None and failed in starts and not any(i.number == failed for i in run.iterations):
                seconds = e["time"] - starts[failed] if e.get("time") and starts[failed] else None
                run.iterations.append(Iteration(failed, seconds, False))
            run.ended = e.get("time", run.ended)
        elif kind == "checkpoint":
            run.checkpoints += 1
        elif kind == "run_done":
            run.completed = e.get("iterations_completed")
            run.stopped_by_until = bool(e.get("stopped_by_until"))
            run.ended = e.get("time", run.ended)
    for key, cost in costs.items():
        cost.class_type = class_types.get(key, "")
    run.node_costs = sorted(costs.values(), key=lambda c: -c.total)
    run.iterations.sort(key=lambda i: i.number)
    _scan_run_images(run, set(starts))


def _add_run_image(run: Run, path: str, sanitized: Optional[Dict[str, str]] = None) -> None:
    path = _locate(run.run_dir, path)
    match = _RUN_IMAGE.match(os.path.basename(path))
    if not match:
        return
    safe_uid, iteration = match.group("uid"), int(match.group("iteration"))
    if sanitized is None:
        sanitized = {file_safe(uid): uid for uid in run.ports}
    uid = sanitized.get(safe_uid, safe_uid)
    port = run.ports.setdefault(uid, Port(uid))
    port.kind = "image"
    files = port.images.setdefault(iteration, [])
    if path not in files:
        files.append(path)
        files.sort(key=lambda p: int(_RUN_IMAGE.match(os.path.basename(p)).group("batch") or 0))


def _scan_run_images(run: Run, started: set) -> None:
    """PNGs in the run folder that the events do not list (a run stopped by --until between two
    --save-every saves writes its last images after the last iteration_done)."""
    try:
        names = sorted(os.listdir(run.run_dir))
    except OSError:
        return
    sanitized = {file_safe(uid): uid for uid in run.ports}
    for name in names:
        match = _RUN_IMAGE.match(name)
        if not match:
            continue
        if sanitized and match.group("uid") not in sanitized:
            continue  # another file that happens to look like an output
        if started and int(match.group("iteration")) not in started:
            continue  # left over from another run into the same folder
        _add_run_image(run, os.path.join(run.run_dir, name), sanitized)


def _locate(run_dir: str, path: str) -> str:
    """A file the events name, found in the run folder when the folder has moved since."""
    if os.path.isabs(path) and os.path.exists(path):
        return path
    candidate = os.path.join(run_dir, path)
    if os.path.exists(candidate):
        return candidate
    moved = os.path.join(run_dir, os.path.basename(path))
    return moved if os.path.exists(moved) else path


def _read_sweep(run: Run, events: List[Event]) -> None:
    for e in events:
        if e.get("event") != "point_done":
            continue
        index = int(e.get("point", len(run.points)))
        outputs = e.get("outputs") or {}
        images: Dict[str, List[str]] = {}
        for path in e.get("files", []):
            path = _locate_point_file(run.run_dir, index, path)
            stem = os.path.splitext(os.path.basename(path))[0]
            uid = next((u for u in outputs if stem == u or re.fullmatch(re.escape(u) + r"_\d+", stem)), stem)
            images.setdefault(uid, []).append(path)
        run.points.append(SweepPoint(index, dict(e.get("params") or {}), e.get("seconds"), bool(e.get("ok")),
                                     outputs, images, e.get("error"), e.get("image", "")))
        for uid, description in outputs.items():
            kind, value = parse_description(description)
            port = run.ports.setdefault(uid, Port(uid))
            if kind == "image" or uid in images:
                port.kind = "image"
                port.images[index] = images.get(uid, [])
            elif kind != "other":
                port.values[index] = value
        for uid, files in images.items():
            if uid not in outputs:
                port = run.ports.setdefault(uid, Port(uid))
                port.kind = "image"
                port.images[index] = files
        if e.get("time") is not None:
            run.started = e["time"] if run.started is None else min(run.started, e["time"])
            run.ended = e["time"] if run.ended is None else max(run.ended, e["time"])
    run.points.sort(key=lambda p: p.index)
    run.completed = sum(1 for p in run.points if p.ok)
    run.planned_iterations = len(run.points)


def _locate_point_file(run_dir: str, index: int, path: str) -> str:
    if os.path.exists(path):
        return path
    moved = os.path.join(run_dir, f"point_{index:05d}", os.path.basename(path))
    return moved if os.path.exists(moved) else path


def _settle_port_kinds(run: Run) -> None:
    """A port's kind from its values: all numbers, all booleans, else shown as text."""
    for port in run.ports.values():
        if port.kind == "image":
            continue
        kinds = {_kind_of(v) for v in port.values.values()}
        if not kinds:
            port.kind = "other"
        elif kinds == {"boolean"}:
            port.kind = "boolean"
        elif kinds == {"number"}:
            port.kind = "number"
        else:
            port.kind = "string"
            port.values = {k: v if isinstance(v, str) else json.dumps(v) for k, v in port.values.items()}
