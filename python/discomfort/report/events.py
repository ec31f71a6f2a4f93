"""Reading a run's events: the engine's JSON lines (the CLI's --events file, Python's on_event) or
Python sweep results, normalized to a list of dicts of the run that ended last."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterable, List, Tuple, Union

Event = Dict[str, Any]
EventSource = Union[str, "os.PathLike[str]", Iterable[Dict[str, Any]]]


class EventsError(ValueError):
    """An events file that cannot be read as JSON lines."""


def read_events(source: EventSource) -> List[Event]:
    """The events of a file (one JSON object a line; blank lines skipped; a truncated last line, as
    a run killed mid-write leaves, ignored) or of an iterable of dicts."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        events: List[Event] = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError as exc:
                if number == len(lines):
                    break  # the writer was killed mid-line: everything before it is whole
                raise EventsError(f"{path}, line {number}: not a JSON object ({exc.msg})") from exc
            if not isinstance(event, dict):
                raise EventsError(f"{path}, line {number}: expected a JSON object, got {type(event).__name__}")
            events.append(event)
        return events
    return [_from_python(item, i) for i, item in enumerate(source)]


def _from_python(item: Dict[str, Any], position: int) -> Event:
    """A Python sweep result ({index, params, image, ok, outputs, files, seconds, error}) becomes the
    CLI's point_done line; engine events (on_event) pass through."""
    if not isinstance(item, dict):
        raise EventsError(f"event {position}: expected a dict, got {type(item).__name__}")
    if "event" in item or "index" not in item:
        return item
    event = {"event": "point_done", "point": item["index"], "params": item.get("params") or {},
             "seconds": item.get("seconds"), "ok": bool(item.get("ok")), "files": list(item.get("files") or [])}
    if item.get("image"):
        event["image"] = os.fspath(item["image"])
    event["outputs"] = {uid: _describe_python_value(v) for uid, v in (item.get("outputs") or {}).items()}
    error = item.get("error")
    if error is not None:
        event["error"] = _describe_python_error(error)
    return event


def _describe_python_value(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    shape = getattr(value, "shape", None)
    if shape is not None and hasattr(value, "dtype"):
        return {"type": "tensor", "dtype": str(value.dtype).replace("torch.", ""), "shape": list(shape),
                "device": str(getattr(value, "device", ""))}
    return {"type": "object", "python_type": type(value).__name__}


def _describe_python_error(error: Any) -> Dict[str, Any]:
    if isinstance(error, dict):
        return error
    # str() of a Discomfort error already names the iteration, workflow and node.
    described: Dict[str, Any] = {"message": str(error), "code": type(error).__name__, "located": True}
    for key in ("node_id", "class_type", "input_name", "port", "workflow", "iteration", "traceback"):
        value = getattr(error, key, None)
        if value not in (None, ""):
            described[key] = value
    return described


def last_run(events: List[Event]) -> Tuple[List[Event], int]:
    """The events of the run (or sweep) that started last, and how many earlier ones the list held.

    An events file is appended to: a later `discomfort run` with the same --events starts a new run
    (run_start with first_iteration 0), while `discomfort resume` continues one (first_iteration > 0),
    so a resumed run's segments stay together. Sweeps report their points in order, so a sweep
    starts at point 0."""
    starts = [i for i, e in enumerate(events)
              if (e.get("event") == "run_start" and not e.get("first_iteration"))
              or (e.get("event") == "point_done" and e.get("point") == 0)]
    if not starts:
        return events, 0
    return events[starts[-1]:], len(starts) - 1
