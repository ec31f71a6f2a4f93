"""Test-only ComfyUI nodes for Discomfort's integration tests (loaded like custom nodes)."""

import time


class DiscomfortTestAdd:
    """INT + amount: a loop counter whose value after N iterations is known exactly."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0, "min": -(2**62), "max": 2**62}),
                             "amount": ("INT", {"default": 1, "min": -(2**62), "max": 2**62})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "add"
    CATEGORY = "discomfort/test"

    def add(self, value, amount):
        return (value + amount,)


class DiscomfortTestFailAt:
    """Passes an INT through; raises when it equals fail_at (a node failing mid-loop)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0, "min": -(2**62), "max": 2**62}),
                             "fail_at": ("INT", {"default": -1, "min": -(2**62), "max": 2**62})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "check"
    CATEGORY = "discomfort/test"

    def check(self, value, fail_at):
        if value == fail_at:
            raise RuntimeError(f"test failure: value reached {value}")
        return (value,)


class DiscomfortTestSleep:
    """Passes anything through after sleeping (interrupt tests)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("*", {}), "seconds": ("FLOAT", {"default": 0.1, "min": 0.0, "max": 60.0})}}

    RETURN_TYPES = ("*",)
    FUNCTION = "sleep"
    CATEGORY = "discomfort/test"

    def sleep(self, value, seconds):
        import comfy.model_management
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            comfy.model_management.throw_exception_if_processing_interrupted()
            time.sleep(0.01)
        return (value,)


class DiscomfortTestHangAt:
    """Passes an INT through; when it equals hang_at, first "hangs" for `seconds` in 10 ms steps,
    checking ComfyUI's interrupt flag only if check_interrupt (a sampler does; pure-Python work
    does not: the per-iteration timeout must then give up on it). Writes `marker` (when set)
    once a hang ends, so tests can tell when the node returned."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0, "min": -(2**62), "max": 2**62}),
                             "hang_at": ("INT", {"default": -1, "min": -(2**62), "max": 2**62}),
                             "seconds": ("FLOAT", {"default": 60.0, "min": 0.0, "max": 3600.0}),
                             "check_interrupt": ("BOOLEAN", {"default": True}),
                             "marker": ("STRING", {"default": ""})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "hang"
    CATEGORY = "discomfort/test"

    def hang(self, value, hang_at, seconds, check_interrupt, marker):
        if value != hang_at:
            return (value,)
        import comfy.model_management
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if check_interrupt:
                comfy.model_management.throw_exception_if_processing_interrupted()
            time.sleep(0.01)
        if marker:
            with open(marker, "w") as f:
                f.write("returned")
        return (value,)


class DiscomfortTestLog:
    """Passes anything through after logging `message` at WARNING through Python's logging, as
    ComfyUI and custom nodes log."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("*", {}), "message": ("STRING", {"default": "test log line"})}}

    RETURN_TYPES = ("*",)
    FUNCTION = "log"
    CATEGORY = "discomfort/test"

    def log(self, value, message):
        import logging
        logging.getLogger("discomfort.test").warning(message)
        return (value,)


class DiscomfortTestPreview:
    """Passes anything through after reporting `steps` steps of progress, each with a preview image of
    `color`, through ComfyUI's progress bar (as a sampler does), `interval` seconds apart."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("*", {}), "steps": ("INT", {"default": 3, "min": 1, "max": 1000}),
                             "color": ("INT", {"default": 0x336699, "min": 0, "max": 0xFFFFFF}),
                             "interval": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 10.0})}}

    RETURN_TYPES = ("*",)
    FUNCTION = "preview"
    OUTPUT_NODE = True
    CATEGORY = "discomfort/test"

    def preview(self, value, steps, color, interval):
        import comfy.utils
        from PIL import Image
        image = Image.new("RGB", (16, 8), ((color >> 16) & 255, (color >> 8) & 255, color & 255))
        bar = comfy.utils.ProgressBar(steps)
        for step in range(steps):
            bar.update_absolute(step + 1, steps, ("JPEG", image, 64))
            time.sleep(interval)
        return (value,)


