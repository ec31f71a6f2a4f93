"""The report page: a Run turned into what the template shows (charts, tables, thumbnails) and
rendered with Jinja2."""

from __future__ import annotations

import datetime
import json
import os
import statistics
from typing import Any, Dict, List, Optional, Tuple

import jinja2

from . import figures, images, sweep_grid
from .run_model import Iteration, Port, Run, describe_error
from .trace import Trace
from .until import parse_until

MAX_STRING_ROWS = 1000
MAX_SWEEP_THUMBNAILS = 400


def render(run: Run, *, title: Optional[str], trace: Optional[Trace], trace_path: Optional[str]) -> str:
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.dirname(os.path.abspath(__file__))),
                                     autoescape=True, trim_blocks=False, lstrip_blocks=False)
    template = environment.get_template("report.html.j2")
    return template.render(**_view(run, title, trace, trace_path), describe_error=describe_error)


def _view(run: Run, title: Optional[str], trace: Optional[Trace], trace_path: Optional[str]) -> Dict[str, Any]:
    unit = "point" if run.kind == "sweep" else "iteration"
    thresholds = parse_until(run.until)
    notes = list(run.notes)

    time_chart = ""
    if run.kind == "sweep":
        timed = [Iteration(p.index, p.seconds, p.ok) for p in run.points if p.seconds is not None]
        if timed:
            time_chart = figures.iteration_times(timed, [], unit="point")
    elif run.iterations:
        time_chart = figures.iteration_times(run.iterations, run.marks, thresholds.get("iteration", []))

    node_costs = trace.node_costs if trace and trace.node_costs else run.node_costs
    source = f"the trace ({os.path.basename(trace_path)})" if trace and trace.node_costs else "the events' per-node timings"
    total = sum(c.total for c in node_costs) or 1.0
    rows = [{"workflow": c.workflow, "node": c.node, "class_type": c.class_type, "count": c.count, "total": c.total,
             "share": c.total / total, "median": c.median, "max": c.max} for c in node_costs]

    image_ports = []
    point_images: Dict[int, List[Tuple[str, images.Thumbnail]]] = {}
    for port in run.ports.values():
        if port.kind != "image":
            continue
        frames = sorted((k, v) for k, v in port.images.items() if v)
        if run.kind == "sweep":
            shown, unreadable = images.thumbnails(frames, limit=MAX_SWEEP_THUMBNAILS)
            for thumb in shown:
                point_images.setdefault(thumb.label, []).append((port.uid, thumb))
            if unreadable:
                notes.append(f"{port.uid}: {len(unreadable)} image files could not be read ({unreadable[0]}, ...)")
            continue
        if not frames:
            notes.append(f"IMAGE port '{port.uid}': no PNG files in the run folder (run with --out, or "
                         f"--save-every wrote none of them)")
            continue
        thumbs, unreadable = images.thumbnails(frames)
        animation = images.animation(frames)
        image_ports.append({"uid": port.uid, "thumbnails": thumbs, "shown": len(thumbs), "total": len(frames),
                            "animation": animation[0] if animation else None,
                            "frames": animation[1] if animation else 0,
                            "description": _short_description(port.description), "unreadable": unreadable})

    plots = [{"uid": p.uid, "kind": p.kind, "svg": figures.port_plot(p, thresholds.get(p.uid, []), unit=unit)}
             for p in run.ports.values() if p.kind in ("number", "boolean") and p.values and run.kind != "sweep"]
    # A numeric sweep output over the points is a chart only when there is no grid to read it from.
    if run.kind == "sweep" and not sweep_grid.axes_of(run.points):
        plots = [{"uid": p.uid, "kind": p.kind, "svg": figures.port_plot(p, unit=unit)}
                 for p in run.ports.values() if p.kind in ("number", "boolean") and p.values]
    for uid in thresholds:
        if uid != "iteration" and uid not in run.ports:
            notes.append(f"until names '{uid}', which no OUTPUT port of this run produced")

    strings = _strings_table(run) if run.kind != "sweep" else None
    other = [(p.uid, p.description or "(not shown)") for p in run.ports.values()
             if p.kind == "other" and run.kind != "sweep"]

    point_values: Dict[int, List[Tuple[str, str]]] = {}
    for point in run.points:
        for uid, value in point.outputs.items():
            if isinstance(value, (bool, int, float, str)):
                point_values.setdefault(point.index, []).append((uid, _format_value(value)))

    if run.kind == "sweep" and len(run.points) > MAX_SWEEP_THUMBNAILS:
        notes.append(f"thumbnails of {MAX_SWEEP_THUMBNAILS} of {len(run.points)} points shown, spread evenly")

    problems = [m for m in run.marks if m.kind in ("failed", "retry")]
    skipped: Dict[str, List[Any]] = {}
    for m in run.marks:
        if m.kind == "skipped":
            entry = skipped.setdefault(m.stage, [m.stage, 0, m.detail])
            entry[1] += 1

    return {
        "title": title or _default_title(run),
        "kind_label": "Sweep" if run.kind == "sweep" else "Loop run",
        "run": run,
        "unit": unit,
        "summary": _summary(run),
        "error_line": describe_error(run.error),
        "error_traceback": (run.error or {}).get("traceback", "") if isinstance(run.error, dict) else "",
        "time_chart": time_chart,
        "problems": problems,
        "skipped": [tuple(v) for v in skipped.values()],
        "node_costs": rows,
        "node_cost_source": source,
        "trace_categories": trace.categories if trace else [],
        "image_ports": image_ports,
        "plots": plots,
        "strings": strings,
        "other_ports": other,
        "sweep_sections": sweep_grid.layout(run.points) if run.points else [],
        "sweep_axes": sweep_grid.axes_of(run.points),
        "point_images": point_images,
        "point_values": point_values,
        "notes": notes,
        "thumbnail_side": images.THUMBNAIL_SIDE,
        "animation_side": images.ANIMATION_SIDE,
        "generated_at": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def _default_title(run: Run) -> str:
    name = os.path.basename(os.path.normpath(run.run_dir)) or run.run_dir
    return f"Discomfort {'sweep' if run.kind == 'sweep' else 'run'}: {name}"


def _summary(run: Run) -> List[Tuple[str, str]]:
    rows: List[Tuple[str, str]] = []
    if run.started:
        rows.append(("started", datetime.datetime.fromtimestamp(run.started).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")))
    if run.started and run.ended:
        rows.append(("wall time", _seconds(run.ended - run.started)))
    if run.kind == "sweep":
        failed = sum(1 for p in run.points if not p.ok)
        rows.append(("points", f"{len(run.points)}" + (f", {failed} failed" if failed else ", all succeeded")))
        times = [p.seconds for p in run.points if p.seconds is not None]
        if times:
            rows.append(("time per point", f"median {_seconds(statistics.median(times))}, max {_seconds(max(times))}"))
        return rows
    done = [i for i in run.iterations if i.ok]
    planned = f" of {run.planned_iterations}" if run.planned_iterations is not None else ""
    rows.append(("iterations", f"{len(done)} completed{planned}" +
                 (f" (resumed at iteration {run.first_iteration})" if run.first_iteration else "")))
    if run.stopped_by_until:
        rows.append(("stopped", f"by the until condition{f' ({run.until})' if run.until else ''}"))
    elif run.until:
        rows.append(("until", run.until))
    times = [i.seconds for i in done if i.seconds is not None]
    if times:
        rows.append(("time per iteration", f"median {_seconds(statistics.median(times))}, "
                                           f"min {_seconds(min(times))}, max {_seconds(max(times))}"))
    retries = sum(1 for m in run.marks if m.kind == "retry")
    failures = sum(1 for m in run.marks if m.kind == "failed")
    if retries or failures:
        rows.append(("stage problems", f"{retries} retried, {failures} failed and skipped"))
    if run.checkpoints:
        rows.append(("checkpoints", str(run.checkpoints)))
    rows.append(("outcome", "error" if run.error else ("finished" if run.completed is not None else "no run_done event")))
    return rows


def _seconds(value: float) -> str:
    if value < 1:
        return f"{value * 1000:.1f} ms"
    if value < 120:
        return f"{value:.2f} s"
    return f"{int(value // 60)} min {value % 60:.0f} s"


def _short_description(description: str) -> str:
    return description.split(" cpu")[0].split(" cuda")[0] if description else ""


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str):
        return value if len(value) <= 60 else value[:57] + "..."
    return json.dumps(value)


def _strings_table(run: Run) -> Optional[Dict[str, Any]]:
    ports: List[Port] = [p for p in run.ports.values() if p.kind == "string" and p.values]
    if not ports:
        return None
    labels = sorted({k for p in ports for k in p.values})
    shown = [labels[i] for i in images.evenly(len(labels), MAX_STRING_ROWS)]
    return {"ports": [p.uid for p in ports],
            "rows": [(label, [p.values.get(label, "") for p in ports]) for label in shown],
            "omitted": len(labels) - len(shown)}
