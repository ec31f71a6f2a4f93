"""Discomfort's nodes for the ComfyUI UI (registered by the repository's root __init__.py).

DiscomfortLoopExecutor runs workflow files N times (or until a condition) inside the live ComfyUI:
the engine attaches to this process's ComfyUI as a second, sandboxed executor with its own caches,
sharing the models the host already loaded, and one execution at a time (discomfort_bridge/sandbox.py
keeps the host prompt's state). Workflow files are read only from the folders allowed_paths.py allows.
Both nodes offer the user's saved workflows in a chooser; the loop executor shows an IMAGE port's latest
image while it runs and returns a contact sheet of it (loop_images.py).

Widgets are only ever added after the existing ones: the UI saves widget values by position, so
workflows saved with earlier versions (and the original Discomfort's) load with theirs unchanged.

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
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

LOG = logging.getLogger("discomfort")
ANY = "*"
NO_WORKFLOW = "(none)"  # the chooser's first entry: the paths typed into the text widget are used
CONTACT_SHEET_SLOT = 2  # the loop executor's contact_sheet output


def saved_workflows() -> List[str]:
    """The workflow files (*.json) in ComfyUI's user workflows folder, `<user dir>/default/workflows`
    where the UI saves them, as paths relative to it with `/`, sorted. Read whenever ComfyUI reads the
    node definitions (start-up, /object_info, the UI's refresh), as LoadImage lists the input folder.
    Hidden entries and files whose real path leaves the folder (symlinks: the run would refuse them)
    are not listed; nothing without ComfyUI (a placeholder's definitions read outside it)."""
    try:
        import folder_paths
        root = os.path.realpath(os.path.join(folder_paths.get_user_directory(), "default", "workflows"))
    except Exception:  # not inside ComfyUI
        return []
    found = []
    for folder, folders, files in os.walk(root):
        folders[:] = [f for f in folders if not f.startswith(".")]
        for name in files:
            path = os.path.join(folder, name)
            if name.startswith(".") or not name.lower().endswith(".json"):
                continue
            real = os.path.realpath(path)
            if os.path.isfile(real) and os.path.commonpath([root, real]) == root:
                found.append(os.path.relpath(path, root).replace(os.sep, "/"))
    return sorted(found)


def workflow_chooser(text_widget: str) -> Tuple[List[str], Dict[str, Any]]:
    """The COMBO input listing the saved workflows, NO_WORKFLOW first."""
    return ([NO_WORKFLOW] + saved_workflows(),
            {"default": NO_WORKFLOW, "tooltip": f"A workflow saved in ComfyUI (user/default/workflows); "
                                                f"{NO_WORKFLOW}: the file(s) named in {text_widget}"})


def chosen_workflows(node: str, text_widget: str, text: str, chosen: Optional[str]) -> Tuple[List[str], str]:
    """(the workflow files to run, the widget they came from): the chooser's file, or else the text
    widget's lines. Both set is an error: which one was meant cannot be guessed."""
    lines = [line for line in (text or "").splitlines() if line.strip()]
    if not chosen or chosen == NO_WORKFLOW:
        return lines, text_widget
    if lines:
        raise ValueError(f"{node}: both workflow ({chosen!r}) and {text_widget} ({lines[0].strip()!r}) name workflows; "
                         f"clear {text_widget}, or set workflow to {NO_WORKFLOW} to run the files {text_widget} lists")
    return [chosen], "workflow"


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
    Discomfort's examples or a folder the operator allowed, and refused anywhere else (allowed_paths.py).
    The chooser's (`workflow`) names only the saved workflows folder."""
    from . import allowed_paths
    if widget == "workflow":
        import folder_paths
        saved = allowed_paths.Root("saved workflows",
                                   os.path.join(folder_paths.get_user_directory(), "default", "workflows"))
        return allowed_paths.resolve(path, [saved], where=f"{node}, {widget}", kind="file")
    return allowed_paths.resolve_workflow_file(path, node, widget)


def _comfyui_root() -> str:
    import folder_paths
    return os.path.dirname(os.path.abspath(folder_paths.__file__))


class DiscomfortLoopExecutor:
    """Runs workflow files in a loop inside this ComfyUI and returns an OUTPUT port's final value, and a
    contact sheet of an IMAGE port over the iterations."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "workflow_paths": ("STRING", {"multiline": True, "default": "",
                                              "tooltip": "One workflow file per line (UI or API format), run in order "
                                                         "each iteration (or pick one in workflow)"}),
                "iterations": ("INT", {"default": 1, "min": 1, "max": 100000}),
                "initial_inputs": ("STRING", {"multiline": True, "default": "",
                                              "tooltip": "key: value lines put into the context first"}),
            },
            "optional": {
                "until": ("STRING", {"default": "", "tooltip": "Stop early when this holds, e.g. score > 0.9 && iteration >= 3"}),
                "return_port": ("STRING", {"default": "", "tooltip": "OUTPUT unique_id to return (default: the first)"}),
                "input_value": (ANY, {"tooltip": "A value put into the context as input_port"}),
                "input_port": ("STRING", {"default": "", "tooltip": "unique_id for input_value"}),
                # Added after the original widgets (see the module text).
                "workflow": workflow_chooser("workflow_paths"),
                "preview_port": ("STRING", {"default": "", "tooltip": "IMAGE OUTPUT unique_id shown on the node while "
                                                                      "the loop runs and returned as contact_sheet "
                                                                      "(default: the first IMAGE output)"}),
            },
            "hidden": {"node_id": "UNIQUE_ID", "prompt": "PROMPT"},
        }

    RETURN_TYPES = (ANY, "STRING", "IMAGE")
    RETURN_NAMES = ("result", "outputs", "contact_sheet")
    FUNCTION = "run"
    OUTPUT_NODE = True
    CATEGORY = "discomfort"
    DESCRIPTION = ("Runs workflow files N times (or until a condition) inside this ComfyUI, sharing its loaded "
                   "models; OUTPUT ports with the same unique_id as INPUT ports carry state between iterations. "
                   "Shows an IMAGE port's latest image while it runs and returns a contact sheet of its iterations.")

    @classmethod
    def IS_CHANGED(cls, **kwargs):
        return float("nan")  # a loop has side effects (files, state): always run

    def run(self, workflow_paths: str, iterations: int, initial_inputs: str, until: str = "",
            return_port: str = "", input_value: Any = None, input_port: str = "", workflow: str = NO_WORKFLOW,
            preview_port: str = "", node_id: str = "", prompt: Optional[Dict[str, Any]] = None):
        node = "DiscomfortLoopExecutor"
        paths, widget = chosen_workflows(node, "workflow_paths", workflow_paths, workflow)
        done = run_loop_watching(paths, iterations, initial_inputs, until=until,
                                 extra_inputs={input_port: input_value} if input_port and input_value is not None else {},
                                 node_id=node_id, node=node, widget=widget, preview_port=preview_port)
        outputs = done.outputs
        sheet = None
        if done.images is not None and done.images.latest is not None:
            from . import loop_images
            sheet = loop_images.as_image_tensor(done.images.sheet())
        elif _output_is_linked(prompt, node_id, CONTACT_SHEET_SLOT):
            raise ValueError(f"{node}: contact_sheet is connected, but " + (
                f"preview_port {done.image_port!r} held no image" if done.image_port else
                "these workflows have no IMAGE OUTPUT port (name one in preview_port)"))
        if not outputs:
            return {"ui": {"text": ["{}"]}, "result": (None, "{}", sheet)}
        if return_port:
            if return_port not in outputs:
                raise KeyError(f"return_port {return_port!r} is not an OUTPUT of these workflows; outputs: {sorted(outputs)}")
            result = outputs[return_port]
        else:
            result = next(iter(outputs.values()))
        summary = json.dumps({k: _describe(v) for k, v in outputs.items()})
        # The summary also goes to the UI (and /history) as text.
        return {"ui": {"text": [summary]}, "result": (result, summary, sheet)}


def _output_is_linked(prompt: Optional[Dict[str, Any]], node_id: str, slot: int) -> bool:
    """Whether a node of the host prompt takes `node_id`'s output `slot`."""
    for other in (prompt or {}).values():
        for value in (other.get("inputs") or {}).values() if isinstance(other, dict) else ():
            if isinstance(value, list) and len(value) == 2 and str(value[0]) == str(node_id) and value[1] == slot:
                return True
    return False


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
        optional["workflow"] = workflow_chooser("workflow_json")  # after the original's widgets (module text)
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

    def run(self, workflow_json: str, max_iterations: int = 1, workflow: str = NO_WORKFLOW, node_id: str = "",
            **slots: Any):
        paths, widget = chosen_workflows("DiscomfortTestRunner", "workflow_json", workflow_json, workflow)
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
        outputs = run_loop_watching(paths, max_iterations, "", extra_inputs=inputs, node_id=node_id,
                                    node="DiscomfortTestRunner", widget=widget).outputs
        missing = [uid for uid in wanted if uid and uid not in outputs]
        if missing:
            raise KeyError(f"{os.path.basename(paths[0].strip()) if paths else ''}: no OUTPUT port {missing[0]!r}; "
                           f"its outputs: {sorted(outputs)}")
        return tuple(outputs[uid] if uid else None for uid in wanted)


class LoopDone(NamedTuple):
    """What a loop run gives its node: the OUTPUT ports' final values, and the watched IMAGE port with
    its iterations' thumbnails (None when no port is watched)."""
    outputs: Dict[str, Any]
    image_port: Optional[str]
    images: Any  # loop_images.IterationImages or None


def run_loop(workflow_paths: str, iterations: int, initial_inputs: str, until: str = "",
             extra_inputs: Dict[str, Any] = None, node_id: str = "", node: str = "DiscomfortLoopExecutor",
             widget: str = "workflow_paths") -> Dict[str, Any]:
    """The loop-executor's body (also usable from other nodes): the OUTPUT ports' final values.
    `workflow_paths` holds one path per line; `node` and `widget` name where they came from in errors."""
    paths = [line for line in (workflow_paths or "").splitlines() if line.strip()]
    return run_loop_watching(paths, iterations, initial_inputs, until, extra_inputs, node_id, node, widget).outputs


def run_loop_watching(paths: List[str], iterations: int, initial_inputs: str, until: str = "",
                      extra_inputs: Dict[str, Any] = None, node_id: str = "", node: str = "DiscomfortLoopExecutor",
                      widget: str = "workflow_paths", preview_port: Optional[str] = None) -> LoopDone:
    """run_loop, watching an IMAGE port unless `preview_port` is None ("": the first IMAGE output, none
    when there is none): after each iteration its image is the node's preview and a contact-sheet
    thumbnail."""
    from . import _engine, _workflows, errors, loop_images
    from ._native import core
    from .context import WorkflowContext
    import comfy.model_management as mm

    import threading
    if threading.current_thread().name.startswith("discomfort-engine"):
        raise RuntimeError(f"{node} runs inside a ComfyUI server; a workflow run by Discomfort "
                           "itself cannot nest another loop (use iterations, until or a loop plan instead)")
    paths = [resolve_workflow_path(p, node, widget) for p in paths if p.strip()]
    if not paths:
        raise ValueError(f"{node}, {widget}: no workflow file given (one path per line, or choose a saved "
                         f"workflow in workflow)")
    loaded = _workflows.load_all(paths)
    inputs = parse_initial_inputs(initial_inputs)
    inputs.update(extra_inputs or {})
    # The node runs on the host's executor thread, inside its asyncio loop: the engine works on its
    # own thread (ComfyUI's executor calls asyncio.run), and this thread relays progress and interrupts.
    engine = _engine.on_engine_thread(_engine.get_engine, comfyui_path=_comfyui_root(), verbose=True).result()
    image_port, ports = None, {}
    if preview_port is not None:
        definitions = _engine.on_engine_thread(engine.definitions).result()
        ports = loop_images.output_ports(loaded, definitions)
        image_port = _watched_port(ports, preview_port.strip(), node)
    images = loop_images.IterationImages(iterations) if image_port else None
    preview_side = loop_images.preview_size()
    from discomfort_bridge import sandbox  # importable once the engine has started
    host = sandbox.HostPrompt.capture(node_id or None)  # now, while no inner execution runs
    token = core.CancelToken()
    reports: "queue.Queue[Dict[str, Any]]" = queue.Queue()

    def relay() -> None:
        """Progress for every finished iteration; a preview for the latest only (older ones are stale)."""
        batch = []
        while not reports.empty():
            batch.append(reports.get())
        for index, report in enumerate(batch):
            last = index == len(batch) - 1
            sandbox.report_host_progress(host, report["iteration"] + 1, iterations,
                                         report.get("preview") if last else None)

    with WorkflowContext() as ctx:
        for key, value in inputs.items():
            ctx.save(key, value)

        def on_iteration(report: Dict[str, Any]) -> None:
            # On the engine thread, right after the iteration's values were committed.
            if images is not None and image_port in ctx:
                try:
                    picture = loop_images.first_picture(ctx.load(image_port), f"{node}, preview_port: {image_port!r}")
                except TypeError as error:  # an untyped port whose value is no image
                    raise TypeError(f"{error}; their OUTPUT ports: {_listed(ports)}") from None
                images.add(report["iteration"], picture)
                # Already fitted (never enlarged), so no size goes with it: given one, ComfyUI's sender
                # would scale the picture up to fill it (ImageOps.contain).
                report["preview"] = ("JPEG", loop_images.fitted(picture, preview_side), None)
            reports.put(report)

        future = _engine.on_engine_thread(engine.run, ctx._store(), loaded, iterations=iterations,
                                          until=until or None, on_iteration=on_iteration, cancel=token)
        try:
            while True:
                try:
                    result = future.result(timeout=0.1)
                    break
                except concurrent.futures.TimeoutError:
                    pass
                relay()
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
        relay()  # the iterations that finished since the last look
        sandbox.report_host_progress(host, iterations, iterations)
    return LoopDone(result["outputs"], image_port, images)


def _watched_port(ports: Dict[str, str], wanted: str, node: str) -> Optional[str]:
    """The IMAGE port to watch: `wanted`, which must be an IMAGE (or untyped) OUTPUT port, or else the
    first IMAGE OUTPUT port by unique_id (None when there is none)."""
    listed = _listed(ports)
    if not wanted:
        return next((uid for uid in sorted(ports) if ports[uid] == "IMAGE"), None)
    if wanted not in ports:
        raise ValueError(f"{node}, preview_port: {wanted!r} is not an OUTPUT port of these workflows; "
                         f"their OUTPUT ports: {listed}")
    if ports[wanted] not in ("IMAGE", "*"):
        raise TypeError(f"{node}, preview_port: {wanted!r} is an OUTPUT port of type {ports[wanted]}, not IMAGE; "
                        f"their OUTPUT ports: {listed}")
    return wanted


def _listed(ports: Dict[str, str]) -> str:
    return ", ".join(f"{uid} ({kind})" for uid, kind in sorted(ports.items())) or "none"


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
