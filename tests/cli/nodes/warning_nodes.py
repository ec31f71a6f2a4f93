"""Test-only ComfyUI nodes that make the discomfort CLI warn (tests/cli/stdout_is_json_test.py): the
warnings must reach stderr, never the JSON a command prints on stdout."""

import logging


class DiscomfortTestAddOne:
    """INT + 1: the value a run hands back through an OUTPUT port."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0, "min": -(2**62), "max": 2**62})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "add_one"
    CATEGORY = "discomfort/test"

    def add_one(self, value):
        return (value + 1,)


class DiscomfortTestBlock:
    """Blocks everything downstream (ComfyUI's ExecutionBlocker): an OUTPUT port fed by it gets no
    value, and the engine warns about that port every iteration."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0, "min": -(2**62), "max": 2**62})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "block"
    CATEGORY = "discomfort/test"

    def block(self, value):
        from comfy_execution.graph_utils import ExecutionBlocker
        return (ExecutionBlocker(None),)


class DiscomfortTestNoDefinition:
    """A node whose definition cannot be read: the CLI warns that it has none when it gathers the
    node definitions (every run, sweep and object-info)."""

    @classmethod
    def INPUT_TYPES(cls):
        raise RuntimeError("this test node has no readable definition")

    RETURN_TYPES = ("INT",)
    FUNCTION = "never"
    CATEGORY = "discomfort/test"


# A custom node logging while it loads, as many do (ComfyUI's log stays quiet unless -v).
logging.getLogger(__name__).warning("warning_nodes.py loaded")

NODE_CLASS_MAPPINGS = {
    "DiscomfortTestAddOne": DiscomfortTestAddOne,
    "DiscomfortTestBlock": DiscomfortTestBlock,
    "DiscomfortTestNoDefinition": DiscomfortTestNoDefinition,
}