# ---------------------------------------------------------------- cache semantics (steady-state tests)
# Each counts its executions in CALLS[label] (a class attribute: tests reach it through ComfyUI's
# NODE_CLASS_MAPPINGS), so a test can tell which nodes ran in which iteration.

def _count(calls, label):
    calls[label] = calls.get(label, 0) + 1


class DiscomfortTestCalls:
    """Passes `value` through (or `label` when nothing is connected) and counts its executions; no
    IS_CHANGED, so it runs again only when an input changes (as a checkpoint loader)."""
    CALLS = {}

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"label": ("STRING", {"default": "count"})}, "optional": {"value": ("*", {})}}

    RETURN_TYPES = ("*",)
    FUNCTION = "run"
    CATEGORY = "discomfort/test"

    def run(self, label, value=None):
        _count(self.CALLS, label)
        return (label if value is None else value,)


class DiscomfortTestVolatile(DiscomfortTestCalls):
    """DiscomfortTestCalls whose IS_CHANGED is NaN: ComfyUI runs it every time."""

    @classmethod
    def IS_CHANGED(cls, **kwargs):
        return float("nan")


class DiscomfortTestFingerprint(DiscomfortTestCalls):
    """DiscomfortTestCalls whose IS_CHANGED is TOKENS[label] (a test changes it between iterations,
    as a file a loader reads would change)."""
    TOKENS = {}

    @classmethod
    def IS_CHANGED(cls, label, **kwargs):
        return cls.TOKENS.get(label, 0)


class DiscomfortTestLazyPick:
    """Returns `a` when `first`, else `b`; both inputs lazy (only the chosen one is computed)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"first": ("BOOLEAN", {"default": True}),
                             "a": ("*", {"lazy": True}), "b": ("*", {"lazy": True})}}

    RETURN_TYPES = ("*",)
    FUNCTION = "pick"
    CATEGORY = "discomfort/test"

    def check_lazy_status(self, first, a=None, b=None):
        wanted = "a" if first else "b"
        return [wanted] if (a if first else b) is None else []

    def pick(self, first, a=None, b=None):
        return (a if first else b,)


class DiscomfortTestExpandAdd:
    """value + amount, computed by a DiscomfortTestAdd node this node expands into (node expansion)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0, "min": -(2**62), "max": 2**62}),
                             "amount": ("INT", {"default": 1, "min": -(2**62), "max": 2**62})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "expand"
    CATEGORY = "discomfort/test"

    def expand(self, value, amount):
        from comfy_execution.graph_utils import GraphBuilder
        graph = GraphBuilder()
        add = graph.node("DiscomfortTestAdd", value=value, amount=amount)
        return {"result": (add.out(0),), "expand": graph.finalize()}


class DiscomfortTestAsyncAdd:
    """value + amount after an asyncio sleep: an asynchronous node."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0, "min": -(2**62), "max": 2**62}),
                             "amount": ("INT", {"default": 1, "min": -(2**62), "max": 2**62}),
                             "seconds": ("FLOAT", {"default": 0.01, "min": 0.0, "max": 10.0})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "add"
    CATEGORY = "discomfort/test"

    async def add(self, value, amount, seconds):
        import asyncio
        await asyncio.sleep(seconds)
        return (value + amount,)


class DiscomfortTestListSplit:
    """INT -> the list [value, value + 1, value + 2] (OUTPUT_IS_LIST: downstream nodes map over it)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0, "min": -(2**62), "max": 2**62})}}

    RETURN_TYPES = ("INT",)
    OUTPUT_IS_LIST = (True,)
    FUNCTION = "split"
    CATEGORY = "discomfort/test"

    def split(self, value):
        return ([value, value + 1, value + 2],)


class DiscomfortTestListSum:
    """The sum of a list of INTs (INPUT_IS_LIST)."""
    INPUT_IS_LIST = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"values": ("INT", {"default": 0, "min": -(2**62), "max": 2**62})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "total"
    CATEGORY = "discomfort/test"

    def total(self, values):
        return (sum(values),)


