"""The worker side of a sweep on Ray: one actor per worker slot, holding one Discomfort engine (and
the models its setup workflow loaded) for its whole life.

The driver (distributed.py) wraps :class:`SweepWorker` with ``ray.remote`` and ships it to the
workers by value, so a worker needs the ``discomfort`` package (the compiled core) and ComfyUI, not
the driver's copy of this file. Everything here that touches the engine runs inside the worker.

A point is run through the engine's own sweep with that single point, so its files are named
``point_<index>/<uid>.png`` exactly as a local sweep names them; running a point twice (Ray may
retry a call after a lost worker) rewrites the same files.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

SCRATCH_PREFIX = "discomfort-ray-"  # + the worker's pid + "-": its inputs, images and outputs


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def reclaim_scratch_of_dead_workers(root: Optional[str] = None) -> int:
    """Removes the scratch folders (in the temporary folder) of workers whose process is gone.
    Returns how many."""
    root = root or tempfile.gettempdir()
    removed = 0
    try:
        names = os.listdir(root)
    except OSError:
        return 0
    for name in names:
        if not name.startswith(SCRATCH_PREFIX):
            continue
        pid = name[len(SCRATCH_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
            removed += 1
    return removed

# A node that ignored the interrupt keeps running in the background and nothing else executes in
# this process until it returns: the engine says so in the timeout's message.
WEDGED_MARK = "left running in the background"

# The where-fields of an engine error, in the order the CLI's JSON lists them.
_ERROR_FIELDS = ("workflow", "node_id", "class_type", "input_name", "port", "json_pointer", "stage", "iteration",
                 "traceback")


class SweepWorker:
    """Constructed (and, after a crash, reconstructed by Ray) with the sweep's spec: checks the
    versions, starts the engine, puts the shared values into its context and runs the setup
    workflow once. Failures are kept and reported by :meth:`ready`, so the driver can name them."""

    def __init__(self, spec: Dict[str, Any]) -> None:
        # The driver prints the sweep's lines on its stdout, and Ray forwards a worker's stdout
        # there: whatever ComfyUI prints in this process goes to stderr instead.
        try:
            sys.stdout.flush()
            os.dup2(2, 1)
        except OSError:
            pass
        self._spec = spec
        self._started = time.monotonic()
        self._problem: Optional[str] = None
        self._wedged = False
        self._stopping = False
        self._tokens: set = set()  # one per point in this actor (one runs, the next waits for the engine)
        self._engine = None
        self._context = None
        # Ray ends a worker by killing its process, so nothing of it can clean up: its folder carries
        # its pid, and the next worker on the machine removes the folders of workers that are gone.
        reclaim_scratch_of_dead_workers()
        self._scratch = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-")
        try:
            self._start()
        except Exception as exc:  # reported by ready(): the driver names the worker and the cause
            self._problem = f"{type(exc).__name__}: {exc}"
        self._startup_seconds = time.monotonic() - self._started

    # ------------------------------------------------------------------ start-up
    def _start(self) -> None:
        spec = self._spec
        import discomfort
        expected = spec.get("versions") or {}
        if expected.get("discomfort") and discomfort.__version__ != expected["discomfort"]:
            raise RuntimeError(f"version mismatch: this worker has Discomfort {discomfort.__version__}, the driver "
                               f"has Discomfort {expected['discomfort']}")
        from discomfort import _engine
        self._engine = self._on_engine_thread(_engine.get_engine, comfyui_path=spec.get("comfyui_path"),
                                              cpu=spec.get("cpu"), extra_nodes=tuple(spec.get("extra_nodes") or ()))
        comfyui = self._engine.info.get("comfyui_version")
        if expected.get("comfyui") and comfyui != expected["comfyui"]:
            raise RuntimeError(f"version mismatch: this worker has ComfyUI {comfyui}, the driver has ComfyUI "
                               f"{expected['comfyui']}")
        self._context = discomfort.WorkflowContext()
        for text in spec.get("set_values") or ():
            uid, value = _parse_set_value(text, self._materialize)
            self._context.save(uid, value)
        for uid, value in (spec.get("inputs") or {}).items():
            self._context.save(uid, value)
        setup = spec.get("setup")
        if setup is not None:
            # The setup's OUTPUT ports (a checkpoint's MODEL, CLIP, VAE...) stay in this context;
            # every point's context is seeded from it by reference, so models load once per actor.
            self._on_engine_thread(self._engine.run, self._context._store(), [tuple(setup)], iterations=1)

    def _materialize(self, path: str) -> str:
        """A file the driver shipped (no shared filesystem) written under this worker's scratch
        folder, keeping its name; a path without shipped bytes is used as it is."""
        data = (self._spec.get("files") or {}).get(path)
        if data is None:
            return path
        folder = os.path.join(self._scratch, "inputs", str(abs(hash(path))))
        os.makedirs(folder, exist_ok=True)
        local = os.path.join(folder, os.path.basename(path))
        if not os.path.exists(local):
            with open(local, "wb") as f:
                f.write(data)
        return local

    def _on_engine_thread(self, fn, *args, **kwargs):
        from discomfort import _engine
        return _engine.on_engine_thread(fn, *args, **kwargs).result()

    # ------------------------------------------------------------------ calls from the driver
    def ready(self) -> Dict[str, Any]:
        """Who and where this actor is, and whether it can run points (``problem`` says why not)."""
        import ray
        context = ray.get_runtime_context()
        return {"pid": os.getpid(), "node_id": context.get_node_id(), "ip": ray.util.get_node_ip_address(),
                "problem": self._problem, "startup_seconds": self._startup_seconds,
                "setup": self._spec.get("setup") is not None}

    def run_point(self, point: Dict[str, Any], image_bytes: Optional[bytes] = None,
                  return_values: bool = False) -> Dict[str, Any]:
        """Runs one point through the engine's sweep. Returns {line, wedged, files, values}:
        ``line`` the point's JSON line (less node/actor, which the driver adds), ``files`` the PNG
        bytes by path relative to the output folder when collecting, ``values`` the outputs
        themselves when asked (tensors on the CPU; objects that cannot travel described)."""
        if self._problem is not None or self._wedged:
            raise RuntimeError(self._problem or "this worker's engine is wedged")
        import discomfort
        spec = self._spec
        if self._stopping:
            return {"line": _cancelled_line(point), "wedged": False, "files": {}}
        run_point = dict(point)
        if point.get("image"):
            run_point["image"] = self._write_image(point["image"], image_bytes) if image_bytes is not None \
                else point["image"]
        collect = bool(spec.get("collect"))
        output_dir = None
        if collect:
            output_dir = tempfile.mkdtemp(prefix="out-", dir=self._scratch)
        elif spec.get("output_dir"):
            output_dir = spec["output_dir"]
        token = discomfort.CancelToken()
        self._tokens.add(token)
        options = dict(iterations=int(spec.get("iterations") or 1), image_port=spec.get("image_port") or "image",
                       output_dir=output_dir, pipeline=False, cancel=token,
                       iteration_timeout=spec.get("iteration_timeout"),
                       interrupt_grace=spec.get("interrupt_grace"))
        started = time.monotonic()
        try:
            result = self._on_engine_thread(_sweep_one, self._engine, self._context._store(),
                                            [tuple(w) for w in spec["workflows"]], run_point, options)
            outcome = result["points"][0] if result.get("points") else None
        except Exception as exc:  # the whole sweep call failed (a workflow the engine refuses...)
            outcome = {"ok": False, "error": exc, "outputs": {}, "files": [],
                       "seconds": time.monotonic() - started}
        finally:
            self._tokens.discard(token)
        if outcome is None:
            outcome = {"ok": False, "error": RuntimeError("the engine reported no result for this point"),
                       "outputs": {}, "files": [], "seconds": time.monotonic() - started}
        error = outcome.get("error")
        line: Dict[str, Any] = {"event": "point_done", "point": point["index"], "params": point.get("params") or {},
                                "seconds": outcome.get("seconds", 0.0), "ok": bool(outcome.get("ok"))}
        if point.get("image"):
            line["image"] = point["image"]
        files: Dict[str, bytes] = {}
        if line["ok"]:
            line["outputs"] = {uid: _describe(value) for uid, value in (outcome.get("outputs") or {}).items()}
            line["files"] = list(outcome.get("files") or [])
            if collect:
                for path in line["files"]:
                    relative = os.path.relpath(path, output_dir)
                    with open(path, "rb") as f:
                        files[relative] = f.read()
                line["files"] = sorted(files)
        else:
            line["error"] = _error_json(error)
        if collect:
            shutil.rmtree(output_dir, ignore_errors=True)
        wedged = (error is not None and getattr(error, "code", "") in ("timeout", "cancelled")
                  and WEDGED_MARK in str(error))
        self._wedged = self._wedged or wedged
        reply: Dict[str, Any] = {"line": line, "wedged": wedged, "files": files}
        if return_values and line["ok"]:
            reply["values"] = {uid: _portable(value) for uid, value in (outcome.get("outputs") or {}).items()}
        return reply

    def _write_image(self, original: str, data: bytes) -> str:
        folder = os.path.join(self._scratch, "images", str(abs(hash(original))))
        os.makedirs(folder, exist_ok=True)
        local = os.path.join(folder, os.path.basename(original))
        with open(local, "wb") as f:
            f.write(data)
        return local

    def cancel(self) -> int:
        """Stops the running point at its next node and the waiting one before it starts (called
        while run_point runs: the actor takes calls side by side). The actor is done after it."""
        self._stopping = True
        tokens = list(self._tokens)
        for token in tokens:
            token.cancel()
        if self._engine is not None:
            self._engine.interrupt()
        return len(tokens)

    def leave(self) -> None:
        """Ends this process so Ray starts a fresh actor (a fresh engine): used when a node ignored
        the interrupt and keeps the engine busy for good."""
        sys.stderr.flush()
        os._exit(1)


def _cancelled_line(point: Dict[str, Any]) -> Dict[str, Any]:
    line = {"event": "point_done", "point": point["index"], "params": point.get("params") or {}, "seconds": 0.0,
            "ok": False, "error": {"code": "cancelled", "message": "sweep cancelled"}}
    if point.get("image"):
        line["image"] = point["image"]
    return line


def _sweep_one(engine, store, workflows: List[Tuple[str, Any]], point: Dict[str, Any], options: Dict[str, Any]):
    return engine.sweep(store, workflows, points=[point], **options)


def _parse_set_value(text: str, materialize) -> Tuple[str, Any]:
    """The CLI's ``--set uid=VALUE``: a JSON literal, ``@image.png`` (an IMAGE tensor decoded as the
    CLI decodes it: 8-bit RGB, alpha dropped), ``@values.json``, or plain text."""
    uid, eq, raw = text.partition("=")
    if not eq or not uid:
        raise ValueError(f"set values take unique_id=VALUE, got {text!r}")
    if raw.startswith("@"):
        path = materialize(raw[1:])
        if path.lower().endswith(".png"):
            import numpy as np
            import torch
            from PIL import Image
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
            return uid, torch.from_numpy(pixels.copy()).float().div_(255.0).unsqueeze(0)
        if path.lower().endswith(".json"):
            with open(path, encoding="utf-8") as f:
                return uid, json.load(f)
        raise ValueError(f"{uid}=@FILE takes a .png image or a .json file, not {path}")
    try:
        return uid, json.loads(raw)
    except ValueError:
        return uid, raw  # a bare word is a string


def _describe(value: Any) -> Any:
    """An output as the CLI's JSON line shows it: JSON values as they are, tensors by dtype and
    shape, live objects by type."""
    import torch
    if isinstance(value, torch.Tensor):
        return {"type": "tensor", "dtype": str(value.dtype).replace("torch.", ""), "shape": list(value.shape),
                "device": str(value.device), "files": []}
    if _is_json(value):
        return value
    return {"type": "object", "python_type": type(value).__name__}


def _portable(value: Any) -> Any:
    """An output that can travel to the driver: tensors (on the CPU) and JSON values as they are,
    live objects (a MODEL...) described, since they only exist in this worker."""
    import torch
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if _is_json(value):
        return value
    return _describe(value)


def _is_json(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False


def _error_json(error: Any) -> Dict[str, Any]:
    """The engine's error fields ({code, message, workflow, node_id, ...}, as the CLI prints them)."""
    if error is None:
        return {"code": "internal", "message": "the point failed without an error"}
    out: Dict[str, Any] = {"code": getattr(error, "code", None) or "python",
                           "message": getattr(error, "message", None) or str(error)}
    for field in _ERROR_FIELDS:
        value = getattr(error, field, None)
        if value not in (None, ""):
            out[field] = value
    if not hasattr(error, "code"):
        out["message"] = f"{type(error).__name__}: {error}"
    return out
