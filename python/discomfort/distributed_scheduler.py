"""Handing a sweep's points to the Ray actors and gathering their results (driver side).

Each actor runs one point at a time. A point comes back either as a result (final: a node error or
a timeout is reported once, never run again) or as a lost worker (its node or process died), and
then runs again on another actor, at most ``max_retries`` more times. An actor whose engine is
wedged (a node ignored the interrupt) is told to leave its process, and Ray starts a fresh one.
"""

from __future__ import annotations

import collections
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

POLL_SECONDS = 0.2
# Points sent to an actor ahead of its results: the next one is already there when a point ends,
# so no actor waits for a round trip to the driver between two points.
POINTS_IN_FLIGHT_PER_ACTOR = 2
REPROBE_SECONDS = 1.0
# After Ctrl-C, how long the workers' points get to stop (beyond the interrupt grace) before the
# actors are killed.
CANCEL_EXTRA_SECONDS = 5.0


@dataclass
class Summary:
    points: int = 0         # results emitted
    failed: int = 0
    cancelled: bool = False
    seconds: float = 0.0
    actors: int = 0         # worker slots
    actor_starts: int = 0   # engine starts, each loading the setup's models once
    retried: int = 0        # point runs repeated after a lost worker
    nodes: List[str] = field(default_factory=list)
    startup_seconds: List[float] = field(default_factory=list)  # each engine start (and setup run)


@dataclass
class _Task:
    point: Dict[str, Any]
    attempt: int = 1


@dataclass
class _Actor:
    number: int
    slot: Any
    handle: Any
    state: str = "starting"  # starting | ready (takes points) | waiting (to be probed again) | gone
    info: Dict[str, Any] = field(default_factory=dict)
    running: Dict[Any, _Task] = field(default_factory=dict)  # by the ObjectRef of its result
    probe_at: float = 0.0
    pids: set = field(default_factory=set)