class DiscomfortTestPromptEcho:
    """JSON of its hidden UNIQUE_ID and of every node's `is_changed` in the hidden PROMPT (what
    ComfyUI leaves there), with `value` passed through as repr."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("*", {})}, "hidden": {"prompt": "PROMPT", "unique_id": "UNIQUE_ID"}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "echo"
    CATEGORY = "discomfort/test"

    def echo(self, value, prompt=None, unique_id=None):
        import json
        seen = {node_id: repr(node.get("is_changed")) for node_id, node in sorted((prompt or {}).items())}
        return (json.dumps({"unique_id": unique_id, "value": repr(value), "is_changed": seen}),)


class DiscomfortTestBlockAt:
    """Passes an INT through; when it equals block_at, returns an ExecutionBlocker (no message):
    everything downstream is skipped for that execution."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0, "min": -(2**62), "max": 2**62}),
                             "block_at": ("INT", {"default": -1, "min": -(2**62), "max": 2**62})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "check"
    CATEGORY = "discomfort/test"

    def check(self, value, block_at):
        if value == block_at:
            from comfy_execution.graph_utils import ExecutionBlocker
            return (ExecutionBlocker(None),)
        return (value,)


_V3_TEST_NODES = {}
try:  # V3 node API (ComfyUI with comfy_api.latest)
    from comfy_api.latest import io as _io
except ImportError:
    _io = None
if _io is not None:
    class DiscomfortTestV3Tagged(_io.ComfyNode):
        """A V3 node: value + 1000 * (its hidden unique_id is set), counting its executions; its
        fingerprint_inputs is TOKENS[label]."""
        TOKENS = {}
        CALLS = {}

        @classmethod
        def define_schema(cls):
            return _io.Schema(
                node_id="DiscomfortTestV3Tagged", category="discomfort/test",
                inputs=[_io.Int.Input("value", default=0, min=-(2**62), max=2**62), _io.String.Input("label", default="v3")],
                outputs=[_io.Int.Output()], hidden=[_io.Hidden.unique_id])

        @classmethod
        def fingerprint_inputs(cls, value, label):
            return cls.TOKENS.get(label, 0)

        @classmethod
        def execute(cls, value, label):
            _count(cls.CALLS, label)  # the dict is shared with the class ComfyUI locks per call
            return _io.NodeOutput(value + 1000 * (cls.hidden.unique_id is not None))

    _V3_TEST_NODES["DiscomfortTestV3Tagged"] = DiscomfortTestV3Tagged


NODE_CLASS_MAPPINGS = {
    "DiscomfortTestLog": DiscomfortTestLog,
    "DiscomfortTestAdd": DiscomfortTestAdd,
    "DiscomfortTestFailAt": DiscomfortTestFailAt,
    "DiscomfortTestSleep": DiscomfortTestSleep,
    "DiscomfortTestHangAt": DiscomfortTestHangAt,
    "DiscomfortTestPreview": DiscomfortTestPreview,
    "DiscomfortTestCalls": DiscomfortTestCalls,
    "DiscomfortTestVolatile": DiscomfortTestVolatile,
    "DiscomfortTestFingerprint": DiscomfortTestFingerprint,
    "DiscomfortTestLazyPick": DiscomfortTestLazyPick,
    "DiscomfortTestExpandAdd": DiscomfortTestExpandAdd,
    "DiscomfortTestAsyncAdd": DiscomfortTestAsyncAdd,
    "DiscomfortTestListSplit": DiscomfortTestListSplit,
    "DiscomfortTestListSum": DiscomfortTestListSum,
    "DiscomfortTestPromptEcho": DiscomfortTestPromptEcho,
    "DiscomfortTestBlockAt": DiscomfortTestBlockAt,
    **_V3_TEST_NODES,
}


class DiscomfortTestCount:
    """Passes anything through and appends a line to `path` each time it runs, so tests can count
    executions across processes (a setup workflow once per worker, a failing point never retried)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("*", {}), "path": ("STRING", {"default": ""})}}

    @classmethod
    def IS_CHANGED(cls, value, path):
        return float("nan")  # every execution counts

    RETURN_TYPES = ("*",)
    FUNCTION = "count"
    CATEGORY = "discomfort/test"

    def count(self, value, path):
        import os
        with open(path, "a") as f:
            f.write(f"{os.getpid()}\n")
        return (value,)


NODE_CLASS_MAPPINGS["DiscomfortTestCount"] = DiscomfortTestCount
