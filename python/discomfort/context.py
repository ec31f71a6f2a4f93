"""WorkflowContext: the values a run reads and writes, held in-process by the C++ context store.

Compatible with the original Discomfort's WorkflowContext (save / load / list_keys /
get_storage_info / get_usage / export_data / shutdown, a context manager), but values are held
by reference: a tensor is a refcount, a MODEL stays a live Python object. Tensors beyond the RAM
budget spill to safetensors files and come back memory-mapped.
"""

from __future__ import annotations

import os
import pickle
import threading
import uuid
import weakref
from typing import Any, Dict, List, Optional

from . import errors
from ._native import core

PASS_BY = ("val", "ref")
_LIVE: "weakref.WeakValueDictionary[str, WorkflowContext]" = weakref.WeakValueDictionary()
_LIVE_LOCK = threading.Lock()


class WorkflowContext:
    """A named store of values keyed by port ``unique_id``.

    ``max_ram_gb`` caps the RAM the context's tensors use (10^9 bytes); beyond it the least recently
    used tensors spill to disk. Without it, ``max_ram_percent`` (default 50, the original's shipped
    setting) of the memory available when the context opens. ``max_device_gb`` caps the context's GPU
    tensors (GiB): beyond it the least recently used spill (device -> pinned staging -> safetensors) and
    come back to their device when read. ``create=False`` attaches to a live context of this process
    by ``run_id``.
    """

    def __init__(self, config_path: Optional[str] = None, max_ram_gb: Optional[float] = None,
                 run_id: Optional[str] = None, create: bool = True, *, max_ram_percent: Optional[float] = None,
                 temp_root: Optional[str] = None, force_spill: bool = False,
                 max_device_gb: Optional[float] = None) -> None:
        if not create:
            if run_id is None:
                raise errors.InvalidArgumentError("create=False needs the run_id of an existing context")
            with _LIVE_LOCK:
                existing = _LIVE.get(run_id)
            if existing is None or existing._core is None:
                raise errors.NotFoundError(f"no live context with run_id {run_id!r} in this process")
            self.__dict__.update(existing.__dict__)
            self._creator = False
            return
        config = _read_config(config_path)
        if max_ram_gb is None and max_ram_percent is None:
            if "MAX_RAM_PERCENT" in config:
                max_ram_percent = float(config["MAX_RAM_PERCENT"])
            elif "MAX_RAM_GB" in config:
                max_ram_gb = float(config["MAX_RAM_GB"])
            else:
                max_ram_percent = 50.0
        if max_ram_percent is not None and not 0 < max_ram_percent <= 100:
            raise errors.InvalidArgumentError(f"max_ram_percent must be in (0, 100], got {max_ram_percent}")
        self.run_id = run_id or uuid.uuid4().hex
        if max_device_gb is not None and not max_device_gb >= 0:
            raise errors.InvalidArgumentError(f"max_device_gb must be >= 0, got {max_device_gb}")
        self._core = core.Context(max_ram_gb=max_ram_gb, max_ram_percent=max_ram_percent, temp_root=temp_root,
                                  force_spill=force_spill, max_device_gb=max_device_gb)
        self._pass_by: Dict[str, str] = {}
        self._creator = True
        with _LIVE_LOCK:
            _LIVE[self.run_id] = self

    # ---------------------------------------------------------------- context manager
    def __enter__(self) -> "WorkflowContext":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    def _store(self) -> "core.Context":
        if self._core is None or self._core.closed:
            raise errors.InvalidArgumentError(f"context {self.run_id} was shut down")
        return self._core

    # ---------------------------------------------------------------- the original API
    def save(self, unique_id: str, data: Any, use_ram: bool = True, pass_by: str = "val") -> None:
        """Stores ``data`` under ``unique_id`` by reference. ``use_ram=False`` writes a tensor to disk
        (memory-mapped back on load). ``pass_by="ref"`` stores a workflow (a dict) that recreates
        the value, as the original did for MODEL/CLIP/VAE; in-process these usually pass by value."""
        if pass_by not in PASS_BY:
            raise errors.InvalidArgumentError(f"pass_by must be 'val' or 'ref', not {pass_by!r}")
        store = self._store()
        if pass_by == "ref":
            if not isinstance(data, dict):
                raise errors.TypeMismatchError(
                    f"pass_by='ref' stores a workflow dict that recreates the value, got {type(data).__name__}")
            store.put_recipe(unique_id, data)
        else:
            store.put(unique_id, data)
            if not use_ram and _is_tensor(data):
                store.spill(unique_id)
        self._pass_by[unique_id] = pass_by

    def load(self, unique_id: str) -> Any:
        """The value (the very object saved: tensors are not copied). KeyError when absent."""
        return self._store().get(unique_id)

    def list_keys(self) -> List[str]:
        return list(self._store().keys())

    def get_storage_info(self, unique_id: str) -> Optional[Dict[str, Any]]:
        """{size, pass_by, storage_type ("ram" | "disk" | "device"), path, kind, version, ...} or None.
        Models (ComfyUI's MODEL, CLIP, VAE) add bytes_by_device, spilled_bytes and spill_files; a
        model whose weights left RAM is "disk"; has_recipe says whether a recipe can recreate it."""
        info = self._store().info(unique_id)
        if info is None:
            return None
        if info["on_disk"]:
            storage_type = "disk"
        elif info.get("model"):
            by_device = info.get("bytes_by_device", {})
            storage_type = "device" if by_device and not by_device.get("cpu") else "ram"
        elif info["device"] and info["device"] != "cpu":
            storage_type = "device"
        else:
            storage_type = "ram"
        out = {"size": info["bytes"], "pass_by": self._pass_by.get(unique_id, "val"), "storage_type": storage_type}
        if info.get("spill_path"):
            out["path"] = info["spill_path"]
        elif info.get("spill_files"):
            out["path"] = info["spill_files"][-1]
        out.update(info)
        if "dtype" in out:
            out["dtype"] = _TORCH_DTYPE_NAMES.get(out["dtype"], out["dtype"])
        return out

    def get_usage(self) -> Dict[str, Any]:
        """The original's keys (ram_usage_bytes ... stored_keys_count) and the store's own: models'
        RAM (host_ram_bytes, part of ram_bytes and under the budget), their accelerator memory
        (host_device_bytes), weights out of RAM (host_spilled_bytes), model_spills / model_drops /
        model_restores, and the measured model_write_bytes_per_second."""
        u = self._store().usage()
        return {
            "ram_usage_bytes": u["ram_bytes"],
            "ram_capacity_bytes": u["ram_budget_bytes"],
            "ram_usage_gb": round(u["ram_bytes"] / 1e9, 3),
            "ram_capacity_gb": round(u["ram_budget_bytes"] / 1e9, 3),
            "temp_disk_usage_bytes": u["disk_bytes"],
            "temp_disk_usage_mb": round(u["disk_bytes"] / 1024 ** 2, 2),
            "stored_keys_count": u["count"],
            **u,
        }

    def export_data(self, unique_id: str, destination_path: str, overwrite: bool = False) -> None:
        """Moves a value out of the context into a file (it is removed from the context, as in the
        original). Tensors become a safetensors file and JSON-able values a JSON file; a destination
        ending in .pkl/.pickle, or a value that is neither, is pickled."""
        store = self._store()
        if self._pass_by.get(unique_id) == "ref":
            raise errors.TypeMismatchError(f"'{unique_id}' is stored by reference (a workflow); it cannot be exported")
        info = store.info(unique_id)
        if info is None:
            raise errors.NotFoundError(f"the context holds no value for '{unique_id}'", port=unique_id)
        destination_path = os.path.abspath(destination_path)
        if os.path.exists(destination_path) and not overwrite:
            raise FileExistsError(f"{destination_path} exists (pass overwrite=True)")
        os.makedirs(os.path.dirname(destination_path), exist_ok=True)
        if destination_path.endswith((".pkl", ".pickle")) or info["kind"] not in ("tensor", "json"):
            value = store.get(unique_id)
            tmp = destination_path + ".tmp"
            with open(tmp, "wb") as f:
                pickle.dump(value, f)
            os.replace(tmp, destination_path)
        else:
            store.export(unique_id, destination_path)
        store.erase(unique_id)
        self._pass_by.pop(unique_id, None)

    def shutdown(self) -> None:
        """Releases every value (idempotent). Values already handed out stay valid."""
        if self._core is not None and self._creator:
            self._core.close()
        self._core = None
        with _LIVE_LOCK:
            if _LIVE.get(self.run_id) is self:
                del _LIVE[self.run_id]

    # ---------------------------------------------------------------- beyond the original
    def delete(self, unique_id: str) -> None:
        self._store().erase(unique_id)
        self._pass_by.pop(unique_id, None)

    def import_data(self, unique_id: str, source_path: str) -> None:
        """Reads a file written by export_data (safetensors / JSON / pickle) into the context."""
        if source_path.endswith((".pkl", ".pickle")):
            with open(source_path, "rb") as f:
                self.save(unique_id, pickle.load(f))
            return
        if not os.path.exists(source_path):
            raise FileNotFoundError(source_path)
        self._store().import_file(unique_id, source_path)
        self._pass_by[unique_id] = "val"

    def save_snapshot(self, directory: str) -> Dict[str, Any]:
        """Persists the context (tensors as safetensors, JSON as JSON) for resuming elsewhere; live
        Python objects are listed under ``not_persisted``."""
        return self._store().save_snapshot(os.path.abspath(directory))

    def load_snapshot(self, directory: str) -> Dict[str, Any]:
        return self._store().load_snapshot(os.path.abspath(directory))

    def version(self, unique_id: str) -> int:
        return self._store().version(unique_id)

    def __contains__(self, unique_id: str) -> bool:
        return self._store().contains(unique_id)

    def __repr__(self) -> str:
        state = "closed" if self._core is None else f"{len(self.list_keys())} keys"
        return f"<WorkflowContext {self.run_id} ({state})>"


# c10's scalar type names -> torch's
_TORCH_DTYPE_NAMES = {"Float": "float32", "Double": "float64", "Half": "float16", "BFloat16": "bfloat16",
                      "Long": "int64", "Int": "int32", "Short": "int16", "Char": "int8", "Byte": "uint8",
                      "Bool": "bool"}


def _is_tensor(value: Any) -> bool:
    import torch
    return isinstance(value, torch.Tensor)


def _read_config(path: Optional[str]) -> Dict[str, Any]:
    if not path:
        return {}
    import json
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)