class Scheduler:
    def __init__(self, ray, cluster, options, spec: Dict[str, Any], worker_class, cancelled: Callable[[], bool],
                 on_result: Callable[[Dict[str, Any]], None], log: Callable[[str], None]) -> None:
        self.ray = ray
        self.cluster = cluster  # distributed_cluster: slots, paths, SweepError
        self.error_type = cluster.SweepError
        self.options = options
        self.spec = spec
        self.worker_class = worker_class
        self.cancelled = cancelled
        self.on_result = on_result
        self.log = log
        self.summary = Summary()
        self.actors: List[_Actor] = []
        self.refs: Dict[Any, Tuple[str, _Actor]] = {}
        self.pending: Deque[_Task] = collections.deque(_Task(p) for p in options.points)
        self.refusals: List[str] = []
        self.ever_ready = False

    # ------------------------------------------------------------------ the loop
    def run(self) -> Summary:
        started = time.monotonic()
        try:
            self._start_actors()
            while self.pending or any(a.running for a in self.actors):
                if self.cancelled():
                    self._cancel_all()
                    break
                self._dispatch()
                self._probe_due()
                if not self.refs:
                    if not any(a.state != "gone" or a.running for a in self.actors):
                        self._no_worker_left()
                        break
                    time.sleep(POLL_SECONDS)
                    continue
                done, _ = self.ray.wait(list(self.refs), num_returns=1, timeout=POLL_SECONDS)
                for ref in done:
                    kind, actor = self.refs.pop(ref)
                    if kind == "ready":
                        self._on_ready(actor, ref)
                    else:
                        self._on_point(actor, ref)
                if not self.ever_ready and time.monotonic() - started > self.options.start_timeout:
                    raise self.error_type(
                        f"no worker became ready within {self.options.start_timeout:g} s (is there room for an actor "
                        f"on the cluster? `ray status` lists its free resources)", "io")
        finally:
            self._kill_all()
            self.summary.seconds = time.monotonic() - started
        return self.summary

    def _start_actors(self) -> None:
        slots = self.cluster.plan_slots(self.ray, self.options.workers_per_node, self.options.cpu)
        if not slots:
            raise self.error_type("the Ray cluster has no alive node with a CPU or a GPU for a worker", "io")
        remote = self.ray.remote(self.worker_class)
        env = {}
        path = self.cluster.worker_pythonpath()
        if path:
            env["PYTHONPATH"] = path + os.pathsep + "${PYTHONPATH}"
        if self.spec.get("comfyui_path"):
            env["COMFYUI_PATH"] = self.spec["comfyui_path"]
        for slot in slots:
            # Room for the points in flight and a cancel() call beside them.
            handle = remote.options(max_concurrency=POINTS_IN_FLIGHT_PER_ACTOR + 1, max_restarts=self.options.max_restarts, max_task_retries=0,
                                    runtime_env={"env_vars": env} if env else None, **slot.options).remote(self.spec)
            actor = _Actor(len(self.actors), slot, handle)
            self.actors.append(actor)
            self.refs[handle.ready.remote()] = ("ready", actor)
        self.summary.actors = len(slots)
        self.summary.nodes = sorted({s.node_id for s in slots})
        self.log(f"ray: {len(slots)} worker(s) on {len(self.summary.nodes)} node(s) starting "
                 f"({len(self.pending)} points)")

    def _dispatch(self) -> None:
        # One point to every ready actor first, then a second: a short sweep spreads over all of them.
        for depth in range(POINTS_IN_FLIGHT_PER_ACTOR):
            for actor in self.actors:
                if not self.pending:
                    return
                if actor.state != "ready" or len(actor.running) > depth:
                    continue
                task = self.pending.popleft()
                image_bytes = None
                if self.options.ship_inputs and task.point.get("image"):
                    with open(task.point["image"], "rb") as f:
                        image_bytes = f.read()
                ref = actor.handle.run_point.remote(task.point, image_bytes, self.options.return_values)
                self.refs[ref] = ("point", actor)
                actor.running[ref] = task

    def _probe_due(self) -> None:
        now = time.monotonic()
        for actor in self.actors:
            if actor.state == "waiting" and now >= actor.probe_at:
                actor.state = "starting"
                self.refs[actor.handle.ready.remote()] = ("ready", actor)

    # ------------------------------------------------------------------ results
    def _on_ready(self, actor: _Actor, ref) -> None:
        exceptions = self.ray.exceptions
        try:
            info = self.ray.get(ref)
        except exceptions.ActorUnavailableError:
            # Restarting (Ray replaces a lost or wedged process): ask again shortly.
            actor.state, actor.probe_at = "waiting", time.monotonic() + REPROBE_SECONDS
            return
        except exceptions.RayError as exc:
            actor.state = "gone"
            self.log(f"ray: worker {actor.number} is gone: {_first_line(exc)}")
            return
        actor.info = info
        where = f"worker {actor.number} on {info['ip']} (node {info['node_id'][:8]}, pid {info['pid']})"
        if info.get("problem"):
            actor.state = "gone"
            self.refusals.append(f"{where}: {info['problem']}")
            self.log(f"ray: {where} refused: {info['problem']}")
            self.ray.kill(actor.handle, no_restart=True)
            return
        if info["pid"] not in actor.pids:
            actor.pids.add(info["pid"])
            self.summary.actor_starts += 1
            self.summary.startup_seconds.append(info["startup_seconds"])
            self.log(f"ray: {where} ready after {info['startup_seconds']:.1f} s"
                     + (" (setup workflow run)" if info.get("setup") else ""))
        self.ever_ready = True
        actor.state = "ready"

    def _on_point(self, actor: _Actor, ref) -> None:
        task = actor.running.pop(ref)
        exceptions = self.ray.exceptions
        try:
            reply = self.ray.get(ref)
        except exceptions.RayTaskError as exc:
            # run_point itself raised: a fault in this code, not the worker's; reported, not retried.
            self._emit(actor, task, self._failure(task, "internal", f"the worker failed: {_first_line(exc)}"))
            return
        except exceptions.RayError as exc:
            if actor.state == "ready":  # probed again shortly: Ray may be restarting it
                actor.state, actor.probe_at = "waiting", time.monotonic() + REPROBE_SECONDS
            self._lost(actor, task, exc)
            return
        line = reply["line"]
        if reply.get("files"):
            line["files"] = self._write_collected(reply["files"])
        if reply.get("values") is not None:
            line["values"] = reply["values"]
        self._emit(actor, task, line)
        if reply.get("wedged") and actor.state == "ready":
            # Its other point in flight is lost with the process and runs again elsewhere.
            self.log(f"ray: worker {actor.number}'s engine is wedged by a node that ignored the interrupt: "
                     f"replacing its process")
            actor.handle.leave.remote()
            actor.state, actor.probe_at = "waiting", time.monotonic() + REPROBE_SECONDS

    def _lost(self, actor: _Actor, task: _Task, exc: Exception) -> None:
        cause = _first_line(exc)
        if self.summary.cancelled:
            self._emit(actor, task, self._failure(task, "cancelled", f"sweep cancelled; the worker was lost ({cause})"))
            return
        if task.attempt <= self.options.max_retries:
            self.summary.retried += 1
            self.log(f"ray: point {task.point['index']} lost with worker {actor.number} ({cause}); running it again "
                     f"(attempt {task.attempt + 1} of {self.options.max_retries + 1})")
            self.pending.appendleft(_Task(task.point, task.attempt + 1))
            return
        self._emit(actor, task, self._failure(task, "worker_lost",
                                              f"the point's worker was lost {task.attempt} times (last: {cause})"))

    def _no_worker_left(self) -> None:
        if not self.ever_ready and self.refusals:
            raise self.error_type("no worker can run this sweep: " + "; ".join(self.refusals))
        while self.pending:
            task = self.pending.popleft()
            self._emit(None, task, self._failure(task, "worker_lost", "no worker left to run this point"))

    def _failure(self, task: _Task, code: str, message: str) -> Dict[str, Any]:
        line = {"event": "point_done", "point": task.point["index"], "params": task.point.get("params") or {},
                "seconds": 0.0, "ok": False, "error": {"code": code, "message": message}}
        if task.point.get("image"):
            line["image"] = task.point["image"]
        return line

    def _emit(self, actor: Optional[_Actor], task: _Task, line: Dict[str, Any]) -> None:
        info = actor.info if actor is not None else {}
        line["node"] = info.get("ip")
        line["node_id"] = info.get("node_id")
        line["actor"] = actor.number if actor is not None else None
        line["pid"] = info.get("pid")
        line["attempt"] = task.attempt
        self.summary.points += 1
        if not line["ok"]:
            self.summary.failed += 1
            error = line.get("error") or {}
            where = f" (node {error['node_id']}, {error.get('class_type', '?')})" if error.get("node_id") else ""
            self.log(f"point {line['point']}: {error.get('code')}{where}: {error.get('message')}")
        self.on_result(line)

    def _write_collected(self, files: Dict[str, bytes]) -> List[str]:
        """The worker's PNGs under output_dir with the names the worker gave them, each written to a
        temporary file and renamed, so a reader never sees half an image."""
        root = self.options.output_dir
        written = []
        for relative, data in sorted(files.items()):
            path = os.path.normpath(os.path.join(root, relative))
            if os.path.commonpath([root, path]) != root:
                raise self.error_type(f"a worker sent a file outside the output folder: {relative}")
            folder = os.path.dirname(path)
            os.makedirs(folder, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=folder, prefix=".partial-", suffix=".png")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(temporary, path)
            except BaseException:
                if os.path.exists(temporary):
                    os.unlink(temporary)
                raise
            written.append(path)
        return written

    # ------------------------------------------------------------------ stopping
    def _cancel_all(self) -> None:
        self.summary.cancelled = True
        busy = [a for a in self.actors if a.running]
        self.log(f"ray: cancelled; stopping the points of {len(busy)} worker(s)")
        for actor in busy:
            actor.handle.cancel.remote()
        deadline = time.monotonic() + self.options.interrupt_grace + CANCEL_EXTRA_SECONDS
        point_refs = [ref for ref, (kind, _) in self.refs.items() if kind == "point"]
        while point_refs and time.monotonic() < deadline:
            done, point_refs = self.ray.wait(point_refs, num_returns=1, timeout=POLL_SECONDS)
            for ref in done:
                _, actor = self.refs.pop(ref)
                self._on_point(actor, ref)
        self.pending.clear()

    def _kill_all(self) -> None:
        for actor in self.actors:
            try:
                self.ray.kill(actor.handle, no_restart=True)
            except Exception:
                pass
            actor.state = "gone"
        self.refs.clear()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
