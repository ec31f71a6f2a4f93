"""A run's Chrome trace (trace.json, `{"traceEvents": [...]}`) read for the report: every node's
durations and the totals of the other kinds of work it records (spill, reload, PNG encoding, ...).

Spans are complete events (ph "X", with dur) or begin/end pairs (ph "B"/"E", matched per thread in
stack order); timestamps are microseconds."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from .run_model import NodeCost


class TraceError(ValueError):
    """A trace file that is not Chrome trace-event JSON."""


@dataclass
class CategoryTotal:
    category: str
    count: int = 0
    seconds: float = 0.0
    bytes: int = 0


@dataclass
class Trace:
    node_costs: List[NodeCost]
    categories: List[CategoryTotal]  # everything but iterations, stages, workflows and nodes


_STRUCTURE = {"iteration", "stage", "workflow", "node", "sweep"}


def read_trace(path: str) -> Trace:
    try:
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
    except json.JSONDecodeError as exc:
        raise TraceError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from exc
    events = document.get("traceEvents") if isinstance(document, dict) else document
    if not isinstance(events, list):
        raise TraceError(f"{path}: expected {{\"traceEvents\": [...]}} or a list of trace events")
    return _summarize(_spans(events))


def _spans(events: List[Any]) -> List[Tuple[str, str, float, Dict[str, Any]]]:
    """(category, name, seconds, args) of every span."""
    spans = []
    open_spans: Dict[Tuple[Any, Any], List[Dict[str, Any]]] = {}
    for e in events:
        if not isinstance(e, dict):
            continue
        phase = e.get("ph")
        if phase == "X":
            spans.append((e.get("cat", ""), e.get("name", ""), float(e.get("dur", 0)) / 1e6, e.get("args") or {}))
        elif phase == "B":
            open_spans.setdefault((e.get("pid"), e.get("tid")), []).append(e)
        elif phase == "E":
            stack = open_spans.get((e.get("pid"), e.get("tid")))
            if not stack:
                continue
            begin = stack.pop()
            args = dict(begin.get("args") or {})
            args.update(e.get("args") or {})
            seconds = (float(e.get("ts", 0)) - float(begin.get("ts", 0))) / 1e6
            spans.append((begin.get("cat", e.get("cat", "")), begin.get("name", ""), seconds, args))
    return spans


def _summarize(spans: List[Tuple[str, str, float, Dict[str, Any]]]) -> Trace:
    nodes: Dict[Tuple[str, str], NodeCost] = {}
    categories: Dict[str, CategoryTotal] = {}
    for category, name, seconds, args in spans:
        if category == "node":
            node = str(args.get("node", args.get("node_id", name)))
            key = (str(args.get("workflow", "")), node)
            cost = nodes.setdefault(key, NodeCost(key[0], node, str(args.get("class_type", ""))))
            if not cost.class_type and args.get("class_type"):
                cost.class_type = str(args["class_type"])
            cost.times.append(seconds)
        elif category not in _STRUCTURE:
            total = categories.setdefault(category, CategoryTotal(category))
            total.count += 1
            total.seconds += seconds
            size = args.get("bytes")
            if isinstance(size, (int, float)):
                total.bytes += int(size)
    return Trace(sorted(nodes.values(), key=lambda c: -c.total),
                 sorted(categories.values(), key=lambda c: -c.seconds))


def find_trace(run_dir: str, trace: Optional[str]) -> Optional[str]:
    """The trace to use: the one given, else <run_dir>/trace.json when it exists."""
    if trace:
        if not os.path.exists(trace):
            raise FileNotFoundError(f"trace file not found: {trace}")
        return trace
    default = os.path.join(run_dir, "trace.json")
    return default if os.path.exists(default) else None
