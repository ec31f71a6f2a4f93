"""The report's charts, drawn with matplotlib as inline SVG: time per iteration (or per sweep point)
with the stage problems marked, and each numeric or boolean port over the iterations with the
`until` condition's threshold.

Elements the page (and its tests) look up carry ids: `iteration-<n>` on each iteration's bar,
`marks-<kind>` on the problem markers, `values-<port>` on a port's line and `threshold-<port>` on
its threshold line. matplotlib's own ids are prefixed per figure, so several SVGs in one page do
not share ids."""

from __future__ import annotations

import io
import itertools
import re
from typing import Iterable, Sequence

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .run_model import Iteration, Port, StageMark
from .until import Threshold

# Text stays text (small, selectable, drawn with the page's fonts: nothing to download).
_STYLE = {"svg.fonttype": "none", "svg.hashsalt": "discomfort-report", "font.size": 9,
          "font.family": "sans-serif", "font.sans-serif": ["DejaVu Sans"],  # matplotlib's own font, for layout
          "axes.spines.top": False, "axes.spines.right": False}
_COLORS = {"ok": "#4C78A8", "failed_iteration": "#D62728", "failed": "#D62728", "retry": "#F58518",
           "skipped": "#9E9E9E", "threshold": "#D62728", "line": "#4C78A8"}
_MARKS = {"failed": ("X", "stage failed, skipped for the iteration"), "retry": ("^", "stage retried"),
          "skipped": ("|", "stage not run (its when was false)")}
_OWN_ID = re.compile(r"^(iteration-\d+|marks-|values-|threshold-|iteration-limit)")
_figure_numbers = itertools.count(1)
# Past this many iterations bars are thinner than a pixel: a line reads better.
_MAX_BARS = 150
# Past this many points, markers are drawn as one path (or left out): each marker is an SVG element.
_MAX_MARKERS = 200


def iteration_times(iterations: Sequence[Iteration], marks: Sequence[StageMark],
                    iteration_limits: Sequence[Threshold] = (), unit: str = "iteration") -> str:
    """Seconds per iteration (a failed iteration in red), stage problems marked above the bars."""
    with matplotlib.rc_context(_STYLE):
        figure = Figure(figsize=(11, 3.4))
        ax = figure.add_subplot()
        timed = [i for i in iterations if i.seconds is not None]
        xs = [i.number for i in timed]
        ys = [i.seconds for i in timed]
        top = max(ys) if ys else 1.0
        if len(timed) <= _MAX_BARS:
            bars = ax.bar(xs, ys, width=0.8, color=[_COLORS["ok"] if i.ok else _COLORS["failed_iteration"] for i in timed])
            for bar, iteration in zip(bars, timed):
                bar.set_gid(f"iteration-{iteration.number}")
        else:
            line, = ax.plot(xs, ys, color=_COLORS["ok"], linewidth=1)
            line.set_gid("iteration-line")
            failed = [i for i in timed if not i.ok]
            if failed:
                ax.scatter([i.number for i in failed], [i.seconds for i in failed], color=_COLORS["failed_iteration"],
                           zorder=3).set_gid("iteration-failed")
        # Problem markers in rows above the bars: one row per kind of mark and stage.
        rows = sorted({(m.kind, m.stage) for m in marks if m.kind in _MARKS},
                      key=lambda r: (list(_MARKS).index(r[0]), r[1]))
        for kind, (marker, label) in _MARKS.items():
            hits = [m for m in marks if m.kind == kind]
            if not hits:
                continue
            y = [top * (1.08 + 0.08 * rows.index((kind, m.stage))) for m in hits]
            if len(hits) <= _MAX_MARKERS:
                drawn = ax.scatter([m.iteration for m in hits], y, marker=marker, color=_COLORS[kind],
                                   s=36, zorder=4, label=label, clip_on=False)
            else:
                # One path of short ticks: thousands of separate markers would weigh megabytes.
                xs_ticks, ys_ticks = [], []
                for m, height in zip(hits, y):
                    xs_ticks += [m.iteration, m.iteration, float("nan")]
                    ys_ticks += [height - top * 0.025, height + top * 0.025, float("nan")]
                drawn, = ax.plot(xs_ticks, ys_ticks, color=_COLORS[kind], linewidth=0.8, label=label, clip_on=False)
            drawn.set_gid(f"marks-{kind}")
        for n, (kind, stage) in enumerate(rows):
            ax.text(1.005, top * (1.08 + 0.08 * n), stage, transform=ax.get_yaxis_transform(), va="center",
                    fontsize=8, color=_COLORS[kind])
        for threshold in iteration_limits:
            ax.axvline(threshold.value, color=_COLORS["threshold"], linestyle="--", linewidth=1,
                       label=threshold.label()).set_gid("iteration-limit")
        ax.set_xlabel(unit)
        ax.set_ylabel("seconds")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(0, top * (1.1 + 0.08 * len(rows)))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", bbox_to_anchor=(1.06, 1.0), frameon=False)
        figure.tight_layout()
        return _svg(figure)


def port_plot(port: Port, thresholds: Iterable[Threshold] = (), unit: str = "iteration") -> str:
    """A numeric port as a line, a boolean one as a step between false and true."""
    points = sorted(port.values.items())
    with matplotlib.rc_context(_STYLE):
        figure = Figure(figsize=(4.1, 2.4))
        ax = figure.add_subplot()
        xs = [x for x, _ in points]
        if port.kind == "boolean":
            ys = [1 if v else 0 for _, v in points]
            line, = ax.step(xs, ys, where="mid", color=_COLORS["line"], marker="o",
                            markersize=3 if len(xs) <= _MAX_MARKERS else 0)
            ax.set_yticks([0, 1], ["false", "true"])
            ax.set_ylim(-0.2, 1.2)
        else:
            ys = [float(v) for _, v in points]
            line, = ax.plot(xs, ys, color=_COLORS["line"], marker="o",
                            markersize=3 if len(xs) <= _MAX_MARKERS else 0)
            if all(isinstance(v, int) for _, v in points):
                ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        line.set_gid(f"values-{port.uid}")
        for n, threshold in enumerate(thresholds):
            drawn = ax.axhline(threshold.value, color=_COLORS["threshold"], linestyle="--", linewidth=1,
                               label=threshold.label())
            drawn.set_gid(f"threshold-{port.uid}" + (f"-{n}" if n else ""))
        ax.set_title(port.uid, loc="left", fontsize=10)
        ax.set_xlabel(unit)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", frameon=False)
        figure.tight_layout()
        return _svg(figure)


def _svg(figure: Figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    return _unique_ids(_strip_prolog(buffer.getvalue()), f"f{next(_figure_numbers)}-")


def _strip_prolog(svg: str) -> str:
    """The <svg> element alone (no XML declaration or DOCTYPE, which have no place inside HTML)."""
    return svg[svg.index("<svg"):]


def _unique_ids(svg: str, prefix: str) -> str:
    ids = {i for i in re.findall(r'\bid="([^"]+)"', svg) if not _OWN_ID.match(i)}
    if not ids:
        return svg
    pattern = re.compile(r'(\bid="|#)(' + "|".join(re.escape(i) for i in sorted(ids, key=len, reverse=True)) + r')(?=["\)])')
    return pattern.sub(lambda m: m.group(1) + prefix + m.group(2), svg)
