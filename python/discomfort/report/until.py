"""The thresholds of an `until` condition, to draw on the plots: the simple comparisons
`<name> <op> <number>` (or `<number> <op> <name>`) among its `&&` / `||` parts. Anything else in the
condition (`iteration % 2 == 0`, function calls) is left out: the engine evaluates the condition,
the report only shows where its simple parts draw the line."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Optional

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_NAME = r"[A-Za-z_]\w*"
_OP = r"<=|>=|==|!=|<|>"
_NAME_FIRST = re.compile(rf"^\(*\s*(?P<name>{_NAME})\s*(?P<op>{_OP})\s*(?P<value>{_NUMBER})\s*\)*$")
_VALUE_FIRST = re.compile(rf"^\(*\s*(?P<value>{_NUMBER})\s*(?P<op>{_OP})\s*(?P<name>{_NAME})\s*\)*$")
_MIRRORED = {"<": ">", ">": "<", "<=": ">=", ">=": "<=", "==": "==", "!=": "!="}


@dataclass(frozen=True)
class Threshold:
    name: str
    op: str  # as read with the name on the left
    value: float

    def label(self) -> str:
        return f"until {self.name} {self.op} {self.value:g}"


def parse_until(condition: Optional[str]) -> Dict[str, List[Threshold]]:
    """{name: [thresholds]} of the condition's simple comparisons."""
    found: Dict[str, List[Threshold]] = {}
    if not condition:
        return found
    for part in re.split(r"&&|\|\|", condition):
        part = part.strip()
        match = _NAME_FIRST.match(part)
        op = None
        if match:
            op = match.group("op")
        else:
            match = _VALUE_FIRST.match(part)
            if match:
                op = _MIRRORED[match.group("op")]
        if match and op:
            threshold = Threshold(match.group("name"), op, float(match.group("value")))
            found.setdefault(threshold.name, []).append(threshold)
    return found
