"""A sweep's points laid out by their parameters, as an XY plot: the last grid key across, the one
before it down, and one section per combination of the keys before those (the grid's first key
varies slowest, so each section reads in point order)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from .run_model import SweepPoint


@dataclass
class Section:
    title: str  # "mix = 0.5, ..." for the keys beyond two; "" when there are none
    column_key: str
    row_key: str
    columns: List[str]
    rows: List[str]
    cells: List[List[Optional[SweepPoint]]] = field(default_factory=list)  # [row][column]


def axes_of(points: Sequence[SweepPoint]) -> List[str]:
    """The grid keys in the sweep's order (first axis slowest); `image` for a sweep over a folder of
    images. Events store params as JSON objects, whose key order is not the grid's, so the order is
    read from the points: the slower an axis, the fewer times its value changes from point to point."""
    keys: List[str] = []
    for point in points:
        for key in point.params:
            if key not in keys:
                keys.append(key)
    if not keys and any(p.image for p in points):
        return ["image"]
    ordered = sorted(points, key=lambda p: p.index)

    def changes(key: str) -> int:
        values = [value_of(p, key) for p in ordered]
        return sum(1 for a, b in zip(values, values[1:]) if a != b)

    return sorted(keys, key=changes)


def value_of(point: SweepPoint, key: str) -> str:
    if key == "image" and key not in point.params:
        return os.path.basename(point.image)
    value: Any = point.params.get(key)
    return value if isinstance(value, str) else json.dumps(value)


def layout(points: Sequence[SweepPoint]) -> List[Section]:
    keys = axes_of(points)
    column_key = keys[-1] if keys else ""
    row_key = keys[-2] if len(keys) >= 2 else ""
    page_keys = keys[:-2]

    def ordered(key: str, among: Sequence[SweepPoint]) -> List[str]:
        seen: List[str] = []
        for p in among:
            v = value_of(p, key)
            if v not in seen:
                seen.append(v)
        return seen

    pages: Dict[str, List[SweepPoint]] = {}
    for point in points:
        title = ", ".join(f"{k} = {value_of(point, k)}" for k in page_keys)
        pages.setdefault(title, []).append(point)
    sections = []
    for title, members in pages.items():
        columns = ordered(column_key, points) if column_key else [str(p.index) for p in members]
        rows = ordered(row_key, points) if row_key else [""]
        section = Section(title, column_key or "point", row_key, columns, rows)
        section.cells = [[None] * len(columns) for _ in rows]
        for point in members:
            column = columns.index(value_of(point, column_key)) if column_key else members.index(point)
            row = rows.index(value_of(point, row_key)) if row_key else 0
            section.cells[row][column] = point
        sections.append(section)
    return sections
