"""The run report: one self-contained HTML file that shows what a Discomfort loop or sweep did —
time per iteration with failed, retried and skipped stages marked, the cost of every node, each
IMAGE port as a contact sheet and a looping animation, numeric and boolean ports plotted over the
iterations with the `until` threshold, text values as a table, a sweep's outputs laid out by its
parameters, and the run's error.

    from discomfort.report import generate
    path = generate("out/feedback_loop")          # reads out/feedback_loop/events.jsonl

    python -m discomfort.report RUN_DIR [-o FILE]

Inputs: the events (the CLI's --events file, `<run_dir>/events.jsonl` by default, or the event
dicts a Python on_event callback received, or a Python sweep's results), the PNG files the run
wrote into `run_dir`, and a Chrome trace (`<run_dir>/trace.json`) when there is one.

This package needs only Jinja2, matplotlib and Pillow — not Discomfort's compiled core — so it can
also be loaded by file path (the CLI does)."""

from __future__ import annotations

import os
from typing import Any, Dict, Iterable, Optional, Union

from .events import EventsError, last_run, read_events
from .run_model import Run, build_run
from .trace import TraceError, find_trace, read_trace

__all__ = ["generate", "load_run", "EventsError", "TraceError"]

PathLike = Union[str, "os.PathLike[str]"]


def load_run(run_dir: PathLike, events: Union[None, PathLike, Iterable[Dict[str, Any]]] = None) -> Run:
    """What the run in `run_dir` left behind, read from its events (default `<run_dir>/events.jsonl`)
    and its PNG files."""
    run_dir = os.fspath(run_dir)
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"run folder not found: {run_dir}")
    notes = []
    if events is None:
        default = os.path.join(run_dir, "events.jsonl")
        if os.path.exists(default):
            events = default
        else:
            notes.append("no events.jsonl in the run folder (run with --events FILE): only its images are shown")
            events = []
    elif isinstance(events, (str, os.PathLike)) and not os.path.exists(events):
        raise FileNotFoundError(f"events file not found: {os.fspath(events)}")
    all_events = read_events(events)
    chosen, earlier = last_run(all_events)
    if earlier:
        notes.append(f"the events file holds {earlier + 1} runs; this report shows the last one")
    run = build_run(run_dir, chosen)
    if not chosen and not run.ports:
        raise FileNotFoundError(f"{run_dir}: neither events (events.jsonl, or pass events=) nor output PNGs "
                                f"(<unique_id>_<iteration>.png) to report on")
    run.notes.extend(notes)
    return run


def generate(run_dir: PathLike, *, out: Optional[PathLike] = None,
             events: Union[None, PathLike, Iterable[Dict[str, Any]]] = None,
             trace: Optional[PathLike] = None, until: Optional[str] = None, title: Optional[str] = None) -> str:
    """Writes the report of the run in `run_dir` and returns its path (default `<run_dir>/report.html`).

    `events`: an events file or the event dicts themselves (default `<run_dir>/events.jsonl`);
    `trace`: a Chrome trace (default `<run_dir>/trace.json` when present), used for per-node costs;
    `until`: the run's stop condition, whose simple comparisons (`score > 0.9`) are drawn as
    thresholds (default: the one the events record, if any); `title`: the page's title."""
    try:
        from .page import render  # matplotlib and Jinja2 load only when a report is made
    except ImportError as exc:
        raise ImportError(f"the run report needs jinja2, matplotlib and pillow ({exc}): "
                          "pip install 'discomfort[report]'") from exc

    run = load_run(run_dir, events)
    if until:
        run.until = until
    trace_path = find_trace(run.run_dir, os.fspath(trace) if trace is not None else None)
    parsed_trace = read_trace(trace_path) if trace_path else None
    html = render(run, title=title, trace=parsed_trace, trace_path=trace_path)
    path = os.fspath(out) if out is not None else os.path.join(run.run_dir, "report.html")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        f.write(html)
    os.replace(temporary, path)  # a reader never sees half a report
    return path
