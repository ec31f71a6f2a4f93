"""``Discomfort.sweep(..., ray=ADDRESS)``: the Python API's side of a sweep on Ray.

The points come from the engine (the same grid-to-points function as a local sweep), the run from
distributed.run_sweep's driver on a thread, and the results are shaped as a local sweep's:
{index, params, image, ok, outputs, files, seconds, error} per point, in point order, plus where
each ran (node, node_id, actor, pid, attempt).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from . import errors


async def sweep_on_ray(*, address: str, workflows: Sequence[Tuple[str, Dict[str, Any]]],
                       points: List[Dict[str, Any]], values: Dict[str, Any], iterations: int, image_port: str,
                       output_dir: Optional[str], on_point: Optional[Callable[[Dict[str, Any]], Any]],
                       cancel: Any, iteration_timeout: Optional[float], interrupt_grace: Optional[float],
                       workers_per_node: int, setup: Optional[Tuple[str, Dict[str, Any]]], collect: bool,
                       max_retries: int, versions: Dict[str, Optional[str]], cpu: bool,
                       extra_nodes: Sequence[str]) -> List[Dict[str, Any]]:
    from . import distributed
    for key, value in values.items():
        if not _portable(value):
            raise errors.TypeMismatchError(
                f"the value of {key!r} (a {type(value).__name__}) cannot travel to Ray workers: only JSON values "
                f"and tensors do; load models in a setup workflow instead", port=key)
    config = {
        "address": address, "points": points, "iterations": iterations, "image_port": image_port,
        "workflows": [{"name": name, "workflow": doc} for name, doc in workflows],
        "setup": {"name": setup[0], "workflow": setup[1]} if setup else None,
        "inputs": values, "output_dir": output_dir, "collect": collect, "workers_per_node": workers_per_node,
        "max_retries": max_retries, "iteration_timeout": iteration_timeout, "interrupt_grace": interrupt_grace,
        "versions": versions, "cpu": cpu, "extra_nodes": list(extra_nodes), "return_values": True,
    }
    stop = threading.Event()
    results: List[Dict[str, Any]] = []

    def cancelled() -> bool:
        return stop.is_set() or (cancel is not None and cancel.cancelled)

    def on_result(line: Dict[str, Any]) -> None:
        point = _point_dict(line)
        results.append(point)
        if on_point is not None:
            on_point(point)

    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(None, distributed.execute, config, cancelled, on_result)
    try:
        summary = await asyncio.shield(future)
    except asyncio.CancelledError:
        stop.set()  # every worker's point is interrupted and the actors are killed; wait for that
        while not future.done():
            try:
                await asyncio.wait({future}, timeout=0.2)
            except asyncio.CancelledError:
                pass
        raise
    except distributed.SweepError as exc:
        raise errors.from_status({"code": exc.code, "message": str(exc)}) from None
    if summary.cancelled:
        raise errors.RunCancelledError("sweep cancelled")
    return sorted(results, key=lambda p: p["index"])


def _point_dict(line: Dict[str, Any]) -> Dict[str, Any]:
    ok = bool(line.get("ok"))
    return {"index": line["point"], "params": line.get("params") or {}, "image": line.get("image"), "ok": ok,
            "outputs": (line.get("values") or {}) if ok else {}, "files": list(line.get("files") or []),
            "seconds": line.get("seconds", 0.0), "error": None if ok else errors.from_status(line.get("error") or {}),
            "node": line.get("node"), "node_id": line.get("node_id"), "actor": line.get("actor"),
            "pid": line.get("pid"), "attempt": line.get("attempt")}


def _portable(value: Any) -> bool:
    import torch
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_portable(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _portable(v) for k, v in value.items())
    return False


def make_points(axes: List[tuple], images: List[str], shard: Optional[str] = None) -> List[Dict[str, Any]]:
    """[{index, params, image}] from the engine's grid-to-points function (first axis slowest), only
    those of `shard` ("K/N") when given."""
    from ._native import core
    return core.make_sweep_points(grid=axes, images=images, shard=shard)


def versions(info: Dict[str, Any]) -> Dict[str, Optional[str]]:
    """The versions every worker must have: this process's Discomfort and its running ComfyUI."""
    import discomfort
    return {"discomfort": discomfort.__version__, "comfyui": info.get("comfyui_version")}


def loaded_node_paths() -> List[str]:
    """The custom-node files this process's engine loaded (the workers load the same paths)."""
    from . import _engine
    return sorted(_engine._options.get("loaded", ()))
