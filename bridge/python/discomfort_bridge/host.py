"""ComfyHost: ComfyUI imported as a library, with its own executors (no server, no HTTP).

Called from C++ (bridge/comfy_bridge.cc) with the GIL held. Every method returns plain Python
data; errors that a caller can act on come back as dicts, never as exceptions, so the C++ side
translates them into typed Status values in one place.
"""

import asyncio
import contextlib
import json
import logging
import math
import os
import sys
import threading
import time
import traceback
import uuid

from . import nodes as discomfort_nodes
from . import sandbox
from . import steady_plan
from . import steady_state

LOG = logging.getLogger("discomfort")


def _make_node_replace_manager():
    try:
        from app.node_replace_manager import NodeReplaceManager
        return NodeReplaceManager()
    except Exception:  # older ComfyUI has none

        class _Registry:
            def register(self, *args, **kwargs):
                pass

        return _Registry()


class _ServerStub:
    """The few attributes and methods ComfyUI's executor touches on its server."""

    def __init__(self, on_event=None):
        self.client_id = None
        self.last_node_id = None
        self.last_prompt_id = None
        self.sockets_metadata = {}
        self.on_event = on_event
        self.events = []
        self.node_replace_manager = _make_node_replace_manager()

    def send_sync(self, event, data, sid=None):
        if isinstance(event, str):
            self.events.append((event, data, time.perf_counter()))
            if self.on_event is not None:
                try:
                    self.on_event(event, data)
                except Exception:  # a progress callback must never break execution
                    LOG.exception("discomfort event callback failed")

    def send_progress_text(self, text, node_id, sid=None):
        pass

    def queue_updated(self):
        pass


class _SinkHandler(logging.Handler):
    def __init__(self, sink):
        super().__init__()
        self._sink = sink
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record):
        try:
            self._sink(record.levelno, self.format(record))
        except Exception:  # logging must never break execution
            pass


