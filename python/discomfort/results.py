"""What run_detailed, run_plan and sweep return: the plain dict / list they always returned, plus
``report()`` when the run was asked to record what a report needs (``report=True``)."""

from __future__ import annotations

import os
import tempfile
import threading
from typing import Any, Callable, Dict, List, Optional

from . import errors


class EventRecorder:
    """Keeps the engine's events of one run (thread-safe), forwarding them to the caller's callback."""

    def __init__(self, forward: Optional[Callable[[Dict[str, Any]], Any]] = None) -> None:
        self.events: List[Dict[str, Any]] = []
        self._forward = forward
        self._lock = threading.Lock()

    def __call__(self, event: Dict[str, Any]) -> Any:
        with self._lock:
            self.events.append(event)
        if self._forward is not None:
            return self._forward(event)
        return None


class _Reportable:
    _run_dir: Optional[str] = None
    _events: Optional[List[Dict[str, Any]]] = None
    _until: Optional[str] = None

    def report(self, out: Optional[str] = None, *, title: Optional[str] = None) -> str:
        """Writes one self-contained HTML report of this run (discomfort.report) and returns its path:
        <output_dir>/report.html by default, or a temporary folder's when the run wrote no images."""
        if self._events is None:
            raise errors.InvalidArgumentError("this run recorded nothing to report: pass report=True to it")
        from .report import generate
        run_dir = self._run_dir or tempfile.mkdtemp(prefix="discomfort-report-")
        return generate(run_dir, out=os.fspath(out) if out else None, events=self._events, until=self._until,
                        title=title)


class RunResult(dict, _Reportable):
    """{outputs, files, iterations_completed, stopped_by_until, reports} with report()."""

    def __init__(self, data: Dict[str, Any], run_dir: Optional[str] = None,
                 recorder: Optional[EventRecorder] = None, until: Optional[str] = None) -> None:
        super().__init__(data)
        self._run_dir = run_dir
        self._events = recorder.events if recorder is not None else None
        self._until = until if isinstance(until, str) else None


class SweepResults(list, _Reportable):
    """One dict per point, with report() (the outputs laid out by parameter values)."""

    def __init__(self, points: List[Dict[str, Any]], run_dir: Optional[str] = None,
                 recorder: Optional[EventRecorder] = None) -> None:
        super().__init__(points)
        self._run_dir = run_dir
        # A sweep's report reads the points themselves (the list a sweep returns is one of its inputs).
        self._events = list(points) if recorder is not None else None
