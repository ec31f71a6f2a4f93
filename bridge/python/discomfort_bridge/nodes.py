"""Discomfort's ComfyUI nodes.

DiscomfortPort marks a workflow's interface (compatible with workflows saved by the original
Discomfort). Before execution the engine rewrites INPUT ports into DiscomfortContextLoader and
OUTPUT ports into DiscomfortContextSaver; those read from and write to the
host's per-execution value tables by pointer — no serialization.
"""


ANY = "*"


class _Values:
    """The values the host hands to the current execution, and what it collects back."""

    def __init__(self):
        self.inputs = {}  # unique_id -> Python object (torch.Tensor shares the C++ TensorImpl)
        self.versions = {}  # unique_id -> int, the context version: the loader's cache key
        self.outputs = {}  # unique_id -> Python object stored by savers during this execution


VALUES = _Values()


class DiscomfortPort:
    """An interface point of a workflow, named by unique_id.

    INPUT (nothing connected to input_data), OUTPUT (output_data unused) or PASSTHRU (both).
    In a plain ComfyUI run it is an identity; Discomfort rewrites it before executing.
    """

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "unique_id": ("STRING", {"default": "port1", "tooltip": "Name of this port in the context"}),
            },
            "optional": {
                "input_data": (ANY, {}),
                "tags": ("STRING", {"default": "", "tooltip": "Comma-separated tags (informational)"}),
            },
        }

    RETURN_TYPES = (ANY,)
    RETURN_NAMES = ("output_data",)
    FUNCTION = "run"
    OUTPUT_NODE = True
    CATEGORY = "discomfort"
    DESCRIPTION = "Discomfort port: an INPUT, OUTPUT or PASSTHRU of a workflow run in a loop."

    @classmethod
    def IS_CHANGED(cls, **kwargs):
        return float("nan")

    def run(self, unique_id, input_data=None, tags=""):
        if input_data is None and unique_id in VALUES.inputs:
            input_data = VALUES.inputs[unique_id]
        return (input_data,)


class DiscomfortContextLoader:
    """Replaces an INPUT port: returns the context value for unique_id by pointer."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"unique_id": ("STRING", {"default": ""})}}

    RETURN_TYPES = (ANY,)
    RETURN_NAMES = ("output_data",)
    FUNCTION = "load"
    CATEGORY = "discomfort/internal"

    @classmethod
    def IS_CHANGED(cls, unique_id, **kwargs):
        # The context version: unchanged value -> cache hit for everything downstream.
        version = VALUES.versions.get(unique_id)
        return float("nan") if version is None else int(version)

    @classmethod
    def VALIDATE_INPUTS(cls, unique_id):
        if unique_id not in VALUES.inputs:
            return f"the context holds no value for INPUT port '{unique_id}'"
        return True

    def load(self, unique_id):
        if unique_id not in VALUES.inputs:
            raise KeyError(f"the context holds no value for INPUT port '{unique_id}'")
        return (VALUES.inputs[unique_id],)


class DiscomfortContextSaver:
    """Replaces an OUTPUT port: records the value for unique_id; the engine stores it."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"unique_id": ("STRING", {"default": ""}), "input_data": (ANY, {})}}

    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True
    CATEGORY = "discomfort/internal"

    @classmethod
    def IS_CHANGED(cls, **kwargs):
        return float("nan")  # always collect, even when upstream came from the cache

    def save(self, unique_id, input_data):
        VALUES.outputs[unique_id] = input_data
        return {}


NODE_CLASS_MAPPINGS = {
    "DiscomfortPort": DiscomfortPort,
    "DiscomfortContextLoader": DiscomfortContextLoader,
    "DiscomfortContextSaver": DiscomfortContextSaver,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "DiscomfortPort": "Discomfort Port",
    "DiscomfortContextLoader": "Discomfort Context Loader (internal)",
    "DiscomfortContextSaver": "Discomfort Context Saver (internal)",
}

