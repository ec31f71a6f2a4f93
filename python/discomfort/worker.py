"""Worker: the original's ComfyConnector duties, in-process. Files go into the folders of the
ComfyUI this process imported; prompts run on the engine (no server, no browser)."""

from __future__ import annotations

import os
import shutil
import threading
from typing import Any, Callable, Dict, List, Optional

from . import _workflows, errors
from ._engine import call_async

FOLDER_TYPES = ("input", "output", "temp", "models")


class Worker:
    """``d.Worker``. Each public method keeps the sync/async shape of the original's ComfyConnector
    method of that name, so scripts that awaited it still do."""

    def __init__(self, engine: Any, run_once: Callable[..., Any]) -> None:
        self._engine = engine
        self._run_once = run_once
        self._ephemeral: List[str] = []
        self._lock = threading.Lock()

    @classmethod
    async def create(cls, config_path: Optional[str] = None) -> "Worker":
        """The original's ``await ComfyConnector.create()``: the Worker of a new Discomfort (ComfyUI
        imported into this process on first use)."""
        from ._api import Discomfort  # the Discomfort owns the engine this Worker runs on

        return (await Discomfort.create(config_path=config_path)).Worker

    # ---------------------------------------------------------------- folders
    @staticmethod
    def folder(folder_type: str) -> str:
        """The absolute folder ComfyUI uses for input/output/temp files or models."""
        import folder_paths  # ComfyUI's, imported by the engine

        getters = {"input": folder_paths.get_input_directory, "output": folder_paths.get_output_directory,
                   "temp": folder_paths.get_temp_directory, "models": lambda: folder_paths.models_dir}
        if folder_type not in getters:
            raise errors.InvalidArgumentError(f"folder_type must be one of {FOLDER_TYPES}, not {folder_type!r}")
        return os.path.realpath(getters[folder_type]())

    def upload_data(self, source_path: str, folder_type: str = "input", subfolder: Optional[str] = None,
                    overwrite: bool = False, is_ephemeral: bool = False) -> Dict[str, str]:
        """Copies a file into ComfyUI's input/output/temp folder (or models/<subfolder>), so nodes such
        as LoadImage find it by name. Returns {name, subfolder, type, path}. A destination outside
        that folder (``..``, absolute subfolders, symlinks out) is refused with ValueError; an
        existing file without overwrite raises FileExistsError. Ephemeral files are removed at
        shutdown."""
        source_path = os.fspath(source_path)
        if not os.path.isfile(source_path):
            raise FileNotFoundError(f"no file to upload at {source_path}")
        base = self.folder(folder_type)
        if folder_type == "models" and not subfolder:
            raise errors.InvalidArgumentError("models uploads need a subfolder (checkpoints, loras, ...)")
        target_dir = os.path.realpath(os.path.join(base, subfolder or ""))
        target = os.path.realpath(os.path.join(target_dir, os.path.basename(source_path)))
        if os.path.commonpath([base, target]) != base or target == base:
            raise errors.InvalidArgumentError(
                f"refusing to write {target}: it is outside ComfyUI's {folder_type} folder {base}")
        if os.path.exists(target) and not overwrite:
            raise FileExistsError(f"{target} exists (pass overwrite=True)")
        os.makedirs(target_dir, exist_ok=True)
        tmp = target + ".discomfort-upload"
        shutil.copyfile(source_path, tmp)
        os.replace(tmp, target)
        if is_ephemeral:
            with self._lock:
                self._ephemeral.append(target)
        sub = os.path.relpath(target_dir, base)
        return {"name": os.path.basename(target), "subfolder": "" if sub == "." else sub, "type": folder_type,
                "path": target}

    def remove_ephemeral(self) -> List[str]:
        """Deletes the ephemeral uploads (shutdown does this); returns the paths removed."""
        with self._lock:
            paths, self._ephemeral = self._ephemeral, []
        removed = []
        for p in paths:
            try:
                os.remove(p)
                removed.append(p)
            except FileNotFoundError:
                pass
        return removed

    async def kill_api(self) -> None:
        """The original stopped its server here; ComfyUI in this process cannot be unloaded, so this
        removes the ephemeral uploads (as ``await d.shutdown()`` does). Idempotent."""
        self.remove_ephemeral()

    # ---------------------------------------------------------------- prompts
    async def get_prompt_from_workflow(self, workflow: _workflows.WorkflowLike) -> Dict[str, Any]:
        """The API prompt of a UI workflow, converted natively from the live node definitions (the
        original drove a browser for this). API prompts pass through."""
        name, doc = _workflows.load(workflow)
        return await call_async(self._engine.to_api, doc, name)

    async def run_workflow(self, payload: _workflows.WorkflowLike, use_workflow_json: bool = True) -> Dict[str, Any]:
        """Runs one workflow once, as queued from the UI. Returns {"prompt": the API prompt,
        "outputs": {unique_id: value} of its OUTPUT ports}. Errors raise (the original returned None)."""
        name, doc = _workflows.load(payload)
        prompt = await call_async(self._engine.to_api, doc, name)
        outputs = await self._run_once([(name, prompt)])
        return {"prompt": prompt, "outputs": outputs}

    async def validate_prompt(self, prompt: Dict[str, Any]) -> bool:
        """ComfyUI's own validate_prompt; raises ValidationError naming the node and input."""
        await call_async(self._engine.validate, prompt)
        return True