class ComfyHost:
    def __init__(self):
        self.started = False
        self.embedded_in_live_comfyui = False
        self.info = {}
        self._executors = {}
        self._steady = {}  # slot -> steady_state.SlotState
        self._registry_generation = 0  # bumped whenever nodes are registered: validations go stale
        # Held while a prompt executes: a model leaving RAM (model_memory.py) waits for it.
        self.execution_lock = threading.RLock()

    # ------------------------------------------------------------------ start-up
    def start(self, comfy_path, output_dir, temp_dir, input_dir, user_dir, force_cpu=None,
              verbose=False, extra_nodes=()):
        """Imports ComfyUI from comfy_path as a library. Idempotent.
        extra_nodes: node files or packages to load like custom nodes (errors are fatal)."""
        if self.started:
            return self.info
        already = "execution" in sys.modules and "comfy.model_management" in sys.modules
        self.embedded_in_live_comfyui = already
        # ComfyUI logs through the root logger; Discomfort reports import failures and node
        # errors itself, so unless asked for, ComfyUI's own log stays quiet.
        if not already:  # a live ComfyUI's logging is its own business
            logging.getLogger().setLevel(logging.INFO if verbose else logging.CRITICAL)
        comfy_path = os.path.abspath(comfy_path)
        if not already:
            if comfy_path not in sys.path:
                sys.path.insert(0, comfy_path)
            import comfy.options  # noqa: F401  (args_parsing stays False: sys.argv is ignored)
            from comfy.cli_args import args

            if force_cpu is None:
                import torch
                force_cpu = not torch.cuda.is_available()
            # In place: every ComfyUI module binds this same Namespace object.
            args.cpu = bool(force_cpu)
            args.disable_api_nodes = True
            import utils.extra_config  # noqa: F401  (before nodes: sys.path shadowing, as main.py)
        import folder_paths

        # Inside a live ComfyUI its own folders stay in use: nothing of ours is created (a server
        # stopped by SIGTERM never runs atexit, so folders made here would be left behind).
        if not already:
            for d in (output_dir, temp_dir, input_dir, user_dir):
                os.makedirs(d, exist_ok=True)
            folder_paths.set_output_directory(os.path.abspath(output_dir))
            folder_paths.set_temp_directory(os.path.abspath(temp_dir))
            folder_paths.set_input_directory(os.path.abspath(input_dir))
            folder_paths.set_user_directory(os.path.abspath(user_dir))

        import comfy.model_management as mm
        import nodes
        import execution  # noqa: F401

        import_failed = []
        if not already:
            try:
                # Some built-in nodes reach for PromptServer.instance (progress text, node
                # replacement registry); with no server in the process they get a stub.
                import server
                if getattr(server.PromptServer, "instance", None) is None:
                    server.PromptServer.instance = _ServerStub()
            except Exception as exc:  # server needs aiohttp
                import_failed.append(f"server stub: {exc}")
            import_failed += asyncio.run(
                nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False)) or []
        self._register_nodes(nodes)
        self._registry_generation += 1
        for path in extra_nodes or ():
            self.load_nodes(path)

        version = "unknown"
        try:
            import comfyui_version
            version = comfyui_version.__version__
        except Exception:
            pass
        self.info = {
            "comfyui_path": comfy_path,
            "comfyui_version": version,
            "device": str(mm.get_torch_device()),
            "cpu": bool(getattr(mm, "cpu_state", None) == getattr(mm, "CPUState").CPU),
            "import_failed": [str(x) for x in import_failed],
            "embedded_in_live_comfyui": already,
            "node_count": len(nodes.NODE_CLASS_MAPPINGS),
        }
        self.started = True
        return self.info

    def forward_logging(self, sink):
        """Routes Python's logging (ComfyUI's and custom nodes' lines) to `sink(levelno, text)`,
        the engine's log, when this process embeds Python; a live ComfyUI keeps its own logging."""
        if self.embedded_in_live_comfyui:
            return
        root = logging.getLogger()
        for handler in list(root.handlers):
            if isinstance(handler, _SinkHandler):
                root.removeHandler(handler)
        root.addHandler(_SinkHandler(sink))

    def load_nodes(self, path):
        """Loads a custom-node file or package (NODE_CLASS_MAPPINGS or comfy_entrypoint)."""
        import nodes
        path = os.path.abspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"custom node path does not exist: {path}")
        ok = asyncio.run(nodes.load_custom_node(path, module_parent="custom_nodes"))
        self._registry_generation += 1
        if not ok:
            raise ImportError(f"ComfyUI could not import the custom nodes in {path} (see its log with --verbose)")

    @staticmethod
    def _register_nodes(nodes):
        for name, cls in discomfort_nodes.NODE_CLASS_MAPPINGS.items():
            cls.RELATIVE_PYTHON_MODULE = "custom_nodes.discomfort"
            nodes.NODE_CLASS_MAPPINGS[name] = cls
            nodes.NODE_DISPLAY_NAME_MAPPINGS[name] = discomfort_nodes.NODE_DISPLAY_NAME_MAPPINGS[name]

    # ------------------------------------------------------------------ node definitions
    def object_info(self):
        """Node definitions in the shape of ComfyUI's GET /object_info, from the live registry."""
        import folder_paths
        import nodes
        try:
            from comfy_api.internal import _ComfyNodeInternal
        except Exception:  # older ComfyUI without V3 nodes
            _ComfyNodeInternal = None
        out = {}
        failures = {}
        with folder_paths.cache_helper:
            for name, cls in list(nodes.NODE_CLASS_MAPPINGS.items()):
                try:
                    if _ComfyNodeInternal is not None and isinstance(cls, type) and issubclass(cls, _ComfyNodeInternal):
                        out[name] = cls.GET_NODE_INFO_V1()
                    else:
                        out[name] = self._node_info_v1(nodes, name, cls)
                except Exception as exc:
                    failures[name] = f"{type(exc).__name__}: {exc}"
        return json.dumps({"object_info": _jsonable(out), "failures": failures})

    @staticmethod
    def _node_info_v1(nodes, name, cls):
        input_types = cls.INPUT_TYPES()
        info = {
            "input": input_types,
            "input_order": {key: list(value.keys()) for key, value in input_types.items()},
            "is_input_list": getattr(cls, "INPUT_IS_LIST", False),
            "output": list(cls.RETURN_TYPES),
            "output_is_list": list(getattr(cls, "OUTPUT_IS_LIST", [False] * len(cls.RETURN_TYPES))),
            "output_name": list(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)),
            "name": name,
            "display_name": nodes.NODE_DISPLAY_NAME_MAPPINGS.get(name, name),
            "description": getattr(cls, "DESCRIPTION", ""),
            "python_module": getattr(cls, "RELATIVE_PYTHON_MODULE", "nodes"),
            "category": getattr(cls, "CATEGORY", "sd"),
            "output_node": bool(getattr(cls, "OUTPUT_NODE", False)),
        }
        if hasattr(cls, "OUTPUT_TOOLTIPS"):
            info["output_tooltips"] = list(cls.OUTPUT_TOOLTIPS)
        if getattr(cls, "DEPRECATED", False):
            info["deprecated"] = True
        if getattr(cls, "EXPERIMENTAL", False):
            info["experimental"] = True
        if hasattr(cls, "API_NODE"):
            info["api_node"] = cls.API_NODE
        return info

    # ------------------------------------------------------------------ execution
    def _executor(self, slot):
        ex = self._executors.get(slot)
        if ex is None:
            import execution
            stub = _ServerStub()
            cache_args = {"lru": 0, "ram": 0.0, "ram_inactive": 0.0}
            ex = execution.PromptExecutor(stub, cache_type=execution.CacheType.CLASSIC,
                                          cache_args=cache_args)
            self._executors[slot] = ex
        return ex

    def reset_executor(self, slot):
        """Lets go of a slot's executor and what it caches (its nodes' outputs and objects): the
        next execution there runs every node. Waits for a running execution."""
        with self.execution_lock:
            executor = self._executors.pop(slot, None)
            state = self._steady.pop(slot, None)
            if executor is not None:
                steady_plan.empty_caches(getattr(executor, "caches", None))
            if state is not None and state.plan is not None:
                state.plan.store.clear()  # the outputs the steady-state path kept instead
                state.plan.objects.clear()

    def forget_context_value(self, unique_id):
        """Drops, in every slot, the cached output of the context loaders of `unique_id` and of
        everything downstream (what a new version of the value re-runs anyway), so those caches
        stop holding the old value."""
        loader = discomfort_nodes.DiscomfortContextLoader.__name__

        def reads(prompt):
            return [node_id for node_id, node in (prompt or {}).items()
                    if isinstance(node, dict) and node.get("class_type") == loader
                    and node.get("inputs", {}).get("unique_id") == unique_id]

        for slot in list(self._executors):
            state = self._steady.get(slot)
            plan = state.plan if state is not None else None
            if plan is not None:
                for node_id in reads(plan.prompt):
                    for stale in plan.downstream.get(node_id, (node_id,)):
                        plan.store.pop(stale, None)
                continue
            dynprompt = getattr(self._executors[slot].caches.outputs, "dynprompt", None)
            if reads(getattr(dynprompt, "original_prompt", None)):
                self.reset_executor(slot)

    def validate(self, prompt):
        import execution
        prompt_id = str(uuid.uuid4())
        try:
            ok, error, outputs, node_errors = asyncio.run(
                execution.validate_prompt(prompt_id, prompt, None))
        except Exception as exc:
            return {"ok": False, "error": {"type": "exception_during_validation",
                                           "message": f"{type(exc).__name__}: {exc}",
                                           "details": "", "traceback": traceback.format_exc()},
                    "node_errors": {}, "outputs": []}
        return {"ok": bool(ok), "error": error, "outputs": list(outputs),
                "node_errors": _jsonable(node_errors)}

    def execute(self, slot, prompt, inputs, versions, on_event=None, exact=False):
        """Runs `prompt` on the executor of `slot` (one per workflow, so each keeps its own cache
        across iterations). `inputs` are handed to context loaders by reference.

        exact=False: validated once per slot (again when the prompt, the context inputs present or
        the node registry change); after the first iteration only what changed runs
        (steady_state.py), falling back to ComfyUI's full round where that cannot be exact.
        exact=True, or DISCOMFORT_EXACT_EXECUTOR=1: ComfyUI's full round (validate_prompt, then
        PromptExecutor.execute) every time."""
        with self.execution_lock:
            return self._execute(slot, prompt, inputs, versions, on_event, exact)

    def _execute(self, slot, prompt, inputs, versions, on_event, exact):
        values = discomfort_nodes.VALUES
        values.inputs = dict(inputs)
        values.versions = dict(versions)
        values.outputs = {}
        try:
            state = self._steady.get(slot)
            if state is None:
                state = self._steady[slot] = steady_state.SlotState()
            exact = exact or steady_state.exact_forced()
            key = None if exact else steady_state.prompt_fingerprint(prompt, inputs, self._registry_generation)
            plan = state.fast_plan(key)
            check = None
            if plan is None:
                check = self.validate(prompt)
                if not check["ok"]:
                    return {"ok": False, "stage": "validation", **check}
            ex = self._executor(slot)
            ex.server.on_event = on_event
            ex.server.events = []
            prompt_id = str(uuid.uuid4())
            started = time.perf_counter()
            try:
                with self._isolated(inputs.values()):
                    check = state.execute(slot, ex, prompt, prompt_id, {"client_id": "discomfort"}, key,
                                          plan, check, lambda: self.validate(prompt))
            except Exception as exc:  # outside node execution (e.g. a broken graph expansion)
                return {"ok": False, "stage": "execution",
                        "error": {"type": type(exc).__name__, "message": str(exc),
                                  "traceback": traceback.format_exc()}}
            if check is not None and not check["ok"]:
                return {"ok": False, "stage": "validation", **check}
            elapsed = time.perf_counter() - started
            result = {
                "ok": bool(ex.success),
                "stage": "execution",
                "outputs": dict(values.outputs),
                "ui": _jsonable(getattr(ex, "history_result", {}).get("outputs", {})),
                "seconds": elapsed,
                "node_times": _node_times(ex.server.events),
            }
            for event, data in ex.status_messages:
                if event == "execution_error":
                    result["error"] = {
                        "type": "execution_error",
                        "node_id": str(data.get("node_id")),
                        "class_type": data.get("node_type"),
                        "exception_type": data.get("exception_type"),
                        "message": data.get("exception_message"),
                        "traceback": "".join(data.get("traceback") or []),
                    }
                elif event == "execution_interrupted":
                    result["interrupted"] = True
                    result["error"] = {"type": "interrupted", "node_id": str(data.get("node_id")),
                                       "class_type": data.get("node_type"),
                                       "message": "interrupted"}
            return result
        finally:
            values.inputs = {}
            values.versions = {}
            values.outputs = {}

    def _isolated(self, inputs):
        """Inside a live ComfyUI, its process-wide state stays the host prompt's around an inner
        execution (sandbox.py lists what and why); elsewhere there is no host to protect."""
        return sandbox.inner_execution(inputs) if self.embedded_in_live_comfyui else contextlib.nullcontext()

    def interrupt(self):
        if self.embedded_in_live_comfyui:
            sandbox.interrupt_inner()  # stops the inner execution, never the host's prompt
            return
        import nodes
        nodes.interrupt_processing(True)


_END_EVENTS = ("execution_success", "execution_error", "execution_interrupted")


def _node_times(events):
    """Seconds per executed node, from the executor's 'executing' events: each one ends the
    previous node, and so does the end of the execution."""
    times = []
    current, started = None, None
    for event, data, at in events:
        if event != "executing" and event not in _END_EVENTS:
            continue
        if current is not None:
            times.append((current, at - started))
            current = None
        if event == "executing" and data.get("node") is not None:
            current, started = str(data.get("node")), at
    return times


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        # JSON has no inf/nan; limits like max=inf become the largest double.
        return None if math.isnan(value) else math.copysign(sys.float_info.max, value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "value") and isinstance(getattr(value, "value"), (str, int, float)):
        return value.value  # enums
    return repr(value)


HOST = ComfyHost()
