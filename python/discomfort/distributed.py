"""Sweeps on a Ray cluster: the driver.

One Ray actor per worker slot holds one Discomfort engine for its whole life (models warm: a setup
workflow's MODEL/CLIP/VAE load once per actor, not per point); the driver hands the points out one
at a time, collects one JSON line per point, and runs the points of a lost worker again elsewhere.

    run_sweep(config, cancelled, emit) -> exit code

is the one entry point of both the CLI (``discomfort sweep ... --ray ADDRESS``, from its embedded
Python) and the Python API (``await d.sweep(..., ray=ADDRESS)``). The driver needs Ray, not the
compiled core nor ComfyUI: importing ``discomfort`` would load the core, so the CLI loads this file
by its path and its siblings ``distributed_*.py`` are then loaded the same way (see :func:`_sibling`):

    spec = importlib.util.spec_from_file_location("discomfort_distributed", "<root>/discomfort/distributed.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["discomfort_distributed"] = module  # before exec_module: its dataclasses look it up
    spec.loader.exec_module(module)
    exit_code = module.run_sweep(config, cancelled, emit)

config keys (the points are computed by the engine beforehand, never here):

=================  ==========================================================================
address            "auto", "HOST:PORT" (the head's GCS port) or "local:N" (a cluster of N worker
                   nodes on 127.0.0.1 for this run, torn down after)
points             [{index, params, image}]: the points to run, keeping their global index
workflows          workflow paths (UI or API format; read here, converted on the workers), or
                   {"name": ..., "workflow": {...}} documents
workers_per_node   actors per node (default 1): one GPU each where the node has GPUs, else a CPU
setup              a workflow path (or document) run once per actor before its first point;
                   its OUTPUT ports seed every point's context (by reference)
iterations         iterations per point (default 1); every point runs them all (the engine's
                   sweep has no per-point stop condition: "until" is refused)
set_values         ["uid=VALUE", ...] as the CLI's --set (JSON, @image.png, @file.json, text)
inputs             {uid: value} put into every point's context (the Python API's inputs; values
                   must pickle: JSON values, tensors)
image_port         INPUT port receiving a point's image (default "image")
output_dir         where point_<index>/<uid>.png go: written by the workers (a folder every
                   machine shares), or by the driver with collect
collect            workers send their PNG bytes back and the driver writes them (atomically);
                   point images and @files of set_values are then sent to the workers too
ship_inputs        send point images and @files to the workers (default: collect)
iteration_timeout  seconds per iteration of a point; interrupt_grace: seconds a node may ignore
                   the interrupt (the actor is then replaced, the point reported as a timeout)
max_retries        times a point runs again after its worker was lost (default 3)
max_restarts       times Ray restarts a lost or wedged actor (default 3)
comfyui_path       ComfyUI whose version the driver reads; passed on to the workers when given
                   (else each worker uses its own $COMFYUI_PATH or ~/ComfyUI)
cpu, extra_nodes   as the engine's options, on every worker
versions           {"discomfort", "comfyui"} every worker must have (default: read from this
                   package's __init__.py and the ComfyUI's comfyui_version.py, importing neither)
start_timeout      seconds to wait for a first actor to be ready (default 900)
return_values      with each result, the outputs themselves (the Python API sets it)
=================  ==========================================================================

Each emitted line is a local sweep's line ({"event": "point_done", "point", "params", "seconds",
"ok", "outputs", "files"[, "image"][, "error"]}) plus "node" (its IP), "node_id", "actor" (the
slot number), "pid" and "attempt" (1 unless the point ran again after a lost worker). Lines come
in the order points finish. Errors that stop the whole sweep go to stderr; exit codes: 0 every
point ok, 1 some point failed or the sweep could not run, 130 cancelled.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple


def _sibling(name: str):
    """A distributed_* module next to this file: from the package when this file was imported as
    part of it, else loaded by path too (the CLI's way, which must not run discomfort/__init__)."""
    if __package__:
        return importlib.import_module(f"{__package__}.{name}")
    module_name = f"discomfort_{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, os.path.join(os.path.dirname(__file__), f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


_cluster = _sibling("distributed_cluster")
_scheduler = _sibling("distributed_scheduler")
_actor = _sibling("distributed_actor")
SweepError = _cluster.SweepError
Summary = _scheduler.Summary
INSTALL_HINT = _cluster.INSTALL_HINT


def run_sweep(config: Dict[str, Any], cancelled: Callable[[], bool], emit: Callable[[Dict[str, Any]], None]) -> int:
    """Runs ``config["points"]`` on the Ray cluster at ``config["address"]``; ``emit`` receives one
    JSON-ready dict per point as points finish; ``cancelled()`` is polled and, once true, stops
    every worker's point. Returns the exit code (0, 1, 130). Errors that stop the sweep are
    written to stderr. While it runs, whatever Python or Ray print in this process goes to stderr,
    except what ``emit`` prints: stdout carries the sweep's lines only."""
    stdout = _StdoutForEmitOnly(sys.stdout, sys.stderr)
    sys.stdout = stdout
    try:
        summary = execute(config, cancelled, stdout.wrap(emit))
    except SweepError as exc:
        _log(str(exc))
        return 1
    except Exception:  # a fault here or in Ray: the caller (the CLI) gets an exit code and the traceback
        import traceback
        _log("the sweep on Ray failed:\n" + traceback.format_exc().rstrip())
        return 1
    finally:
        sys.stdout = stdout.stdout
    if summary.cancelled:
        return 130
    return 0 if summary.failed == 0 else 1


def execute(config: Dict[str, Any], cancelled: Callable[[], bool], on_result: Callable[[Dict[str, Any]], None],
            log: Optional[Callable[[str], None]] = None) -> Summary:
    """run_sweep without the exit-code wrapping: raises SweepError. With ``return_values`` each
    result dict also holds ``values`` (the outputs themselves; not JSON)."""
    log = log or _log
    options = _Options.read(config)
    spec = _worker_spec(config, options)
    if not spec["versions"].get("comfyui"):
        log(f"no ComfyUI version found here ({_cluster.find_comfyui(spec['comfyui_path'])}): the workers' ComfyUI "
            f"versions are not compared")
    terminated = threading.Event()
    previous_sigterm = _sigterm_handler()
    connection = _cluster.connect(options.address, options.workers_per_node, log)
    try:
        _on_sigterm(lambda *_: terminated.set())
        # The actor class travels by value: a worker needs its own discomfort package (the engine),
        # not this file, and the module may have been loaded by path under a name no worker knows.
        connection.ray.cloudpickle.register_pickle_by_value(_actor)
        summary = _scheduler.Scheduler(connection.ray, _cluster, options, spec, _actor.SweepWorker,
                                       lambda: terminated.is_set() or cancelled(), on_result, log).run()
    finally:
        connection.close()
        _on_sigterm(previous_sigterm)
    log(f"sweep on ray: {summary.points} points, {summary.failed} failed, {summary.seconds:.1f} s, "
        f"{summary.actors} workers, {summary.actor_starts} engine starts"
        + (f", {summary.retried} point runs repeated after lost workers" if summary.retried else "")
        + (" (cancelled)" if summary.cancelled else ""))
    return summary


class _StdoutForEmitOnly:
    """sys.stdout while run_sweep runs: text written inside ``emit`` goes to the real stdout, the
    rest (Ray prints its workers' deaths and other cluster messages to stdout, from its own
    threads) to stderr."""

    def __init__(self, stdout, stderr) -> None:
        self.stdout, self.stderr = stdout, stderr
        self._emitting = threading.local()

    def wrap(self, emit: Callable[[Dict[str, Any]], None]) -> Callable[[Dict[str, Any]], None]:
        def emit_to_stdout(line: Dict[str, Any]) -> None:
            self._emitting.on = True
            try:
                emit(line)
            finally:
                self._emitting.on = False
        return emit_to_stdout

    def _target(self):
        return self.stdout if getattr(self._emitting, "on", False) else self.stderr

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def __getattr__(self, name: str) -> Any:  # encoding, isatty, fileno... of the stream written to
        return getattr(self._target(), name)


@dataclass
class _Options:
    address: str
    points: List[Dict[str, Any]]
    workers_per_node: int
    max_retries: int
    max_restarts: int
    collect: bool
    ship_inputs: bool
    output_dir: Optional[str]
    interrupt_grace: float
    start_timeout: float
    return_values: bool
    cpu: bool

    @staticmethod
    def read(config: Dict[str, Any]) -> "_Options":
        if not isinstance(config, dict):
            raise SweepError(f"the sweep's config is a dict, not {type(config).__name__}")
        points = config.get("points")
        if not isinstance(points, list) or not points:
            raise SweepError("config 'points' must be a non-empty list of {index, params, image}")
        for p in points:
            if not isinstance(p, dict) or not isinstance(p.get("index"), int):
                raise SweepError(f"a point is {{index, params, image}} with an integer index, got {p!r}")
        if len({p["index"] for p in points}) != len(points):
            raise SweepError("config 'points' holds the same index twice")
        collect = bool(config.get("collect", False))
        output_dir = config.get("output_dir") or None
        if collect and not output_dir:
            raise SweepError("collect needs an output_dir on this machine to write the workers' images to")
        return _Options(
            address=config.get("address") or "auto",
            points=points,
            workers_per_node=_positive_int(config, "workers_per_node", 1, minimum=1),
            max_retries=_positive_int(config, "max_retries", 3, minimum=0),
            max_restarts=_positive_int(config, "max_restarts", 3, minimum=0),
            collect=collect,
            ship_inputs=bool(config.get("ship_inputs", collect)),
            output_dir=os.path.abspath(output_dir) if output_dir else None,
            interrupt_grace=float(config.get("interrupt_grace") or 10.0),
            start_timeout=float(config.get("start_timeout") or 900.0),
            return_values=bool(config.get("return_values", False)),
            cpu=bool(config.get("cpu", False)))


def _positive_int(config: Dict[str, Any], key: str, default: int, minimum: int) -> int:
    value = config.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SweepError(f"config '{key}' must be an integer >= {minimum}, got {value!r}")
    return value


def _worker_spec(config: Dict[str, Any], options: _Options) -> Dict[str, Any]:
    """What every actor is constructed with: the workflows as documents (the workers need not see
    the driver's files), versions to match, and the shared values."""
    workflows = config.get("workflows")
    if not isinstance(workflows, list) or not workflows:
        raise SweepError("config 'workflows' must be a non-empty list of workflow paths")
    iterations = _positive_int(config, "iterations", 1, minimum=1)
    if config.get("until"):
        raise SweepError("a sweep on Ray runs every point for its iterations: the engine's sweep has no 'until' "
                         "(a per-point stop condition) yet")
    set_values = list(config.get("set_values") or [])
    for text in set_values:
        if not isinstance(text, str) or "=" not in text or text.startswith("="):
            raise SweepError(f"set values take unique_id=VALUE, got {text!r}")
    files: Dict[str, bytes] = {}
    if options.ship_inputs:
        for text in set_values:
            raw = text.partition("=")[2]
            if raw.startswith("@"):
                files[raw[1:]] = _read_bytes(raw[1:], f"the file of --set {text}")
    setup = config.get("setup")
    comfyui_path = config.get("comfyui_path") or None
    return {
        "workflows": [_load_workflow(w, i) for i, w in enumerate(workflows)],
        "setup": _load_workflow(setup, 0) if setup else None,
        "iterations": iterations,
        "set_values": set_values,
        "inputs": dict(config.get("inputs") or {}),
        "files": files,
        "image_port": config.get("image_port") or "image",
        "output_dir": options.output_dir,
        "collect": options.collect,
        "iteration_timeout": config.get("iteration_timeout") or None,
        "interrupt_grace": config.get("interrupt_grace") or None,
        "comfyui_path": comfyui_path,
        "cpu": options.cpu or None,
        "extra_nodes": [os.path.abspath(p) for p in (config.get("extra_nodes") or [])],
        "versions": config.get("versions") or _cluster.driver_versions(comfyui_path),
    }


def _load_workflow(workflow: Any, index: int) -> Tuple[str, Dict[str, Any]]:
    if isinstance(workflow, dict) and isinstance(workflow.get("workflow"), dict):
        return str(workflow.get("name") or f"workflow_{index}"), workflow["workflow"]
    if not isinstance(workflow, (str, os.PathLike)):
        raise SweepError(f"a workflow is a path or {{name, workflow}}, not {type(workflow).__name__}")
    path = os.fspath(workflow)
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError as exc:
        raise SweepError(f"workflow file not found: {path}", code="not_found") from exc
    except (OSError, ValueError) as exc:
        raise SweepError(f"cannot read the workflow {path}: {exc}", code="parse") from exc
    if not isinstance(doc, dict):
        raise SweepError(f"{path} does not hold a workflow (a JSON object)", code="parse")
    return os.path.basename(path), doc


def _read_bytes(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise SweepError(f"cannot read {what}: {path}: {exc.strerror or exc}", code="not_found") from exc


def _sigterm_handler():
    return signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None


def _on_sigterm(handler) -> None:
    """SIGTERM cancels the sweep as Ctrl-C does (ray.init replaces this process's SIGTERM handler
    with one that exits without stopping the workers' points). Only the main thread can set it;
    a handler Python did not install comes back as the default one."""
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGTERM, handler if handler is not None else signal.SIG_DFL)


def _log(message: str) -> None:
    sys.stderr.write(f"[discomfort] {message}\n")
    sys.stderr.flush()

