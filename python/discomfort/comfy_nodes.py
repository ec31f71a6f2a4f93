"""Discomfort's nodes for the ComfyUI UI (registered by the repository's root __init__.py).

DiscomfortLoopExecutor runs workflow files N times (or until a condition) inside the live ComfyUI:
the engine attaches to this process's ComfyUI as a second, sandboxed executor with its own caches,
sharing the models the host already loaded, and one execution at a time (discomfort_bridge/sandbox.py
keeps the host prompt's state). Workflow files are read only from the folders allowed_paths.py allows.

Standard library only at module level: without the compiled core, the root __init__.py loads this file
by path and derives its "not built" placeholders from these classes.
"""

from __future__ import annotations

import ast
import concurrent.futures
import json
import logging
import os
import queue
from typing import Any, Dict, List, Tuple

LOG = logging.getLogger("discomfort")
ANY = "*"


def parse_initial_inputs(text: str) -> Dict[str, Any]:
    """`key: value` lines; values are Python literals when they parse (42, 0.5, [1, 2], 'a'),
    otherwise the raw text. Blank lines and lines starting with # are skipped."""
    values: Dict[str, Any] = {}
    for number, line in enumerate((text or "").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, raw = line.partition(":")
        if not sep or not key.strip():
            raise ValueError(f"initial_inputs line {number}: expected 'key: value', got {line!r}")
        raw = raw.strip()
        try:
            values[key.strip()] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            values[key.strip()] = raw
    return values


def resolve_workflow_path(path: str, node: str = "DiscomfortLoopExecutor", widget: str = "workflow_paths") -> str:
    """A workflow file named in `node`'s `widget`: found in ComfyUI's saved workflows, its input folder,
    Discomfort's examples or a folder the operator allowed, and refused anywhere else (allowed_paths.py)."""
    from . import allowed_paths
    return allowed_paths.resolve_workflow_file(path, node, widget)


def _comfyui_root() -> str:
    import folder_paths
    return os.path.dirname(os.path.abspath(folder_paths.__file__))


class DiscomfortLoopExecutor:
    """Runs workflow files in a loop inside this ComfyUI and returns an OUTPUT port's final value."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "workflow_paths": ("STRING", {"multiline": True, "default": "",
                                              "tooltip": "One workflow file per line (UI or API format), run in order each iteration"}),
                "iterations": ("INT", {"default": 1, "min": 1, "max": 100000}),
                "initial_inputs": ("STRING", {"multiline": True, "default": "",
                                              "tooltip": "key: value lines put into the context first"}),
            },
            "optional": {
                "until": ("STRING", {"default": "", "tooltip": "Stop early when this holds, e.g. score > 0.9 && iteration >= 3"}),
                "return_port": ("STRING", {"default": "", "tooltip": "OUTPUT unique_id to return (default: the first)"}),
                "input_value": (ANY, {"tooltip": "A value put into the context as input_port"}),
                "input_port": ("STRING", {"default": "", "tooltip": "unique_id for input_value"}),
            },
            "hidden": {"node_id": "UNIQUE_ID"},
        }

    RETURN_TYPES = (ANY, "STRING")
    RETURN_NAMES = ("result", "outputs")
    FUNCTION = "run"
    OUTPUT_NODE = True
    CATEGORY = "discomfort"
    DESCRIPTION = ("Runs workflow files N times (or until a condition) inside this ComfyUI, sharing its loaded "
                   "models; OUTPUT ports with the same unique_id as INPUT ports carry state between iterations.")

    @classmethod
    def IS_CHANGED(cls, **kwargs):
        return float("nan")  # a loop has side effects (files, state): always run

    def run(self, workflow_paths: str, iterations: int, initial_inputs: str, until: str = "",
            return_port: str = "", input_value: Any = None, input_port: str = "", node_id: str = ""):
        outputs = run_loop(workflow_paths, iterations, initial_inputs, until=until,
                           extra_inputs={input_port: input_value} if input_port and input_value is not None else {},
                           node_id=node_id, node="DiscomfortLoopExecutor", widget="workflow_paths")
        if not outputs:
            return {"ui": {"text": ["{}"]}, "result": (None, "{}")}
        if return_port:
            if return_port not in outputs:
                raise KeyError(f"return_port {return_port!r} is not an OUTPUT of these workflows; outputs: {sorted(outputs)}")
            result = outputs[return_port]
        else:
            result = next(iter(outputs.values()))
        summary = json.dumps({k: _describe(v) for k, v in outputs.items()})
        # The summary also goes to the UI (and /history) as text.
        return {"ui": {"text": [summary]}, "result": (result, summary)}


TEST_RUNNER_SLOTS = 5


class DiscomfortTestRunner:
    """Runs one workflow file as a sub-workflow: inputN goes into the INPUT port named by
    unique_id_inputN, outputN is the OUTPUT port named by unique_id_outputN. The slots and widget
    order are the original's, so workflows saved with its DiscomfortTestRunner load unchanged."""

    @classmethod
    def INPUT_TYPES(cls):
        required = {
            "workflow_json": ("STRING", {"default": "", "tooltip": "The sub-workflow file (UI or API format)"}),
            "max_iterations": ("INT", {"default": 1, "min": 1, "max": 1000}),
        }
        for i in range(1, TEST_RUNNER_SLOTS + 1):
            required[f"unique_id_input{i}"] = ("STRING", {"default": "", "tooltip": f"INPUT port fed by input{i}"})
        for i in range(1, TEST_RUNNER_SLOTS + 1):
            required[f"unique_id_output{i}"] = ("STRING", {"default": "", "tooltip": f"OUTPUT port sent to output{i}"})
        optional = {f"input{i}": (ANY, {}) for i in range(1, TEST_RUNNER_SLOTS + 1)}
        return {"required": required, "optional": optional, "hidden": {"node_id": "UNIQUE_ID"}}

    RETURN_TYPES = (ANY,) * TEST_RUNNER_SLOTS
    RETURN_NAMES = tuple(f"output{i}" for i in range(1, TEST_RUNNER_SLOTS + 1))
    FUNCTION = "run"
    CATEGORY = "discomfort"
    DESCRIPTION = ("Runs a sub-workflow inside this ComfyUI with its INPUT and OUTPUT ports as this node's inputs "
                   "and outputs (name them in the unique_id widgets).")

    @classmethod
    def IS_CHANGED(cls, **kwargs):
        return float("nan")  # the file may change between runs

    def run(self, workflow_json: str, max_iterations: int = 1, node_id: str = "", **slots: Any):
        inputs: Dict[str, Any] = {}
        for i in range(1, TEST_RUNNER_SLOTS + 1):
            uid = (slots.get(f"unique_id_input{i}") or "").strip()
            value = slots.get(f"input{i}")
            if uid and value is None:
                raise ValueError(f"unique_id_input{i} is {uid!r} but input{i} is not connected")
            if value is not None and not uid:
                raise ValueError(f"input{i} is connected but unique_id_input{i} is empty: name the INPUT port it feeds")
            if uid:
                inputs[uid] = value
        wanted = [(slots.get(f"unique_id_output{i}") or "").strip() for i in range(1, TEST_RUNNER_SLOTS + 1)]
        outputs = run_loop(workflow_json, max_iterations, "", extra_inputs=inputs, node_id=node_id,
                           node="DiscomfortTestRunner", widget="workflow_json")
        missing = [uid for uid in wanted if uid and uid not in outputs]
        if missing:
            raise KeyError(f"{os.path.basename(workflow_json.strip())}: no OUTPUT port {missing[0]!r}; "
                           f"its outputs: {sorted(outputs)}")
        return tuple(outputs[uid] if uid else None for uid in wanted)


def run_loop(workflow_paths: str, iterations: int, initial_inputs: str, until: str = "",
             extra_inputs: Dict[str, Any] = None, node_id: str = "", node: str = "DiscomfortLoopExecutor",
             widget: str = "workflow_paths") -> Dict[str, Any]:
    """The loop-executor's body (also usable from other nodes); `node` and `widget` name where the
    paths came from in errors."""
    from . import _engine, _workflows, errors
    from ._native import core
    from .context import WorkflowContext
    import comfy.model_management as mm

    import threading
    if threading.current_thread().name.startswith("discomfort-engine"):
        raise RuntimeError(f"{node} runs inside a ComfyUI server; a workflow run by Discomfort "
                           "itself cannot nest another loop (use iterations, until or a loop plan instead)")
    paths = [resolve_workflow_path(p, node, widget) for p in (workflow_paths or "").splitlines() if p.strip()]
    if not paths:
        raise ValueError(f"{node}, {widget}: no workflow file given (one path per line)")
    loaded = _workflows.load_all(paths)
    inputs = parse_initial_inputs(initial_inputs)
    inputs.update(extra_inputs or {})
    # The node runs on the host's executor thread, inside its asyncio loop: the engine works on its
    # own thread (ComfyUI's executor calls asyncio.run), and this thread relays progress and interrupts.
    engine = _engine.on_engine_thread(_engine.get_engine, comfyui_path=_comfyui_root(), verbose=True).result()
    from discomfort_bridge import sandbox  # importable once the engine has started
    host = sandbox.HostPrompt.capture(node_id or None)  # now, while no inner execution runs
    token = core.CancelToken()
    reports: "queue.Queue[Dict[str, Any]]" = queue.Queue()
    with WorkflowContext() as ctx:
        for key, value in inputs.items():
            ctx.save(key, value)
        future = _engine.on_engine_thread(engine.run, ctx._store(), loaded, iterations=iterations,
                                          until=until or None, on_iteration=reports.put, cancel=token)
        try:
            while True:
                try:
                    result = future.result(timeout=0.1)
                    break
                except concurrent.futures.TimeoutError:
                    pass
                while not reports.empty():
                    sandbox.report_host_progress(host, reports.get()["iteration"] + 1, iterations)
                # The UI's Cancel: during an inner execution its node stops and the run ends cancelled;
                # between two, the flag stays set (the sandbox keeps inner executions from clearing it).
                if mm.processing_interrupted() and not token.cancelled:
                    token.cancel()
                    engine.interrupt()
        except errors.RunCancelledError:
            raise mm.InterruptProcessingException()
        finally:
            if not future.done():  # relaying failed on this thread: never leave the loop running behind
                token.cancel()
                engine.interrupt()
                concurrent.futures.wait([future])
        sandbox.report_host_progress(host, iterations, iterations)
    return result["outputs"]


def _describe(value: Any) -> Any:
    try:
        import torch
        if isinstance(value, torch.Tensor):
            return {"tensor": str(value.dtype).replace("torch.", ""), "shape": list(value.shape)}
    except Exception:
        pass
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, dict)):
        try:
            json.dumps(value)
            return value
        except (TypeError, ValueError):
            pass
    return {"object": type(value).__name__}


NODE_CLASS_MAPPINGS = {"DiscomfortLoopExecutor": DiscomfortLoopExecutor, "DiscomfortTestRunner": DiscomfortTestRunner}
NODE_DISPLAY_NAME_MAPPINGS = {"DiscomfortLoopExecutor": "Discomfort Loop Executor",
                              "DiscomfortTestRunner": "Discomfort Test Runner"}
